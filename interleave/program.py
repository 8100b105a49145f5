"""The program under test: a ``PATH[::FUNC]`` target or a plain callable.

A file target is compiled once and executed afresh at the start of every run (inside the
run, so module-level locks and threads are controlled and module state starts clean);
then FUNC is called with no arguments.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import os
import sys
import traceback
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from .access import inject
from .instrument import compile_module, instrument_function
from .reallocks import RecordOrigins


class BadInput(Exception):
    """Input interleave cannot use; its message is one line for the user."""


@dataclass
class Program:
    display: str
    func_name: str
    fingerprint: str
    path: str | None = None
    code: types.CodeType | None = None
    module_name: str | None = None
    function: Callable[[], Any] | None = None
    config: dict[str, Any] | None = None
    source: bytes | None = None
    _instrumented: Any = field(default=None, repr=False, compare=False)
    #: The file whose edits the fingerprint judges (the target; a callable's own file):
    #: a token names the other user files a run executes by their digests (schedule.py).
    fingerprinted: str | None = None
    #: ``sys.modules`` before the program was loaded: the user modules it imports are the others.
    modules_before: frozenset[str] | None = None
    #: Objects made outside the runs that the runs use besides the modules' (a wide fixture's value).
    shared: tuple[Any, ...] = ()

    def roots(self) -> list[tuple[Any, str]]:
        """Where the runs reach objects made before them, besides the modules: for swapping real locks."""
        roots = [(value, f"the value of fixture #{i + 1}") for i, value in enumerate(self.shared)]
        if self.function is not None:
            roots.insert(0, (self.function, self.display))
        return roots

    def entry(self, instrumented: bool = False) -> Callable[[], Any]:
        """Inside a run: a fresh module (for file targets) and the function to call.

        ``instrumented``: the code with every shared access a switch point
        (:mod:`interleave.instrument`), compiled once.
        """
        if self.code is None:
            assert self.function is not None
            return self.compiled() if instrumented else self.function
        assert self.module_name is not None and self.path is not None
        namespace = _fresh_module(self.module_name, self.path)
        code = self.code
        if instrumented:
            code = self.compiled()
            inject(namespace)
        exec(code, namespace)
        function: Callable[[], Any] = namespace[self.func_name]
        return function

    def compiled(self) -> Any:
        """The instrumented code (or function), made once and outside any run."""
        if self._instrumented is None:
            if self.code is None and self.function is None:
                return None  # a body that is not a plain callable (the pytest plugin's)
            if self.code is None:
                self._instrumented = instrument_function(self.function)
            else:
                assert self.path is not None
                self._instrumented = compile_module(self.source or b"", self.path)
        return self._instrumented

    @contextmanager
    def importable(self) -> Iterator[None]:
        """The target's directory first on ``sys.path`` while its code runs, as ``python PATH`` has it.

        Only then: outside, a file there named like a standard module (``signal.py``) would
        replace it in interleave's own imports, in this process and in spawned workers.
        """
        if self.path is None:
            yield
            return
        with _on_path(os.path.dirname(self.path)):
            yield


@contextmanager
def _on_path(directory: str) -> Iterator[None]:
    if directory in sys.path:
        yield
        return
    sys.path.insert(0, directory)
    try:
        yield
    finally:
        if directory in sys.path:
            sys.path.remove(directory)


def _fresh_module(name: str, path: str) -> dict[str, Any]:
    module = types.ModuleType(name)
    module.__file__ = path
    sys.modules[name] = module
    return module.__dict__


def split_spec(spec: str) -> tuple[str, str]:
    path, sep, func = spec.partition("::")
    return path, (func if sep else "main")


def load(target: str | Callable[[], Any]) -> Program:
    """Resolve a target, checking everything a run would trip over (raises :class:`BadInput`)."""
    if callable(target):
        return _load_callable(target)
    path, func_name = split_spec(target)
    if not func_name.isidentifier():
        raise BadInput(f"{func_name!r} is not a function name (expected PATH::FUNC)")
    if not os.path.exists(path):
        raise BadInput(f"no such file: {path}")
    if not os.path.isfile(path):
        raise BadInput(f"not a file: {path}")
    path = os.path.abspath(path)
    with open(path, "rb") as f:
        source = f.read()
    try:
        code = compile(source, path, "exec")
    except SyntaxError as exc:
        raise BadInput(f"syntax error in {target_path(path)} line {exc.lineno}: {exc.msg}") from None
    except ValueError as exc:
        raise BadInput(f"cannot compile {target_path(path)}: {exc}") from None
    stem = os.path.splitext(os.path.basename(path))[0]
    # Not a standard module's name: that entry of sys.modules is interleave's too (signal.py, queue.py).
    own_name = stem.isidentifier() and stem not in sys.modules and stem not in sys.stdlib_module_names
    module_name = stem if own_name else "_interleave_target_" + hashlib.sha256(path.encode()).hexdigest()[:8]
    modules_before = frozenset(sys.modules)
    namespace = _fresh_module(module_name, path)
    try:
        with _on_path(os.path.dirname(path)), RecordOrigins():
            exec(code, namespace)
    except BaseException as exc:  # noqa: BLE001 - reported as one line, never as our traceback
        last = traceback.extract_tb(exc.__traceback__)[-1]
        raise BadInput(
            f"error while loading {target_path(path)}: {type(exc).__name__}: {exc} "
            f"(at {os.path.basename(last.filename)}:{last.lineno})"
        ) from None
    function = namespace.get(func_name)
    if function is None:
        raise BadInput(f"{target_path(path)} has no function {func_name!r}")
    _check_callable_without_arguments(function, f"{target_path(path)}::{func_name}")
    digest = hashlib.sha256(source + b"\0" + func_name.encode()).hexdigest()[:8]
    config = namespace.get("__interleave__")
    if config is not None and not isinstance(config, dict):
        raise BadInput(f"__interleave__ in {target_path(path)} must be a dict of settings, "
                       f"not {type(config).__name__}")
    return Program(
        display=f"{target_path(path)}::{func_name}",
        func_name=func_name,
        fingerprint=digest,
        path=path,
        code=code,
        module_name=module_name,
        config=dict(config) if config is not None else None,
        source=source,
        fingerprinted=path,
        modules_before=modules_before,
    )


def _load_callable(function: Callable[[], Any]) -> Program:
    name = getattr(function, "__qualname__", repr(function))
    _check_callable_without_arguments(function, name)
    code = getattr(function, "__code__", None)
    material = _code_material(code) if code is not None else name.encode()
    digest = hashlib.sha256(name.encode() + b"\0" + material).hexdigest()[:8]
    own_file = os.path.abspath(code.co_filename) if code is not None else None
    return Program(display=name, func_name=name, fingerprint=digest, function=function, fingerprinted=own_file,
                   modules_before=frozenset(sys.modules))


def _code_material(code: types.CodeType) -> bytes:
    """What a function's code is, the same in every process (nested code included)."""
    parts = [code.co_code, repr(code.co_names).encode(), repr(code.co_varnames).encode()]
    for const in code.co_consts:
        parts.append(_code_material(const) if isinstance(const, types.CodeType) else repr(const).encode())
    return b"\0".join(parts)


