"""Run the three tokenizer benchmarks, print their tables, then one summary table.

    python benches/run_all.py [--quick]

Exit status 1 if any benchmark found fastbert's output different from its competitor's
(those rows then carry no ratio) or failed to run. A ratio below its bar is reported in
the table, not as a failure: it is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import header, verdict

HERE = Path(__file__).resolve().parent

SCRIPTS = ["bench_encode.py", "bench_align_conll.py", "bench_batch_call.py"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run, not a result)")
    args = p.parse_args()
    header("fastbert tokenizer benchmarks" + (" (--quick: smoke run)" if args.quick else ""))
    rows, failed = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name in SCRIPTS:
            out = Path(tmp) / f"{name}.json"
            cmd = [sys.executable, str(HERE / name), "--json", str(out), *(["--quick"] if args.quick else [])]
            code = subprocess.run(cmd).returncode
            print(flush=True)
            if out.exists():
                rows += json.loads(out.read_text())
            if code != 0:
                failed.append(name)
    print("## Summary\n")
    print("| claim | threads | fastbert | competitor | ratio | bar | outputs equal | verdict |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        ratio = "—" if r["ratio"] is None else f"{r['ratio']:.1f}×"
        print(
            f"| {r['claim']} | {r['setting']} | {r['fastbert']} | {r['competitor']} | {ratio} "
            f"| ≥{r['bar']:g}× | {'yes' if r['outputs_equal'] else 'NO'} "
            f"| {verdict(r['ratio'], r['bar'], r['outputs_equal'])} |"
        )
    if failed:
        print(f"\nFailed: {', '.join(failed)}")
        sys.exit(1)


if __name__ == "__main__":
    main()
