//! The library's error type. Every variant renders as one line that names what was wrong
//! and what was expected, because a caller (the CLI) prints it as-is. The variants are the
//! causes a caller must tell apart: a file that cannot be read or written, bad input (a
//! file's content, a setting, a config file with its line and column), a model that does
//! not fit, an engine or CUDA failure, a camera or file that fails (with the GStreamer
//! element), and an output that fails.

use std::path::PathBuf;

/// Errors that the library reports to its caller.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
    /// A setting or argument that is not what was expected, with no file to blame.
    #[error("{0}")]
    Input(String),
    /// A config file: where the mistake is and what was expected there.
    #[error("{}:{line}:{column}: {what}", path.display())]
    Config {
        path: PathBuf,
        line: usize,
        column: usize,
        what: String,
    },
    /// A model that cannot be used as asked (its input size, its architecture).
    #[error("{0}")]
    Model(String),
    /// An engine that cannot be built or that failed a step.
    #[error("{0}")]
    Engine(String),
    /// CUDA is not usable here, or a CUDA call failed.
    #[error("{0}")]
    Cuda(String),
    /// A source (camera, file, launch line) failed. `element` is the path of the
    /// GStreamer element that reported it, when one did; `after_start` says whether the
    /// source had delivered frames before (a run that started, then broke) or failed at
    /// its start (unreachable, unreadable, undecodable).
    #[error("{camera}: {what}{}", element.as_ref().map(|e| format!(" (GStreamer element {e})")).unwrap_or_default())]
    Capture {
        camera: String,
        element: Option<String>,
        what: String,
        after_start: bool,
    },
    /// An output (stdout, a broker, a file) failed during a run.
    #[error("output {sink}: {what}")]
    Output { sink: String, what: String },
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

    /// Whether the error ended a run that had started (frames were scored before it), as
    /// opposed to a mistake found before anything ran.
    pub fn after_start(&self) -> bool {
        match self {
            Error::Capture { after_start, .. } => *after_start,
            Error::Output { .. } => true,
            _ => false,
        }
    }
}
