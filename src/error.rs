//! One error type for the library. Every variant names what s2kit was doing and on which
//! file, and keeps the underlying error as its source, so the CLI can print a single line
//! ("loading checkpoint runs/x/checkpoint/online.safetensors: ...") and exit non-zero.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A preset, recipe or request that parses but asks for something impossible.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// A TOML file that does not parse or has unknown / ill-typed keys.
    #[error("{path}: {message}")]
    ConfigFile { path: PathBuf, message: String },

    /// A request whose parts do not fit together (a worker index out of range, a protocol
    /// that needs a pretrained encoder, an output directory that is in use).
    #[error("{0}")]
    Request(String),

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{path}: HDF5: {source}")]
    Hdf5 {
        path: PathBuf,
        #[source]
        source: hdf5::Error,
    },

    /// A corpus whose manifest or shards disagree with each other or with the request.
    #[error("{path}: {message}")]
    Corpus { path: PathBuf, message: String },

    /// A dataset file (e.g. `.ts`) with a problem at a given line.
    #[error("{path}:{line}: {message}")]
    Dataset {
        path: PathBuf,
        line: usize,
        message: String,
    },

    /// A dataset whose files do not fit together (TRAIN and TEST disagree).
    #[error("{path}: {message}")]
    DatasetFiles { path: PathBuf, message: String },

    /// A training checkpoint that cannot be written, read, or fitted to the model.
    #[error("{action} checkpoint {path}: {source}")]
    Checkpoint {
        action: Action,
        path: PathBuf,
        #[source]
        source: candle_core::Error,
    },

    /// Saved encoder weights that cannot be written, read, or fitted to the encoder.
    #[error("{action} encoder weights {path}: {source}")]
    Weights {
        action: Action,
        path: PathBuf,
        #[source]
        source: candle_core::Error,
    },

    /// A JSON file of ours (manifest, encoder config, report) that cannot be read or written.
    #[error("{action} {path}: {source}")]
    Json {
        action: Action,
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    /// A tensor computation that failed (a shape or device mismatch, a missing kernel).
    #[error("tensor computation: {0}")]
    Tensor(#[from] candle_core::Error),

    #[error("{0}")]
    Other(String),
}

/// What s2kit was doing with a file when it failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Loading,
    Saving,
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Action::Loading => "loading",
            Action::Saving => "saving",
        })
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub fn hdf5(path: impl Into<PathBuf>, source: hdf5::Error) -> Self {
        Error::Hdf5 {
            path: path.into(),
            source,
        }
    }

    pub fn corpus(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Corpus {
            path: path.into(),
            message: message.into(),
        }
    }

    /// Wraps a candle error from reading or writing checkpoint file `path`.
    pub fn checkpoint(
        action: Action,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(candle_core::Error) -> Self {
        with_file(action, path, |action, path, source| Error::Checkpoint {
            action,
            path,
            source,
        })
    }

    /// Wraps a candle error from reading or writing encoder weights `path`.
    pub fn weights(
        action: Action,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(candle_core::Error) -> Self {
        with_file(action, path, |action, path, source| Error::Weights {
            action,
            path,
            source,
        })
    }

    /// Wraps a serde error from reading or writing JSON file `path`.
    pub fn json(
        action: Action,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(serde_json::Error) -> Self {
        with_file(action, path, |action, path, source| Error::Json {
            action,
            path,
            source,
        })
    }
}

/// A `map_err` adapter that builds the variant `make` from what was done, where, and why.
fn with_file<E>(
    action: Action,
    path: impl Into<PathBuf>,
    make: fn(Action, PathBuf, E) -> Error,
) -> impl FnOnce(E) -> Error {
    let path = path.into();
    move |source| make(action, path, source)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensor_errors_keep_their_cause_and_say_what_was_being_done() {
        let cause = candle_core::Error::Msg("shape mismatch in set".into());
        let err = Error::checkpoint(Action::Loading, "runs/x/checkpoint/online.safetensors")(cause);
        assert_eq!(
            err.to_string(),
            "loading checkpoint runs/x/checkpoint/online.safetensors: shape mismatch in set"
        );
        assert!(std::error::Error::source(&err).is_some());
        let bare: Error = candle_core::Error::Msg("boom".into()).into();
        assert_eq!(bare.to_string(), "tensor computation: boom");
    }
}
