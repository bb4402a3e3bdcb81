"""Run every tokenizer benchmark and print their tables one after another.

python benches/run_all.py [--quick]
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ["bench_encode.py", "bench_align_conll.py", "bench_batch_call.py"]

if __name__ == "__main__":
    for name in SCRIPTS:
        subprocess.run([sys.executable, str(HERE / name), *sys.argv[1:]], check=True)
        print(flush=True)
