"""What went wrong in a run, described in the program's terms (its files, lines and threads)."""

from __future__ import annotations

import linecache
import os
import traceback
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from .files import is_threading_internal, is_user_file
from .runview import RunView, ThreadView

EXCEPTION, DEADLOCK, HANG = "exception", "deadlock", "hang"


@dataclass
class Failure:
    """A failing run: its kind, a one-line message and the details a person needs."""

    kind: str
    message: str
    details: str
    #: What makes two failures "the same" for shrinking: kind plus where it happened.
    place: tuple[Any, ...] = field(default=())
    thread: str | None = None

    def same_as(self, other: Failure | None) -> bool:
        return other is not None and other.kind == self.kind and other.place == self.place


def source_line(filename: str, lineno: int) -> str:
    return linecache.getline(filename, lineno).strip()


def user_location(frame: Any) -> str | None:
    """``file:line`` of the innermost frame of the user's code, walking outwards."""
    frame = innermost_user_frame(frame)
    if frame is None:
        return None
    return f"{_short(frame.f_code.co_filename)}:{frame.f_lineno}"


def innermost_user_frame(frame: Any) -> Any:
    while frame is not None and not is_user_file(frame.f_code.co_filename):
        frame = frame.f_back
    return frame


#: The directory paths are shown from during a run: where it started, whatever directory
#: the program moves to (set by :mod:`interleave.guard`). Outside a run: the current one.
run_dir: str | None = None


def _short(filename: str) -> str:
    return _relative(filename, run_dir or os.getcwd())


@cache
def _relative(filename: str, base: str) -> str:
    try:
        rel = os.path.relpath(filename, base)
    except ValueError:
        return filename
    return filename if rel.startswith("..") else rel


