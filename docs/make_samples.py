"""Writes the sample outputs in README.md and docs/pytest.md by running what they show.

Each sample sits between ``<!-- sample NAME -->`` and ``<!-- end sample NAME -->`` and
is replaced by the output of its command, run now. docs/pytest.md's settings table is
written from ``interleave.settings.OPTIONS`` in the same way. ``--check`` writes nothing
and exits 1 when a file would change (times aside, which differ on every run); the
tests run it so.

Paths of this checkout are shown relative to it (``./examples/...``), and a scratch
directory as ``/tmp/project``, so the samples do not depend on where the repository is.
Samples are made with a fixed seed and the default workers (one process per core): the
answer does not depend on the number of workers, and ``--check`` runs each ``explore``
sample again with 1 and with 3 workers and compares those too (the header's count of
workers aside). Traces and tokens depend on the Python version, so ``--check`` compares
only on the version the samples were made with (named in them).

    python docs/make_samples.py           # rewrite the samples
    python docs/make_samples.py --check   # compare, write nothing
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from interleave import settings  # noqa: E402  (after the path, to document this checkout)
from interleave.pytest_plugin import DEFAULT_RUNS, DEFAULT_RUNS_PER_INPUT, PYTEST_DEFAULTS  # noqa: E402

VERSION = f"{sys.version_info[0]}.{sys.version_info[1]}"
#: Figures in seconds change on every run; --check compares without them.
SECONDS = re.compile(r"\d+\.\d+s\b")
#: The number of workers, named in a report's header, is the machine's number of cores.
WORKERS = re.compile(r"\b\d+ workers?\]")
#: What ``--check`` runs an explore sample with besides the default, to show the answer is the same.
OTHER_WORKERS = ("1", "3")


def comparable(text: str) -> str:
    return WORKERS.sub("N workers]", SECONDS.sub("Ts", text))


@dataclass(frozen=True)
class Sample:
    name: str
    file: str
    #: The command as shown; run from the repository's root, or in a scratch directory holding ``files``.
    command: str
    #: Code blocks of ``file`` (by their first line) written into the scratch directory, as ``(name, first line)``.
    files: tuple[tuple[str, str], ...] = ()
    #: Keeps the part of the output worth showing.
    excerpt: Callable[[str], str] = lambda text: text


def _failure_part(text: str) -> str:
    """From pytest's output: the failure interleave reports, without pytest's frame around it."""
    start = text.index("interleave: FAILURE")
    end = text.index("=" * 10, start)
    return "...\n" + text[start:end].rstrip() + "\n...\n"


def _failure_head(text: str) -> str:
    """The failure's first lines, up to where it was found; object addresses left out."""
    start = text.index("interleave: FAILURE")
    end = text.index("\n", text.index("  found in run", start))
    return "...\n" + re.sub(r"0x[0-9a-f]+", "0x...", text[start:end]) + "\n...\n"


def _stats_part(text: str) -> str:
    start = text.index("interleave statistics")
    line_start = text.rindex("\n", 0, start) + 1
    end = text.index("=" * 10, text.index("\n", start))
    return "...\n" + text[line_start:end].rstrip() + "\n...\n"


SAMPLES = (
    Sample("tour", "README.md", "interleave explore examples/lost_update.py"),
    Sample("pytest-failure", "docs/pytest.md", "python -m pytest test_counter.py",
           files=(("test_counter.py", "# test_counter.py"),), excerpt=_failure_part),
    Sample("pytest-fixed", "docs/pytest.md", "python -m pytest test_counter.py --interleave-stats",
           files=(("test_counter.py", "# test_counter.py, fixed"),), excerpt=_stats_part),
    Sample("pytest-hypothesis", "docs/pytest.md", "python -m pytest test_add.py --hypothesis-seed=0",
           files=(("test_add.py", "# test_add.py"),), excerpt=_failure_head),
)


def code_block(text: str, first_line: str) -> str:
    """The fenced python block of ``text`` whose first line is ``first_line``."""
    for block in re.findall(r"```python\n(.*?)```", text, flags=re.S):
        if block.startswith(first_line + "\n"):
            return block
    raise SystemExit(f"make_samples: no python block starting {first_line!r}")


