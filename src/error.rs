//! The library's error type. Every variant renders as one line that names what was wrong
//! and what was expected, because the CLI prints it as-is and exits with code 2.

use std::path::PathBuf;

/// Errors that the library reports to its caller.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An input file could not be opened or read.
    // The io error is the `source`: printed as a chain ("{path}: cannot read: <reason>").
    #[error("{path}: cannot read")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// An output file could not be written.
    #[error("{path}: cannot write")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    /// An input file was read but its content is not what was expected.
    #[error("{path}: {what}")]
    BadInput { path: PathBuf, what: String },
    /// Arguments that do not fit together (no file to blame).
    #[error("{0}")]
    Invalid(String),
}

/// Shorthand for results carrying [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An input file whose content is wrong: `what` says what was found and what was expected.
    pub fn bad_input(path: impl Into<PathBuf>, what: impl Into<String>) -> Self {
        Error::BadInput {
            path: path.into(),
            what: what.into(),
        }
    }
}
