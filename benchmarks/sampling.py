"""Sampling profile of an exploration with py-spy, which (unlike cProfile) sees the
tracer's callbacks: CPython calls them with profiling switched off, so cProfile books
their time to the traced program's own lines.

py-spy lives in its own venv (``benchmarks/.venv-profile``), created by
``python benchmarks/run.py --profile``; it is a tool of the benchmark, not of interleave.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv-profile"
PY_SPY = VENV / "bin" / "py-spy"

_CHILD = """
from interleave import explore
r = explore({target!r}, runs=10**7, time_limit={seconds!r}, strategy={strategy!r}, shrink_time=0.0)
print(r.runs, r.steps)
"""


def ensure() -> str | None:
    """Install py-spy in its venv if needed; None when ready, else why not."""
    if PY_SPY.exists():
        return None
    try:
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, capture_output=True, timeout=300)
        pip = subprocess.run([str(VENV / "bin" / "python"), "-m", "pip", "install", "-q", "py-spy"],
                             capture_output=True, text=True, timeout=600)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        return f"could not create {VENV.name}: {exc}"
    return None if PY_SPY.exists() else f"pip could not install py-spy: {pip.stderr.strip()[-200:]}"


def _function(frame: str) -> str:
    """``Scheduler.line (interleave/scheduler.py:333)`` -> ``Scheduler.line (interleave/scheduler.py)``."""
    return re.sub(r":\d+\)$", ")", frame)


def profile(target: str, strategy: str, seconds: float, root: Path, top: int = 12) -> dict[str, Any]:
    """Sample one exploration of ``target``; the functions with the most own and total samples."""
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "samples.txt"
        proc = subprocess.run(
            [str(PY_SPY), "record", "--rate", "1000", "--format", "raw", "--output", str(raw), "--",
             sys.executable, "-c", _CHILD.format(target=target, seconds=seconds, strategy=strategy)],
            capture_output=True, text=True, cwd=root, timeout=seconds + 120, env=dict(os.environ))
        if not raw.exists():
            return {"error": f"py-spy failed (exit {proc.returncode}): {proc.stderr.strip()[-300:]}"}
        own: Counter[str] = Counter()
        total: Counter[str] = Counter()
        samples = 0
        for line in raw.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack:
                continue
            n = int(count)
            samples += n
            frames = [_function(f) for f in stack.split(";") if f]
            if frames:
                own[frames[-1]] += n
            for f in set(frames):
                total[f] += n
    counts = re.findall(r"^(\d+) (\d+)$", proc.stdout, re.M)
    runs, steps = counts[-1] if counts else ("0", "0")
    return {
        "target": target, "strategy": strategy, "samples": samples, "runs": int(runs), "steps": int(steps),
        "own": [{"function": f, "share": n / samples} for f, n in own.most_common(top)],
        "total": [{"function": f, "share": n / samples} for f, n in total.most_common(top + 8)],
    }
