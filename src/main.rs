use std::process::ExitCode;

use clap::Parser;

use certpair::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Crd => certpair::api::crd_yaml()
            .map(|yaml| print!("{yaml}"))
            .map_err(Into::into),
        Command::Controller(args) => match tokio::runtime::Runtime::new() {
            Ok(rt) => rt.block_on(certpair::controller::run(*args)),
            Err(e) => Err(certpair::Error::Server(e)),
        },
        Command::Connector(args) => match tokio::runtime::Runtime::new() {
            Ok(rt) => rt.block_on(certpair::connector::run(*args)),
            Err(e) => Err(certpair::Error::Server(e)),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line an operator can act on; the detail is in the message itself.
            eprintln!("certpair: error: {e}");
            ExitCode::FAILURE
        }
    }
}
