"""The other Python tools, each in its own venv beside this file, driven by subprocess.

``ensure(peer)`` creates the venv (``benchmarks/.venv-peers-<peer>``) with the interpreter
the tool needs and ``pip install``s the tool; ``run(peer, ...)`` executes that tool's
driver script from ``benchmarks/peers/`` and returns its JSON line. Nothing here is a
dependency of interleave: the venvs exist only to measure the peers.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PEERS_DIR = HERE / "peers"


@dataclass(frozen=True)
class Peer:
    name: str
    package: str
    python: str  # minor version the tool needs, e.g. "3.12"
    driver: str
    wrapper: str | None = None  # a console script the driver must run under

    @property
    def venv(self) -> Path:
        return HERE / f".venv-peers-{self.name}"

    @property
    def interpreter(self) -> Path:
        return self.venv / "bin" / "python"


PEERS = {
    # frontrun refuses to explore unless started by its own CLI (which sets up its I/O preload).
    "frontrun": Peer("frontrun", "frontrun", "3.11", "run_frontrun.py", wrapper="frontrun"),
    "interleave-test": Peer("interleave-test", "interleave-test", "3.12", "run_interleave_test.py"),
    "ploom": Peer("ploom", "ploom", "3.13", "run_ploom.py"),
}


def find_python(minor: str) -> str | None:
    """An interpreter of version ``minor`` on this machine (PATH, then pyenv's versions)."""
    candidates = [shutil.which(f"python{minor}")]
    pyenv_root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates += sorted(glob.glob(f"{pyenv_root}/versions/{minor}*/bin/python{minor}"), reverse=True)
    if sys.version_info[:2] == tuple(int(x) for x in minor.split(".")):
        candidates.insert(0, sys.executable)
    for candidate in candidates:
        if not candidate:
            continue
        try:
            got = subprocess.run([candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                 capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            continue
        if got == minor:
            return candidate
    return None


def ensure(peer: Peer) -> str | None:
    """Create the peer's venv and install it if needed; None when ready, else why not."""
    if peer.interpreter.exists() and installed_version(peer):
        return None
    python = find_python(peer.python)
    if python is None:
        return f"no Python {peer.python} interpreter found (the tool needs it)"
    try:
        subprocess.run([python, "-m", "venv", str(peer.venv)], check=True, capture_output=True, timeout=300)
        pip = subprocess.run([str(peer.interpreter), "-m", "pip", "install", "-q", peer.package],
                             capture_output=True, text=True, timeout=900)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        return f"could not create the venv: {exc}"
    if pip.returncode != 0:
        return f"pip could not install {peer.package}: {pip.stderr.strip().splitlines()[-1:]}"
    return None if installed_version(peer) else f"{peer.package} did not install"


def installed_version(peer: Peer) -> str | None:
    try:
        out = subprocess.run([str(peer.interpreter), "-c",
                              f"from importlib.metadata import version; print(version({peer.package!r}))"],
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def python_version(peer: Peer) -> str:
    out = subprocess.run([str(peer.interpreter), "-c", "import platform; print(platform.python_version())"],
                         capture_output=True, text=True, timeout=60)
    return out.stdout.strip()


def run(peer: Peer, args: list[str], timeout: float) -> dict[str, Any]:
    """Run the peer's driver with ``args``; its JSON line, or an ``error`` entry."""
    command = [str(peer.interpreter), str(PEERS_DIR / peer.driver), *args]
    if peer.wrapper:
        command.insert(0, str(peer.venv / "bin" / peer.wrapper))
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=HERE.parent)
    except subprocess.TimeoutExpired:
        return {"error": f"the driver did not finish within {timeout:.0f}s (killed)"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                break
    tail = " | ".join(proc.stderr.strip().splitlines()[-2:])
    return {"error": f"the driver crashed (exit {proc.returncode}): {tail[:300]}"}
