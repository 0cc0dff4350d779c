//! One error type for the library. Every variant names what went wrong and where, so the CLI
//! can print a single line and exit non-zero.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A preset or recipe that parses but asks for something impossible.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// A TOML file that does not parse or has unknown / ill-typed keys.
    #[error("{path}: {message}")]
    ConfigFile { path: PathBuf, message: String },

    /// A bad command-line combination (e.g. worker index out of range).
    #[error("{0}")]
    Usage(String),

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{path}: HDF5 error: {message}")]
    Hdf5 { path: PathBuf, message: String },

    /// A corpus whose manifest or shards disagree with each other or with the request.
    #[error("{path}: {message}")]
    Corpus { path: PathBuf, message: String },

    /// A data file (e.g. `.ts`) with a problem at a given line.
    #[error("{path}:{line}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        message: String,
    },

    #[error("{0}")]
    Other(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub fn hdf5(path: impl Into<PathBuf>, err: impl std::fmt::Display) -> Self {
        Error::Hdf5 {
            path: path.into(),
            message: err.to_string(),
        }
    }

    pub fn corpus(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Corpus {
            path: path.into(),
            message: message.into(),
        }
    }
}
