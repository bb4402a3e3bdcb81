//! Dropout scale tensors; see `fastbert_core::dropout`.

use fastbert_core::dropout;
use numpy::{IntoPyArray, PyArray1};
use pyo3::prelude::*;

use crate::errors::without_gil;

/// `n` float32 dropout scales (0 where dropped, `1 / (1 - p)` elsewhere) for `seed`,
/// filled in parallel with the GIL released.
#[pyfunction]
#[pyo3(signature = (n, p, seed, *, num_threads=None))]
pub fn dropout_scale<'py>(
    py: Python<'py>,
    n: usize,
    p: f64,
    seed: u64,
    num_threads: Option<usize>,
) -> PyResult<Bound<'py, PyArray1<f32>>> {
    let out = without_gil(py, || {
        let mut scale = vec![0.0_f32; n];
        dropout::fill_scale(&mut scale, p, seed, num_threads)?;
        Ok(scale)
    })?;
    Ok(out.into_pyarray(py))
}
