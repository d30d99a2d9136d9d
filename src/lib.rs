//! certpair: X.509 client certificates for applications through native Kubernetes
//! CertificateSigningRequests. ARCHITECTURE.md (at the top of the repository) has the module
//! map, the flows and which code is pure.
#![forbid(unsafe_code)]
#![deny(warnings)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod api;
pub mod cli;
pub mod client;
pub mod connector;
pub mod controller;
pub mod error;
pub mod k8s;
pub mod limits;
pub mod managed_tls;
pub mod pki;
pub mod policy;
pub mod server;
pub mod slot;
pub mod telemetry;
pub mod tls;
pub mod token;
pub mod webhook;

pub use error::{Error, Result};

#[cfg(test)]
mod tests {
    //! Layering: the pure core (`pki`, `policy`) imports nothing of Kubernetes, HTTP or the
    //! command line, and `telemetry` takes no command-line types. Checked on the source text,
    //! so a new leak fails `cargo test` before review has to catch it.

    use std::path::{Path, PathBuf};

    /// What the pure core must not use: Kubernetes, HTTP, the command line, and every crate
    /// module that does I/O.
    const IO: &[&str] = &[
        "kube",
        "kube_runtime",
        "k8s_openapi",
        "clap",
        "actix_web",
        "actix",
        "reqwest",
        "async_graphql",
        "indicatif",
        "api",
        "cli",
        "controller",
        "webhook",
        "k8s",
        "server",
        "managed_tls",
        "tls",
        "connector",
    ];

    /// Each module and the roots it must not use (`pki`, the lowest layer, not even `policy`).
    fn rules() -> Vec<(&'static str, Vec<&'static str>)> {
        vec![
            ("pki", [IO, &["policy"]].concat()),
            ("policy", IO.to_vec()),
            ("telemetry.rs", vec!["cli", "clap"]),
        ]
    }

    fn sources(path: &Path) -> Vec<PathBuf> {
        if path.is_file() {
            return vec![path.to_owned()];
        }
        let mut out = Vec::new();
        for entry in std::fs::read_dir(path).expect("read src") {
            out.extend(sources(&entry.expect("entry").path()));
        }
        out
    }

    /// Every path root named in `code`, comments left out: the first segment of each `use`
    /// tree (`use crate::{api::X, pki}` names `api` and `pki`) and of each inline path
    /// (`kube::Api`, `crate::cli::Args`).
    fn roots(code: &str) -> Vec<String> {
        // A comment starts at `//` at the start of a line or after a space (not in "http://").
        let code: Vec<u8> = code
            .lines()
            .map(|l| {
                let trimmed = l.trim_start();
                if trimmed.starts_with("//") {
                    ""
                } else {
                    l.split(" //").next().unwrap_or("")
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
            .into_bytes();
        let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
        let word = |from: usize| -> String {
            let end = (from..code.len())
                .find(|&k| !ident(code[k]))
                .unwrap_or(code.len());
            String::from_utf8_lossy(&code[from..end]).into_owned()
        };
        let skip_space = |mut k: usize| {
            while k < code.len() && code[k].is_ascii_whitespace() {
                k += 1;
            }
            k
        };
        let mut out = Vec::new();
        for i in 0..code.len() {
            // A path's first segment: not preceded by an identifier, nor by `x::` (a later
            // segment); a leading `::` (`::kube::Api`) still starts a path.
            let later_segment =
                i >= 3 && code[i - 1] == b':' && code[i - 2] == b':' && ident(code[i - 3]);
            let starts = (code[i].is_ascii_alphabetic() || code[i] == b'_')
                && (i == 0 || !(ident(code[i - 1]) || later_segment));
            if !starts {
                continue;
            }
            let w = word(i);
            let after = i + w.len();
            if !code[after..].starts_with(b"::") {
                continue;
            }
            let mut rest = after + 2;
            if w != "crate" && w != "super" {
                out.push(w);
                continue;
            }
            // `super::super::api` names `api`.
            while code[rest..].starts_with(b"super::") {
                rest += "super::".len();
            }
            if code.get(rest) != Some(&b'{') {
                out.push(word(rest));
                continue;
            }
            // Top-level members of a grouped import.
            let mut depth = 0;
            let mut k = skip_space(rest + 1);
            out.push(word(k));
            while k < code.len() {
                match code[k] {
                    b'{' => depth += 1,
                    b'}' if depth == 0 => break,
                    b'}' => depth -= 1,
                    b',' if depth == 0 => out.push(word(skip_space(k + 1))),
                    _ => {}
                }
                k += 1;
            }
        }
        out
    }

    fn leaks(module: &str, forbidden: &[&str]) -> Vec<String> {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut found = Vec::new();
        for file in sources(&src.join(module)) {
            let code = std::fs::read_to_string(&file).expect("read");
            for root in roots(&code) {
                if forbidden.contains(&root.as_str()) {
                    found.push(format!("{}: {root}", file.display()));
                }
            }
        }
        found.sort();
        found.dedup();
        found
    }

    #[test]
    fn no_layer_leaks() {
        for (module, forbidden) in rules() {
            let found = leaks(module, &forbidden);
            assert!(found.is_empty(), "{module} must not use these: {found:#?}");
        }
    }

    /// The check itself can fail: it finds each way of naming a forbidden module.
    #[test]
    fn the_leak_check_sees_every_form_of_import() {
        let code = "use kube::Api;\nuse crate::{\n    api::X,\n    pki::{a, b},\n};\n\
                    fn f() { crate::cli::Cli::parse(); let _ = k8s_openapi::ByteString(vec![]); }\n\
                    #[derive(clap::ValueEnum)] enum E {}\n// kube::Client in a comment\n\
                    use ::actix_web::web; use super::super::controller::X;\n\
                    const U: &str = \"http://x\"; use tls::Y;\n";
        let roots = roots(code);
        for want in [
            "kube",
            "api",
            "pki",
            "cli",
            "k8s_openapi",
            "clap",
            "actix_web",
            "controller",
            "tls",
        ] {
            assert!(roots.iter().any(|r| r == want), "{want} in {roots:?}");
        }
        assert_eq!(
            roots.iter().filter(|r| *r == "kube").count(),
            1,
            "comments ignored"
        );
    }
}