def exception_failure(exc: BaseException, thread_name: str) -> Failure:
    """An uncaught exception, with the program's own traceback (interleave frames dropped)."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if is_user_file(f.filename)]
    lines = ["Traceback (most recent call last):"]
    lines += [line.rstrip("\n") for line in traceback.format_list(frames)]
    lines += [line.rstrip("\n") for line in traceback.format_exception_only(type(exc), exc)]
    where = frames[-1] if frames else None
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    message = f"{type(exc).__name__}{': ' + text if text else ''} in {thread_name}"
    if where is not None:
        message += f" at {_short(where.filename)}:{where.lineno}"
    place = (type(exc).__name__, where.filename if where else None, where.lineno if where else None)
    return Failure(EXCEPTION, message, "\n".join(lines), place, thread_name)


def exit_failure(status: int, thread_name: str, frame: Any) -> Failure:
    """``os._exit`` with a non-zero status: the process the run stands for ended failing."""
    frames = [f for f in traceback.extract_stack(frame) if is_user_file(f.filename)]
    where = frames[-1] if frames else None
    message = f"os._exit({status}) in {thread_name}" + (f" at {_short(where.filename)}:{where.lineno}" if where else "")
    lines = ["Stack (most recent call last):"] + [line.rstrip("\n") for line in traceback.format_list(frames)]
    lines.append(f"os._exit({status}): the process ends with exit status {status}")
    place = ("os._exit", where.filename if where else None, where.lineno if where else None)
    return Failure(EXCEPTION, message, "\n".join(lines), place, thread_name)


def api_name(frame: Any) -> str | None:
    """The library call a thread is blocked in, e.g. ``Condition.wait`` or ``Queue.get``.

    The outermost public function of the threading modules below the user's code (or
    below the thread's start, for threads that run only library code, like pool workers).
    """
    found = None
    while frame is not None and not is_user_file(frame.f_code.co_filename):
        code = frame.f_code
        if is_threading_internal(code.co_filename) and not code.co_name.startswith("_") and code.co_name != "run":
            found = getattr(code, "co_qualname", code.co_name).replace("_PySimpleQueue", "SimpleQueue")
        frame = frame.f_back
    return found


def blocking_call(frame: Any, waiting_on: Any) -> str:
    """What a blocked thread called: ``Thread.join``, ``Queue.get``, ``Lock.acquire``..."""
    api = api_name(frame)
    if api is not None:
        return api
    call = getattr(waiting_on, "call", None)
    if call is not None:
        return str(call)
    if hasattr(waiting_on, "holder"):
        return f"{type(waiting_on).__name__}.acquire"
    return "sleep" if type(waiting_on).__name__ == "_Sleep" else "wait"


def blocked_thread_report(sched: RunView, blocked: Sequence[ThreadView]) -> Failure:
    """A deadlock: each blocked thread, the line it waits on, what for, and who holds it."""
    rows = []
    place = []
    for vt in blocked:
        frame = vt.greenlet.gr_frame if vt.greenlet is not None and vt.greenlet.gr_frame else None
        if frame is None and vt is sched.current:
            import sys

            frame = sys._getframe(2)
        user = innermost_user_frame(frame)
        api = blocking_call(frame, vt.waiting_on)
        where = f"{_short(user.f_code.co_filename)}:{user.f_lineno}" if user else "?"
        src = source_line(user.f_code.co_filename, user.f_lineno) if user else ""
        rows.append(f"  {vt.name} blocked in {api} at {where}: {src}")
        rows.append(f"      waits for {_waits_for(vt, api)}")
        place.append((vt.name, where))
    names = ", ".join(vt.name for vt in blocked)
    message = f"deadlock: every thread is blocked ({names}) and no timer is pending"
    details = "Deadlock: every live thread is blocked and no timer is pending.\n" + "\n".join(rows)
    return Failure(DEADLOCK, message, details, tuple(sorted(place)))


def _waits_for(vt: ThreadView, api: str) -> str:
    obj = vt.waiting_on
    if vt.frozen:
        return "its process to be resumed (it is paused)"
    holder = getattr(obj, "holder", None)
    if api.endswith("join") and holder is not None:
        return f"{holder.name} to finish"
    if holder is vt:
        return f"a wake-up ({api.split('.')[0]} notify/set/release) that no thread will send"
    if holder is not None:
        return f"{obj.label} held by {holder.name}"
    return repr(obj)


#: Where to raise the bound, on every face (the message of a hang says it).
#: A run that keeps changing its state is still stopped (as a hang) past this many times
#: its no-progress bound ``max_steps`` (the scheduler stops it; the hang's text says so).
RUN_STEPS_FACTOR = 100
RAISE_BOUND = "raise the bound with --max-steps N, the marker's max_steps=N or the ini's interleave_max_steps = N"


def hang_failure(sched: RunView, vt: ThreadView, frame: Any, loops: dict[tuple[int, str, int], int] | None) -> Failure:
    """A run that got nowhere: ``loops`` counts the lines each thread ran (thread, file,
    line) since the program's state last changed; None when the state kept changing but
    the run went past its hard bound of steps."""
    if loops is None:
        user = innermost_user_frame(frame)
        where = f"{_short(user.f_code.co_filename)}:{user.f_lineno}" if user else "?"
        bound = sched.max_steps * RUN_STEPS_FACTOR
        message = f"hang: still running after {bound} steps ({vt.name} at {where}); {RAISE_BOUND}"
        details = (f"Hang: the run went past {bound} steps ({RUN_STEPS_FACTOR} times its no-progress bound "
                   f"of {sched.max_steps}); {vt.name} was at {where}. To let it run longer, {RAISE_BOUND}.")
        return Failure(HANG, message, details, ("hang",), vt.name)
    per_thread: dict[int, Counter[tuple[str, int]]] = {}
    for (thread, filename, lineno), n in loops.items():
        per_thread.setdefault(thread, Counter())[(filename, lineno)] += n
    loopers = sorted(per_thread, key=lambda t: -sum(per_thread[t].values()))
    where = "; ".join(f"{sched.threads[t].name} loops at {_span(per_thread[t])}" for t in loopers[:3])
    names = where or f"{vt.name} at {user_location(frame) or '?'}"
    message = f"hang: no thread made progress in {sched.max_steps} steps ({names}); {RAISE_BOUND}"
    rows = [f"Hang: for {sched.max_steps} steps no thread started or ended and the program's state stayed "
            f"the same, with no timer pending for a thread that was not looping."]
    for t in loopers:
        rows.append(f"  {sched.threads[t].name} repeats:")
        for (filename, lineno), n in sorted(per_thread[t].most_common(6), key=lambda item: item[0]):
            rows.append(f"    {n:7d}x {_short(filename)}:{lineno}  {source_line(filename, lineno)}")
    for other in sched.threads:
        if other.index not in per_thread and other.state == "blocked":
            frame = other.greenlet.gr_frame if other.greenlet else None
            rows.append(f"  {other.name} is blocked in {blocking_call(frame, other.waiting_on)}")
    rows.append(f"To let such a run go on longer, {RAISE_BOUND}.")
    return Failure(HANG, message, "\n".join(rows), ("hang",), vt.name)


def _span(lines: Counter[tuple[str, int]]) -> str:
    """``busy_wait.py:36-37``: the lines a thread repeats, in its most used file."""
    files: Counter[str] = Counter()
    for (filename, _), n in lines.items():
        files[filename] += n
    filename = files.most_common(1)[0][0]
    numbers = sorted({lineno for f, lineno in lines if f == filename})
    if numbers[-1] - numbers[0] + 1 == len(numbers) and len(numbers) > 1:
        text = f"{numbers[0]}-{numbers[-1]}"
    else:
        text = ",".join(map(str, numbers[:6])) + (",..." if len(numbers) > 6 else "")
    return f"{_short(filename)}:{text}"


def loop_lines(steps: list[tuple[str, str, int]], tail: int = 2000, top: int = 6) -> list[str]:
    """The lines executed most often at the end of a run: where a hang loops."""
    counts = Counter(steps[-tail:])
    out = []
    for (thread, filename, lineno), n in counts.most_common(top):
        out.append(f"  {n:5d}x {thread:<12} {_short(filename)}:{lineno}  {source_line(filename, lineno)}")
    return out