def _check_callable_without_arguments(function: Any, display: str) -> None:
    if not callable(function):
        raise BadInput(f"{display} is not callable")
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return
    required = [
        p.name
        for p in signature.parameters.values()
        if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    if required:
        raise BadInput(f"{display} needs arguments ({', '.join(required)}); interleave calls it with none")
    kind = _not_a_plain_call(function)
    if kind is not None:
        raise BadInput(f"{display} is {kind}: calling it runs none of its body, so no schedule could fail; "
                       "give a plain function that runs it")


def _not_a_plain_call(function: Any) -> str | None:
    """What ``function`` is when calling it only makes an object (a coroutine, a generator)."""
    # An instance's async __call__ counts; a class's does not (calling the class makes an instance).
    calls = getattr(function, "__call__", None) if not isinstance(function, type) else None  # noqa: B004 (the method)
    for candidate in (function, calls):
        if inspect.iscoroutinefunction(candidate):
            return "an async def function"
        if inspect.isasyncgenfunction(candidate):
            return "an async generator function"
        if inspect.isgeneratorfunction(candidate):
            return "a generator function"
    return None


def target_path(path: str) -> str:
    return _relative(path, os.getcwd())


@functools.lru_cache(maxsize=1024)
def _relative(path: str, cwd: str) -> str:
    """``path`` from ``cwd`` when it lies below it (asked for every record of a long run)."""
    rel = os.path.relpath(path, cwd)
    return path if rel.startswith("..") else rel
