//! The one place where core errors and Rust panics become Python exceptions.

use std::panic::{catch_unwind, AssertUnwindSafe};

use fastbert_core::Error;
use pyo3::exceptions::{PyFileNotFoundError, PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;

pyo3::create_exception!(
    _core,
    UnsupportedTokenizerError,
    PyValueError,
    "The tokenizer is valid but is not BERT WordPiece as fastbert implements it; use the `tokenizers` fallback."
);
pyo3::create_exception!(
    _core,
    InternalError,
    PyRuntimeError,
    "A bug inside fastbert's Rust core (a caught panic). Please report it with the input that caused it."
);

pub fn to_py(err: Error) -> PyErr {
    match err {
        Error::Io { ref source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            PyFileNotFoundError::new_err(err.to_string())
        }
        Error::Io { .. } => PyOSError::new_err(err.to_string()),
        Error::BadFile { .. } | Error::InvalidArgument(_) => PyValueError::new_err(err.to_string()),
        Error::Unsupported(_) => UnsupportedTokenizerError::new_err(err.to_string()),
    }
}

/// Run `f` without the GIL; a panic inside becomes `InternalError` instead of
/// unwinding into the interpreter.
pub fn without_gil<T, F>(py: Python<'_>, f: F) -> PyResult<T>
where
    T: Send,
    F: FnOnce() -> fastbert_core::Result<T> + Send,
{
    match py.detach(|| catch_unwind(AssertUnwindSafe(f))) {
        Ok(result) => result.map_err(to_py),
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            Err(InternalError::new_err(format!(
                "fastbert's Rust core panicked: {msg}"
            )))
        }
    }
}
