use std::process::ExitCode;

use clap::Parser;

use certpair::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The client commands print and exit their own way (results on stdout, exit codes that
    // say whether to retry).
    use certpair::client;
    match cli.command {
        Command::Token(args) => {
            let certpair::cli::TokenCommand::Create(create) = &args.command;
            let output = create.output.clone();
            return client::main(&output, async || client::token(args.command).await);
        }
        Command::Pair(args) => {
            let output = args.output.clone();
            return client::main(&output, async || client::pair(*args).await);
        }
        Command::Renew(args) => {
            let output = args.output.clone();
            return client::main(&output, async || client::renew(args).await);
        }
        Command::Info(args) => {
            let output = args.output.clone();
            return client::main(&output, async || client::info(args).await);
        }
        Command::Revoke(args) => {
            let output = args.output.clone();
            return client::main(&output, async || client::revoke(args).await);
        }
        _ => {}
    }
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
        Command::Token(_)
        | Command::Pair(_)
        | Command::Renew(_)
        | Command::Info(_)
        | Command::Revoke(_) => Ok(()),
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
