"""What a program may change in the process during a run, put back after it.

A program under test may close or replace ``sys.stdout`` and ``sys.stderr``, close their
file descriptors, change directory, set a tracer or a profiler, install signal handlers or
register exit handlers, and change files. None of it may reach the tool (its report must
still come) or the next run (which must start as the first did; for files, see
:mod:`interleave.filejournal`). A guard also tells a real Ctrl-C apart
from a ``KeyboardInterrupt`` the program raises itself: only the first stops exploring.
"""

from __future__ import annotations

import _signal
import atexit
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any, ParamSpec, TextIO, TypeVar

from . import failures, filejournal
from .scheduler import Scheduler, active

_real_signal = signal.signal
#: The C functions under ``signal.signal`` and ``signal.getsignal`` (which convert to enums,
#: at several times the cost): for the guard's own use, every run.
_set_handler, _get_handler = _signal.signal, _signal.getsignal
#: What ``signal.signal`` takes and gives back.
_Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None
_P = ParamSpec("_P")
_T = TypeVar("_T")


class _KeptOpen:
    """``sys.stdout``/``sys.stderr`` during a run: closing it closes it for the program only."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._closed = False

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._stream.flush()

    @property
    def closed(self) -> bool:
        return self._closed or self._stream.closed

    def write(self, text: str) -> int:
        if self._closed:
            raise ValueError("I/O operation on closed file.")
        return self._stream.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _refusing(method: str) -> Callable[..., Any]:
    def refuse(self: _RefusedStdin, *args: Any, **kwargs: Any) -> Any:
        sched = active()
        if sched is None:  # another OS thread of the process, not the run's
            return getattr(self._stream, method)(*args, **kwargs)
        sched.fail_uncontrolled("sys.stdin (a read from stdin, which interleave cannot schedule)")

    return refuse


class _RefusedStdin:
    """``sys.stdin`` during a run: reading it stops the run (nobody types into an exploration)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    read, readline, readlines, read1, readinto, __next__ = (
        _refusing(name) for name in ("read", "readline", "readlines", "read1", "readinto", "__next__"))

    @property
    def buffer(self) -> _RefusedStdin:
        return _RefusedStdin(self._stream.buffer)

    def __iter__(self) -> _RefusedStdin:
        return self

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


_real_register, _real_unregister = atexit.register, atexit.unregister


