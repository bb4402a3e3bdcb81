//! The one error type of the core crate. The bindings map it to Python
//! exceptions in exactly one place (`rust/py/src/errors.rs`).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A vocabulary or tokenizer file could not be read at all.
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file was read but its content is not what a Hugging Face model folder holds.
    #[error("{path}: {message}")]
    BadFile { path: PathBuf, message: String },
    /// The tokenizer is valid but uses a feature this encoder does not implement;
    /// callers fall back to Hugging Face `tokenizers` for it.
    #[error("unsupported tokenizer: {0}")]
    Unsupported(String),
    /// A caller passed an argument that cannot be honoured (bad stride, bad strategy, ...).
    #[error("{0}")]
    InvalidArgument(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn bad_file(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::BadFile {
            path: path.into(),
            message: message.into(),
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Error::InvalidArgument(message.into())
    }
}
