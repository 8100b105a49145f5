"""The API's :func:`replay`: one run of the schedule a token carries.

On the program the token was made for, the schedule is followed exactly, by its decisions'
keys, and a replay that takes another path is refused (the program changed in a file the
token does not know, or is not deterministic). On a program edited since, the decisions
are found by their places instead (:mod:`interleave.places`): comments, blank lines,
prints and logging added leave the interleaving as it was. Where an edit changed what the
schedule depends on, the run goes on as far as the schedule fits and the outcome says where
it left it (a :class:`Diverged` error, unless asked to go on).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .decisions import PAUSE, Fault, Option, RunThread, Where
from .describe import changed_files, executed_files, setup_steps
from .events import ThreadStarted
from .failures import Failure, _short
from .program import BadInput, Program, load
from .runner import Runner
from .schedule import PYTHON, Token, file_digest, steps_checksum
from .story import TraceRecorder
from .strategies.replay import Divergence, Replay, ReplayByPlace, ScheduleMismatch
from .trace import render


class Diverged(BadInput):
    """The program changed since the token was made, and the schedule no longer fits it."""


@dataclass
class ReplayOutcome:
    failure: Failure | None
    trace: str
    steps: int
    preemptions: int
    recorder: TraceRecorder
    #: User files that changed since the token was made (see :func:`changed_files`).
    changed: list[str] = field(default_factory=list)
    #: The program changed since the token was made, and the schedule was followed by place.
    by_place: bool = False
    #: Where the schedule stopped fitting the edited program (a replay asked to go on).
    diverged: str | None = None


def replay(target: str | Callable[[], Any] | Program, token: str, *, go_on: bool = False) -> ReplayOutcome:
    """Run the schedule in ``token``; raises :class:`BadInput` if it does not fit.

    On a program edited since the token was made, the schedule is followed by its decisions'
    places; where it no longer fits, :class:`Diverged` says where, or (``go_on``) the run
    takes the default order from there and the outcome's ``diverged`` says where.
    """
    decoded = Token.decode(token)
    program = target if isinstance(target, Program) else load(target)
    if decoded.python != PYTHON or decoded.fingerprint == program.fingerprint:
        exact = _by_key(program, decoded)
        if isinstance(exact, ReplayOutcome):
            return exact
        # The same program, a path the token does not know: it is not deterministic, unless a
        # file changed (a function's fingerprint covers its own code only, not the rest of its file).
        if decoded.python != PYTHON or not (exact.changed or program.path is None):
            raise exact.error
    return _by_place(program, decoded, go_on)


@dataclass
class _Misfit:
    error: BadInput
    changed: list[str]


def _by_key(program: Program, decoded: Token) -> ReplayOutcome | _Misfit:
    """The exact replay, on the program the token was made for (or the misfit, with what changed)."""
    recorder = TraceRecorder()

    def misfit(reason: str) -> _Misfit:
        changed = changed_files(program, recorder, decoded)
        note = f" (changed since the token was made: {', '.join(changed)})" if changed else ""
        if decoded.python != PYTHON:  # line events differ between versions: say so, whatever broke
            return _Misfit(BadInput(
                f"this token was made on Python {decoded.python[0]}.{decoded.python[1:]} and does not replay "
                f"the same on {PYTHON[0]}.{PYTHON[1:]}; explore again on this version{note}"), changed)
        return _Misfit(BadInput(f"the schedule no longer fits the program: {reason}{note}"), changed)

    if decoded.fingerprint != program.fingerprint:  # made on another Python, for another version too
        if program.path is None:
            return misfit("")  # a function's fingerprint is its bytecode, which each version compiles anew
        return _Misfit(BadInput(
            f"the replay token was made for another version of {program.display} "
            f"(fingerprint {decoded.fingerprint}, now {program.fingerprint}); explore again"), [])
    runner = Runner(program, decoded.config, interactive=True)
    chooser = Replay(list(decoded.deviations), strict=True)
    try:
        result = runner.run(chooser, (recorder,))
    except ScheduleMismatch as exc:
        return misfit(str(exc))
    finally:
        runner.close()
    if result.uncontrolled is not None:
        raise BadInput(f"cannot replay: the program used {result.uncontrolled}")
    if not chooser.all_used():
        return misfit("some of its decisions were never reached")
    if steps_checksum(recorder.path()) != decoded.checksum:
        return misfit("the replay took a different path (the program changed or is not deterministic)")
    failure = result.failure
    return ReplayOutcome(failure, render(recorder, skip_setup=setup_steps(recorder)),
                         result.steps, result.preemptions, recorder, changed_files(program, recorder, decoded))


def _by_place(program: Program, decoded: Token, go_on: bool) -> ReplayOutcome:
    """The replay on a program edited since: decisions found by place, as far as they fit."""
    recorder = TraceRecorder()
    runner = Runner(program, decoded.config, interactive=True)
    chooser = ReplayByPlace(decoded.deviations, decoded.places)
    try:
        result = runner.run(chooser, (recorder,))
    finally:
        runner.close()
    if result.uncontrolled is not None:
        raise BadInput(f"cannot replay: the program used {result.uncontrolled}")
    changed = changed_files(program, recorder, decoded)
    own = _short(program.fingerprinted) if program.fingerprinted is not None else None
    if decoded.fingerprint != program.fingerprint and own is not None and own not in changed:
        changed.insert(0, own)
    divergence = chooser.divergence
    diverged = _told(divergence, program, decoded, recorder, changed) if divergence is not None else None
    if diverged is not None and not go_on:
        raise Diverged(f"the program changed since the token was made ({', '.join(changed)}) and its schedule "
                       f"no longer fits: {diverged}")
    failure = result.failure
    return ReplayOutcome(failure, render(recorder, skip_setup=setup_steps(recorder)), result.steps,
                         result.preemptions, recorder, changed, by_place=True, diverged=diverged)


def _told(divergence: Divergence, program: Program, token: Token, recorder: TraceRecorder,
          changed: list[str]) -> str:
    """``diverged at decision 2 of 3: Thread-2 is at bank.py:13, the schedule expected bank.py:12``."""
    names = _thread_names(recorder)

    def who(thread: int) -> str:
        return names.get(thread, f"thread {thread}")

    expected = divergence.expected
    thread = expected.key[0]
    head = f"diverged at decision {divergence.decision + 1} of {divergence.of}"
    wanted = _expected_place(divergence, program, token, recorder, changed)
    if divergence.why == "unavailable":
        return (f"{head}: {who(thread)} is at {_at(divergence.where)}, where the schedule "
                f"{_taking(expected.option, who)}, which is not possible there")
    if divergence.why == "overtaken" and divergence.thread is not None:
        return (f"{head}: {who(divergence.thread)} is at {_at(divergence.where)}, a later decision's place; "
                f"the schedule expected {who(thread)} at {wanted} first")
    return f"{head}: the schedule expected {who(thread)} at {wanted}, and the run never came there"


def _taking(option: Option, who: Callable[[int], str]) -> str:
    if isinstance(option, RunThread):
        return f"runs {who(option.thread)} next"
    if option is PAUSE:
        return "lets time pass"
    if isinstance(option, Fault):
        return f"takes the fault's option {option.option}"
    return f"takes the draw's alternative {option.code()}"


def _at(where: Where | None) -> str:
    if where is None:
        return "no line of the program"
    code, line = where
    return f"{_short(code.co_filename)}:{line}"


def _expected_place(divergence: Divergence, program: Program, token: Token, recorder: TraceRecorder,
                    changed: list[str]) -> str:
    """Where the schedule expected the decision, in the file as it was when the token was made
    (a file the token knows only by its digest: found among the run's files, or the one that changed)."""
    place = divergence.place
    if place.line <= 0:
        return "no line of the program"
    if place.file == 0 and program.fingerprinted is not None:
        return f"{_short(program.fingerprinted)}:{place.line}"
    ordered = sorted(token.files)
    if 0 < place.file <= len(ordered):
        for path in executed_files(program, recorder):
            if file_digest(path) == ordered[place.file - 1]:
                return f"{_short(path)}:{place.line}"
        helpers = [path for path in changed if program.fingerprinted is None or path != _short(program.fingerprinted)]
        if len(helpers) == 1 and helpers[0].endswith(".py"):
            return f"{helpers[0]}:{place.line}"
    return f"line {place.line} of a file changed since"


def _thread_names(recorder: TraceRecorder) -> dict[int, str]:
    names = {step.thread: step.name for step in recorder.steps}
    for event in recorder.events:
        names.setdefault(event.thread, event.name)
        if isinstance(event.what, ThreadStarted):
            names.setdefault(event.what.child, event.what.name)
    return names
