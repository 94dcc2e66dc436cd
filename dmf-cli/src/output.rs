//! Where output goes: people's text on stdout, or on stderr when `--json` keeps stdout for the
//! one JSON document.

use std::fmt::Display;

use serde::Serialize;

use crate::exit::CliError;

/// The command's output.
#[derive(Debug, Clone, Copy)]
pub struct Out {
    json: bool,
}

impl Out {
    /// With `json`, text goes to stderr and [`document`](Self::document) prints on stdout.
    pub fn new(json: bool) -> Self {
        Self { json }
    }

    /// A line for people.
    pub fn line(&self, text: impl Display) {
        if self.json {
            eprintln!("{text}");
        } else {
            println!("{text}");
        }
    }

    /// Text for people that ends its own lines.
    pub fn text(&self, text: impl Display) {
        if self.json {
            eprint!("{text}");
        } else {
            print!("{text}");
        }
    }

    /// The JSON document, under `--json` only.
    pub fn document(&self, document: &impl Serialize) -> Result<(), CliError> {
        if self.json {
            let text = serde_json::to_string_pretty(document)
                .map_err(|e| CliError::failed(format!("cannot write the JSON output: {e}")))?;
            println!("{text}");
        }
        Ok(())
    }
}