def _register_in_the_run(fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> Callable[_P, _T]:
    """``atexit.register`` during a run: the run does not end the process, so the handler is
    never called (registered for real, each run's would pile up and run when the tool exits)."""
    if active() is None:  # another OS thread of the process
        return _real_register(fn, *args, **kwargs)
    return fn


def _unregister_in_the_run(fn: Callable[..., Any]) -> None:
    """``atexit.unregister`` during a run: nothing of the run was registered."""
    if active() is None:
        _real_unregister(fn)


def _environ_data() -> dict[Any, Any]:
    """``os.environ``'s own mapping (encoded keys and values): copied and compared at every run."""
    data: dict[Any, Any] = os.environ._data  # type: ignore[attr-defined]  # private, in every supported version
    return data


def _restore_environ(saved: dict[Any, Any]) -> None:
    """Put the environment back as the run found it, through ``os.environ`` (so the process's too)."""
    decode = os.environ.decodekey
    current = _environ_data()  # the live mapping: it follows the changes made below
    for key in [k for k in current if k not in saved]:
        del os.environ[decode(key)]
    for key, value in saved.items():
        if current.get(key) != value:
            os.environ[decode(key)] = os.environ.decodevalue(value)


class ProcessGuard:
    """Saves the process state a program could change, for one run, and puts it back."""

    def __init__(self, program_key: str | None) -> None:
        #: What names the program to the processes exploring it at once (its file's path); None:
        #: the run's changes to files stay.
        self._program_key = program_key
        self._streams: tuple[Any, Any, Any] = (None, None, None)
        self._files: list[tuple[int, int] | None] = []
        self._cwd: str | None = None
        self._environ: dict[Any, Any] = {}
        self._trace: Any = None
        self._profile: Any = None
        self._recursion_limit = 0
        self._unraisable: Any = None
        self._handlers: dict[int, Any] = {}
        self._sigint: Any = None
        self._saved: tuple[Any, Any, Any] = (None, None, None)

    def enter(self, sched: Scheduler, keep_stdin: bool = False) -> None:
        stdin, stdout, stderr = self._streams = (sys.stdin, sys.stdout, sys.stderr)
        self._files = [_keep(1), _keep(2)]
        self._cwd = failures.run_dir = _cwd()  # None: the directory is gone, nothing to go back to
        self._environ = _environ_data().copy()
        self._trace, self._profile = sys.gettrace(), sys.getprofile()
        self._recursion_limit = sys.getrecursionlimit()
        self._unraisable = sys.unraisablehook
        if stdin is not None and not keep_stdin:
            sys.stdin = _RefusedStdin(stdin)
        if stdout is not None:
            sys.stdout = _KeptOpen(stdout)
        if stderr is not None:
            sys.stderr = _KeptOpen(stderr)
        self._handlers = {}
        self._sigint = None
        if threading.current_thread() is threading.main_thread():
            self._catch_ctrl_c(sched)
        self._saved = (signal.signal, atexit.register, atexit.unregister)
        signal.signal, atexit.register, atexit.unregister = self._signal, _register_in_the_run, _unregister_in_the_run
        if self._program_key is not None:
            filejournal.begin(self._program_key)

    def exit(self) -> None:
        filejournal.end()
        signal.signal, atexit.register, atexit.unregister = self._saved
        for signum, handler in self._handlers.items():
            _set_handler(signum, handler)
        if self._sigint is not None:
            _set_handler(signal.SIGINT, self._sigint)
        if sys.gettrace() is not self._trace:
            sys.settrace(self._trace)
        if sys.getprofile() is not self._profile:
            sys.setprofile(self._profile)
        sys.setrecursionlimit(self._recursion_limit)
        sys.unraisablehook = self._unraisable
        for fd, before in zip((1, 2), self._files):
            if before is not None and _identity(fd) != before:
                os.dup2(_copies[fd][0], fd)
        sys.stdin, sys.stdout, sys.stderr = (_reopened(s, fd) for fd, s in enumerate(self._streams))
        if self._cwd is not None and _cwd() != self._cwd:
            os.chdir(self._cwd)
        if _environ_data() != self._environ:
            _restore_environ(self._environ)
        failures.run_dir = None

    def _signal(self, signalnum: int | signal.Signals, handler: _Handler) -> _Handler:
        """``signal.signal`` during a run: installs the handler until the run ends."""
        if signalnum not in self._handlers:
            self._handlers[signalnum] = _get_handler(signalnum)
        return _real_signal(signalnum, handler)

    def _catch_ctrl_c(self, sched: Scheduler) -> None:
        previous = _get_handler(signal.SIGINT)
        if not callable(previous):
            return  # ignored (a worker) or the default: no KeyboardInterrupt comes from a signal

        unraisable = self._unraisable

        def quiet(report: Any) -> None:
            if not issubclass(report.exc_type, KeyboardInterrupt):
                unraisable(report)

        def on_ctrl_c(signum: int, frame: Any) -> Any:
            sched.extra["interrupted"] = True  # whatever the program then does with the KeyboardInterrupt
            # Landing in a weakref callback or a finalizer, it is swallowed there: the flag stops the
            # run all the same, and "Exception ignored ... KeyboardInterrupt" would only be noise.
            sys.unraisablehook = quiet
            return previous(signum, frame)

        self._sigint = previous
        _set_handler(signal.SIGINT, on_ctrl_c)


#: A copy of stdout's and stderr's descriptors (1 and 2: where the report goes; stdin needs
#: none, reading it is refused) as runs find them, to put back if the program closes or
#: replaces one: ``fd -> (copy, (st_dev, st_ino))``.
_copies: dict[int, tuple[int, tuple[int, int]]] = {}


def _identity(fd: int) -> tuple[int, int] | None:
    try:
        st = os.fstat(fd)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _keep(fd: int) -> tuple[int, int] | None:
    """What ``fd`` is open on now (None: not open), with a copy of it kept to put back."""
    identity = _identity(fd)
    if identity is not None:
        copy = _copies.get(fd)
        if copy is None or copy[1] != identity:  # first run, or the caller changed it between runs
            if copy is not None:
                os.close(copy[0])
            _copies[fd] = (os.dup(fd), identity)
    return identity


def _cwd() -> str | None:
    try:
        return os.getcwd()
    except OSError:
        return None


def _reopened(stream: Any, fd: int) -> Any:
    """The stream as it was, or a new one on its descriptor if the program closed it."""
    if stream is None or not getattr(stream, "closed", False):
        return stream
    try:
        return open(fd, "w" if fd else "r", buffering=1 if getattr(stream, "line_buffering", False) else -1,
                    encoding=stream.encoding, errors=stream.errors, closefd=False)
    except (OSError, ValueError, AttributeError):
        return stream
