"""The program under test: a ``PATH[::FUNC]`` target or a plain callable.

A file target is compiled once and executed afresh at the start of every run (inside the
run, so module-level locks and threads are controlled and module state starts clean);
then FUNC is called with no arguments.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import sys
import traceback
import types
from dataclasses import dataclass
from typing import Any, Callable

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
    #: Objects made outside the runs that the runs use besides the modules' (a wide fixture's value).
    shared: tuple[Any, ...] = ()

    def roots(self) -> list[tuple[Any, str]]:
        """Where the runs reach objects made before them, besides the modules: for swapping real locks."""
        roots = [(value, f"the value of fixture #{i + 1}") for i, value in enumerate(self.shared)]
        if self.function is not None:
            roots.insert(0, (self.function, self.display))
        return roots

    def entry(self) -> Callable[[], Any]:
        """Inside a run: a fresh module (for file targets) and the function to call."""
        if self.code is None:
            assert self.function is not None
            return self.function
        namespace = _fresh_module(self.module_name, self.path)
        exec(self.code, namespace)
        return namespace[self.func_name]


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
    module_name = stem if stem.isidentifier() and stem not in sys.modules else "_interleave_target_" + hashlib.sha256(path.encode()).hexdigest()[:8]
    directory = os.path.dirname(path)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    namespace = _fresh_module(module_name, path)
    try:
        with RecordOrigins():
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
    return Program(
        display=f"{target_path(path)}::{func_name}",
        func_name=func_name,
        fingerprint=digest,
        path=path,
        code=code,
        module_name=module_name,
        config=dict(config) if isinstance(config, dict) else None,
    )


def _load_callable(function: Callable[[], Any]) -> Program:
    name = getattr(function, "__qualname__", repr(function))
    _check_callable_without_arguments(function, name)
    code = getattr(function, "__code__", None)
    material = _code_material(code) if code is not None else name.encode()
    digest = hashlib.sha256(name.encode() + b"\0" + material).hexdigest()[:8]
    return Program(display=name, func_name=name, fingerprint=digest, function=function)


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


def target_path(path: str) -> str:
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel
