//! `fastbert._core`: PyO3 bindings of `fastbert-core`. Each method extracts its
//! arguments, releases the GIL around the core call, and converts the result.

mod align;
mod convert;
mod dedup;
mod dropout;
mod errors;
mod inputs;
mod text;
mod tokenizer;

use pyo3::prelude::*;

/// mimalloc for every Rust allocation in the extension: encodings are many small
/// vectors made on worker threads and freed on the Python thread, which glibc's
/// allocator handles slowly (a third of `encode_batch`'s time went to malloc/free).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Raise `InternalError` from a deliberate panic, so tests can check that a
/// panic in the core never aborts the interpreter.
#[pyfunction]
fn _panic_for_test(py: Python<'_>) -> PyResult<()> {
    errors::without_gil(py, || -> fastbert_core::Result<()> {
        panic!("deliberate panic for the test suite")
    })
}

/// Whether this process is a fork of the one whose thread pool we created
/// (then batch calls run on one thread).
#[pyfunction]
fn _is_forked_child() -> bool {
    fastbert_core::pool::is_forked_child()
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    fastbert_core::pool::claim_owner();
    m.add_class::<tokenizer::PyTokenizer>()?;
    m.add_class::<tokenizer::PyEncoding>()?;
    m.add_class::<dedup::PyDedupIndex>()?;
    m.add_function(wrap_pyfunction!(dedup::minhash_signatures, m)?)?;
    m.add_function(wrap_pyfunction!(dropout::dropout_scale, m)?)?;
    m.add(
        "UnsupportedTokenizerError",
        m.py().get_type::<errors::UnsupportedTokenizerError>(),
    )?;
    m.add("InternalError", m.py().get_type::<errors::InternalError>())?;
    m.add_function(wrap_pyfunction!(_panic_for_test, m)?)?;
    m.add_function(wrap_pyfunction!(_is_forked_child, m)?)?;
    m.add_function(wrap_pyfunction!(align::word_labels_to_token_labels, m)?)?;
    m.add_function(wrap_pyfunction!(align::spans_to_bio, m)?)?;
    m.add_function(wrap_pyfunction!(align::word_predictions, m)?)?;
    m.add_function(wrap_pyfunction!(align::token_entities, m)?)?;
    m.add_function(wrap_pyfunction!(align::chunk_batch, m)?)?;
    m.add_function(wrap_pyfunction!(align::vote_windows, m)?)?;
    m.add_function(wrap_pyfunction!(align::mean_windows, m)?)?;
    m.add_function(wrap_pyfunction!(align::merge_tokens, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
