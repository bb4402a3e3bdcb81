"""fastbert's in-tree PEP 517 backend (maturin + shipping kernels/ as fastbert.kernels)."""
