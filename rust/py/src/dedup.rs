//! `fastbert._core.DedupIndex` and `minhash_signatures`: extract, release the GIL,
//! call `fastbert_core::dedup`, convert to numpy. No dedup logic lives here; the
//! Python API is `fastbert/dedup.py`.

use fastbert_core::dedup::{self, Index, MinHasher, Params, Unit};
use numpy::{IntoPyArray, PyArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors::without_gil;
use crate::inputs::hold;

fn params(threshold: f64, num_perm: usize, ngram: usize, unit: &str) -> PyResult<Params> {
    let unit = Unit::parse(unit).ok_or_else(|| {
        PyValueError::new_err(format!("unit must be 'word' or 'char', not {unit:?}"))
    })?;
    let p = Params {
        threshold,
        num_perm,
        ngram,
        unit,
    };
    p.validate().map_err(crate::errors::to_py)?;
    Ok(p)
}

/// A streaming duplicate index: `start_split()`, `add(texts)` in batches, then `finish()`.
#[pyclass(module = "fastbert._core", name = "DedupIndex")]
pub struct PyDedupIndex {
    inner: Index,
}

#[pymethods]
impl PyDedupIndex {
    #[new]
    #[pyo3(signature = (threshold, num_perm, ngram, unit))]
    fn new(threshold: f64, num_perm: usize, ngram: usize, unit: &str) -> PyResult<Self> {
        let inner =
            Index::new(params(threshold, num_perm, ngram, unit)?).map_err(crate::errors::to_py)?;
        Ok(PyDedupIndex { inner })
    }

    /// `(bands, rows)` of the LSH banding chosen for the threshold.
    #[getter]
    fn banding(&self) -> (usize, usize) {
        let b = self.inner.banding();
        (b.bands, b.rows)
    }

    #[getter]
    fn documents(&self) -> usize {
        self.inner.documents()
    }

    #[getter]
    fn splits(&self) -> usize {
        self.inner.splits()
    }

    fn start_split(&mut self) {
        self.inner.start_split();
    }

    #[pyo3(signature = (texts, *, num_threads=None))]
    fn add(
        &mut self,
        py: Python<'_>,
        texts: &Bound<'_, PyAny>,
        num_threads: Option<usize>,
    ) -> PyResult<()> {
        let held = hold(texts, false, "texts")?;
        let texts = held.texts()?;
        let refs = texts.refs();
        let inner = &mut self.inner;
        without_gil(py, || inner.add(&refs, num_threads))
    }

    /// Numpy arrays: `cluster_offsets`, `cluster_docs`, `pair_a`, `pair_b`,
    /// `pair_matches`, `split_starts`, `empty`; and the counts `distinct`,
    /// `compared`, `near_pairs`.
    #[pyo3(signature = (*, num_threads=None))]
    fn finish<'py>(
        &self,
        py: Python<'py>,
        num_threads: Option<usize>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let inner = &self.inner;
        let d = without_gil(py, || Ok(inner.finish(num_threads)))?;
        let out = PyDict::new(py);
        let l = d.linked;
        let offsets: Vec<u64> = l.cluster_offsets.iter().map(|&o| o as u64).collect();
        out.set_item("cluster_offsets", offsets.into_pyarray(py))?;
        out.set_item("cluster_docs", l.cluster_docs.into_pyarray(py))?;
        let (mut a, mut b, mut m) = (
            Vec::with_capacity(l.pairs.len()),
            Vec::with_capacity(l.pairs.len()),
            Vec::with_capacity(l.pairs.len()),
        );
        for (x, y, k) in l.pairs {
            a.push(x);
            b.push(y);
            m.push(k);
        }
        out.set_item("pair_a", a.into_pyarray(py))?;
        out.set_item("pair_b", b.into_pyarray(py))?;
        out.set_item("pair_matches", m.into_pyarray(py))?;
        out.set_item("split_starts", d.split_starts.into_pyarray(py))?;
        let empty: Vec<u64> = d.empty.iter().map(|&e| e as u64).collect();
        out.set_item("empty", empty.into_pyarray(py))?;
        out.set_item("distinct", d.distinct)?;
        out.set_item("compared", d.compared)?;
        out.set_item("near_pairs", d.near_pairs)?;
        Ok(out)
    }
}

/// `(exact, signatures, empty)` of `texts`: uint64 `(n,)`, uint32 `(n, num_perm)`, bool `(n,)`.
#[pyfunction]
#[pyo3(signature = (texts, num_perm, ngram, unit, *, num_threads=None))]
pub fn minhash_signatures<'py>(
    py: Python<'py>,
    texts: &Bound<'py, PyAny>,
    num_perm: usize,
    ngram: usize,
    unit: &str,
    num_threads: Option<usize>,
) -> PyResult<Bound<'py, PyAny>> {
    let p = params(1.0, num_perm, ngram, unit)?;
    let held = hold(texts, false, "texts")?;
    let texts = held.texts()?;
    let refs = texts.refs();
    let n = refs.len();
    let fp = without_gil(py, || {
        let hasher = MinHasher::new(p.num_perm);
        Ok(dedup::fingerprints(&refs, &p, &hasher, num_threads))
    })?;
    let sigs = fp.signatures.into_pyarray(py).reshape([n, p.num_perm])?;
    let out = (fp.exact.into_pyarray(py), sigs, fp.empty.into_pyarray(py));
    Ok(out.into_pyobject(py)?.into_any())
}
