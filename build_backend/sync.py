"""``python -m build_backend.sync [--check]``: copy ``kernels/*.py`` to ``python/fastbert/kernels/``.

Run it before ``maturin develop`` / ``maturin build`` (which bypass the PEP 517
backend); ``pip install`` / ``pip wheel`` / ``python -m build`` run it themselves.
"""

import sys

from build_backend.fastbert_build import main

if __name__ == "__main__":
    sys.exit(main())