def run(sample: Sample, text: str, extra: tuple[str, ...] = ()) -> str:
    """The sample as its command prints it now (``extra``: more arguments, not shown)."""
    # This Python first on PATH, so that a replay line says `python`, not where this one lives.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    # Without CI's variables: Hypothesis prints a reproduce_failure line under CI, not on a desk.
    env = {name: value for name, value in os.environ.items() if name not in ("CI", "TF_BUILD")}
    env = {**env, "PYTHONHASHSEED": "0", "PYTHONPATH": str(ROOT), "COLUMNS": "100", "PATH": path,
           "PYTEST_ADDOPTS": "-p no:cacheprovider", "PY_COLORS": "0"}
    words = sample.command.split() + list(extra)
    if words[0] == "interleave":
        words = [sys.executable, "-m", "interleave", *words[1:]]
    elif words[0] == "python":
        words = [sys.executable, *words[1:]]
    with tempfile.TemporaryDirectory() as scratch:
        cwd = Path(scratch, "project") if sample.files else ROOT
        cwd.mkdir(exist_ok=True)
        for name, first_line in sample.files:
            (cwd / name).write_text(code_block(text, first_line))
        done = subprocess.run(words, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    # Paths that differ from checkout to checkout: the scratch directory is shown as /tmp/project,
    # the repository as "." (where the commands run).
    output = sample.excerpt(done.stdout).replace(scratch, "/tmp").replace(str(ROOT), ".")
    return f"```\n$ {sample.command}\n{output.rstrip()}\n```\n"


def replace_between(text: str, name: str, body: str, note: str) -> str:
    begin = re.compile(rf"<!-- sample {re.escape(name)}\b[^>]*-->\n")
    end = f"<!-- end sample {name} -->"
    found = begin.search(text)
    if found is None or end not in text[found.end():]:
        raise SystemExit(f"make_samples: no markers for the sample {name!r}")
    stop = text.index(end, found.end())
    return text[:found.start()] + f"<!-- sample {name} ({note}) -->\n" + body + text[stop:]


def settings_table() -> str:
    rows = ["| marker argument | command line | ini option | default | what it sets |", "|---|---|---|---|---|"]
    pytest_defaults = {"runs": f"{DEFAULT_RUNS} ({DEFAULT_RUNS_PER_INPUT} per input with `@given`)",
                       **{name: str(value) for name, value in PYTEST_DEFAULTS.items()}}
    for option in settings.OPTIONS:
        default = pytest_defaults.get(option.name)
        if default is None:
            default = "" if option.default in (None, ()) else f"{option.default}"
        rows.append(f"| `{option.name}` | `{option.pytest_flag}` | `{option.ini}` | {default} | "
                    f"{option.help.replace('|', '/')} |")
    rows.append("| `replay` | `--interleave-replay` | | | Run exactly this schedule instead of exploring. |")
    return "\n".join(rows) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 if a file would change")
    check = parser.parse_args().check
    texts = {name: (ROOT / name).read_text() for name in {s.file for s in SAMPLES}}
    made_on = re.search(r"<!-- sample \S+ \(made by docs/make_samples\.py on Python (\d+\.\d+)\) -->",
                        texts["README.md"])
    if check and made_on and made_on.group(1) != VERSION:
        print(f"make_samples: the samples were made on Python {made_on.group(1)}; this is {VERSION}: not compared")
        return 0
    new = dict(texts)
    made: dict[str, str] = {}
    for sample in SAMPLES:
        made[sample.name] = run(sample, new[sample.file])
        new[sample.file] = replace_between(new[sample.file], sample.name, made[sample.name],
                                           f"made by docs/make_samples.py on Python {VERSION}")
    new["docs/pytest.md"] = replace_between(new["docs/pytest.md"], "settings", settings_table(),
                                            "made by docs/make_samples.py from interleave/settings.py")
    changed = [name for name in texts if comparable(new[name]) != comparable(texts[name])]
    if check:
        for name in changed:
            sys.stdout.writelines(difflib.unified_diff(texts[name].splitlines(True), new[name].splitlines(True),
                                                       name, f"{name} (as made now)"))
        differ = 0
        for sample in SAMPLES:
            if not sample.command.startswith("interleave explore"):
                continue
            shown = made[sample.name]
            for workers in OTHER_WORKERS:
                other = run(sample, texts[sample.file], ("--workers", workers))
                if comparable(other) != comparable(shown):
                    differ += 1
                    sys.stdout.writelines(difflib.unified_diff(
                        comparable(shown).splitlines(True), comparable(other).splitlines(True),
                        f"{sample.name}", f"{sample.name} with --workers {workers}"))
        return 1 if changed or differ else 0
    for name in changed:
        (ROOT / name).write_text(new[name])
        print(f"make_samples: wrote {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
