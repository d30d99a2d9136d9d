//! Progress on stderr: one line per finished step, a spinner while a step runs on a terminal
//! (indicatif; nothing animated when stderr is a pipe or a CI log).

use std::{io::IsTerminal, time::Duration};

use indicatif::{ProgressBar, ProgressStyle};

pub struct Progress {
    quiet: bool,
    terminal: bool,
}

/// A running step; [`Step::done`] prints its line.
pub struct Step {
    name: &'static str,
    spinner: Option<ProgressBar>,
    quiet: bool,
}

impl Progress {
    pub fn new(quiet: bool) -> Self {
        Self {
            quiet,
            terminal: std::io::stderr().is_terminal(),
        }
    }

    pub fn step(&self, name: &'static str, doing: impl Into<String>) -> Step {
        let spinner = (!self.quiet && self.terminal).then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix:<18} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_prefix(name);
            bar.set_message(doing.into());
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        });
        Step {
            name,
            spinner,
            quiet: self.quiet,
        }
    }

    /// A line that is not a step (what was written, when the next renewal is).
    pub fn note(&self, line: impl AsRef<str>) {
        if !self.quiet {
            eprintln!("{}", line.as_ref());
        }
    }
}

impl Step {
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Updates what the spinner says (a retry, a wait).
    pub fn doing(&self, what: impl Into<String>) {
        if let Some(s) = &self.spinner {
            s.set_message(what.into());
        } else if !self.quiet {
            eprintln!("  {:<18} {}", self.name, what.into());
        }
    }

    pub fn done(self, detail: impl AsRef<str>) {
        if let Some(s) = &self.spinner {
            s.finish_and_clear();
        }
        if !self.quiet {
            eprintln!("✓ {:<18} {}", self.name, detail.as_ref());
        }
    }
}

impl Drop for Step {
    fn drop(&mut self) {
        if let Some(s) = &self.spinner {
            s.finish_and_clear();
        }
    }
}
