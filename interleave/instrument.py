"""Rewriting the user's code so that every shared access is a switch point.

A real thread can be switched out between the load and the store inside one line
(``self.hits += 1``), so a line is not a step. A step is one *visible operation*: an
access to memory another thread can reach, or a synchronization operation. This module
finds the accesses in the program's source and routes each through a call into
:mod:`interleave.access`, which makes the switch point and records what was touched.

What is rewritten, inside function bodies (module and class bodies run once, at import,
and are left as they are):

* attribute loads, stores and deletes (``obj.name``), subscript loads, stores and deletes
  (``obj[key]``), and method lookups for calls (``obj.method(...)``, where a builtin
  container's methods are a read or a write of the container);
* ``len(x)``, ``sorted(x)``, ``list(x)``... of a container, ``k in c``, and iteration
  (``for x in c``): reads of the container;
* reads and writes of globals that some function of the module declares ``global``, and
  of closure cells that are rebound after they are made (``nonlocal``, or assigned more
  than once); other names keep one binding, and a frame's own locals are not shared;
* a *tick* at the top of every loop body, so a loop that touches nothing shared still
  lets the scheduler see that its thread runs (hangs are found, other threads progress).

The order of evaluation is Python's own: a store evaluates the value before the target
(temporaries hold it), an augmented assignment evaluates its target once. Line numbers
are kept on every node, so tracebacks, ``linecache`` and coverage name the user's lines.

Compiled code is never written to ``__pycache__``; the user's files are untouched.
"""

from __future__ import annotations

import ast
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import types
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import access
from .files import CodeFacts, is_user_file

#: The name under which a module's :class:`interleave.access.ModuleAccess` is injected.
HELPER = access.HELPER

#: Builtins that read their first argument (a container) and nothing else shared.
READING_BUILTINS = frozenset({
    "len", "sorted", "list", "tuple", "set", "frozenset", "dict", "sum", "min", "max", "any", "all",
    "enumerate", "reversed", "iter", "bytes", "str", "repr", "zip", "map", "filter",
})

_LOOPS = (ast.For, ast.While, ast.AsyncFor)
_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
_Comprehension = ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp
#: The nodes that open a scope of their own.
_ScopeNode = ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | _Comprehension


# ------------------------------------------------------------------------ scopes


@dataclass
class _Scope:
    """A function (or comprehension) scope: what it binds and declares."""

    node: ast.AST
    parent: _Scope | None
    class_name: str | None  # the nearest enclosing class, for name mangling
    is_function: bool = True
    stores: dict[str, int] = field(default_factory=dict)
    rebinding: set[str] = field(default_factory=set)  # stored in a loop or by augmented assignment
    globals: set[str] = field(default_factory=set)
    nonlocals: set[str] = field(default_factory=set)
    uses: set[str] = field(default_factory=set)
    children: list[_Scope] = field(default_factory=list)

    def binds(self, name: str) -> bool:
        return name in self.stores and name not in self.globals and name not in self.nonlocals


class _ScopeFinder(ast.NodeVisitor):
    """One pass over a module: every function scope, its bindings and declarations."""

    def __init__(self) -> None:
        self.module = _Scope(ast.Module(body=[], type_ignores=[]), None, None, is_function=False)
        self.scope = self.module
        self.by_node: dict[int, _Scope] = {}
        self.loop_depth = 0
        self.class_stack: list[str] = []

    def _store(self, name: str, rebinding: bool = False) -> None:
        scope = self.scope
        scope.stores[name] = scope.stores.get(name, 0) + 1
        if rebinding or self.loop_depth:
            scope.rebinding.add(name)

    def _enter(self, node: _ScopeNode, params: Iterable[str], is_function: bool = True) -> None:
        outer, depth = self.scope, self.loop_depth
        scope = _Scope(node, outer, self.class_stack[-1] if self.class_stack else None, is_function)
        outer.children.append(scope)
        self.by_node[id(node)] = scope
        self.scope, self.loop_depth = scope, 0
        for name in params:
            self._store(name)
        if isinstance(node, ast.Lambda):
            self.visit(node.body)
        elif isinstance(node, _COMPREHENSIONS):
            for i, gen in enumerate(node.generators):
                if i:  # the first iterable is evaluated in the enclosing scope
                    self.visit(gen.iter)
                self.visit(gen.target)
                for cond in gen.ifs:
                    self.visit(cond)
            for part in ("elt", "key", "value"):
                if hasattr(node, part):
                    self.visit(getattr(node, part))
        else:
            for stmt in node.body:
                self.visit(stmt)
        self.scope, self.loop_depth = outer, depth

    @staticmethod
    def _params(args: ast.arguments) -> list[str]:
        names = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
        names += [a.arg for a in (args.vararg, args.kwarg) if a is not None]
        return names

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for deco in node.decorator_list:
            self.visit(deco)
        self._visit_defaults(node.args)
        self._store(node.name)
        self._enter(node, self._params(node.args))

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._visit_defaults(node.args)
        self._enter(node, self._params(node.args))

    def _visit_defaults(self, args: ast.arguments) -> None:
        for default in args.defaults + [d for d in args.kw_defaults if d is not None]:
            self.visit(default)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for part in node.decorator_list + node.bases + [k.value for k in node.keywords]:
            self.visit(part)
        self._store(node.name)
        self.class_stack.append(node.name)
        outer = self.scope
        # A class body is no scope its methods can see: they resolve past it.
        body = _Scope(node, outer, node.name, is_function=False)
        self.by_node[id(node)] = body
        self.scope = body
        for stmt in node.body:
            self.visit(stmt)
        self.scope = outer
        outer.children.extend(body.children)
        for child in body.children:
            child.parent = outer
        self.class_stack.pop()

    def _comprehension(self, node: _Comprehension) -> None:
        self.visit(node.generators[0].iter)
        self._enter(node, ())

    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = _comprehension

    def visit_Global(self, node: ast.Global) -> None:
        self.scope.globals.update(node.names)

    def visit_Nonlocal(self, node: ast.Nonlocal) -> None:
        self.scope.nonlocals.update(node.names)

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, (ast.Store, ast.Del)):
            self._store(node.id)
        else:
            self.scope.uses.add(node.id)

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        scope = self.scope
        while isinstance(scope.node, _COMPREHENSIONS) and scope.parent is not None:
            scope = scope.parent  # a walrus in a comprehension binds in the enclosing function
        saved, self.scope = self.scope, scope
        self._store(node.target.id)
        self.scope = saved

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        if isinstance(node.target, ast.Name):
            self._store(node.target.id, rebinding=True)
        else:
            self.visit(node.target)
        self.visit(node.value)

    def _loop(self, node: ast.For | ast.While | ast.AsyncFor) -> None:
        self.loop_depth += 1
        self.generic_visit(node)
        self.loop_depth -= 1

    visit_For = visit_While = visit_AsyncFor = _loop

    def visit_Import(self, node: ast.Import | ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name != "*":
                self._store((alias.asname or alias.name).split(".")[0])

    visit_ImportFrom = visit_Import

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.name:
            self._store(node.name)
        self.generic_visit(node)


@dataclass
class _Analysis:
    """Which names of a module are shared: rebound globals, rebound cells."""

    scopes: dict[int, _Scope]
    shared_globals: set[str]
    module_names: set[str]
    #: Per owner scope, its cell variables that get rebound after they are made.
    shared_cells: dict[int, set[str]]


def _analyse(tree: ast.Module) -> _Analysis:
    finder = _ScopeFinder()
    for stmt in tree.body:
        finder.visit(stmt)
    module = finder.module
    shared_globals: set[str] = set()
    shared_cells: dict[int, set[str]] = {}
    nonlocal_names: dict[int, set[str]] = {}

    def owner_of(scope: _Scope, name: str) -> _Scope | None:
        s = scope.parent
        while s is not None and s is not module:
            if s.is_function and s.binds(name):
                return s
            s = s.parent
        return None

    def walk(scope: _Scope) -> Iterator[_Scope]:
        for child in scope.children:
            yield child
            yield from walk(child)

    for scope in walk(module):
        shared_globals |= {n for n in scope.globals if n in scope.stores}
        for name in scope.nonlocals:
            owner = owner_of(scope, name)
            if owner is not None:
                nonlocal_names.setdefault(id(owner.node), set()).add(name)
    for scope in walk(module):
        for name in scope.uses | set(scope.stores) | scope.nonlocals:
            if scope.binds(name):
                continue
            owner = owner_of(scope, name)
            if owner is None:
                continue
            rebound = (owner.stores.get(name, 0) > 1 or name in owner.rebinding
                       or name in nonlocal_names.get(id(owner.node), ()))
            if rebound:
                shared_cells.setdefault(id(owner.node), set()).add(name)
    return _Analysis(finder.by_node, shared_globals, set(module.stores), shared_cells)


# --------------------------------------------------------------------- rewriting


def _may_continue(node: ast.AST) -> bool:
    """Whether ``node`` holds a ``continue`` of the loop around it (not of a loop inside it)."""
    if isinstance(node, ast.Continue):
        return True
    if isinstance(node, (*_FUNCTIONS, ast.ClassDef)):
        return False
    # In a loop inside, a continue of its body is its own; of its else clause, the loop around's.
    children = node.orelse if isinstance(node, _LOOPS) else ast.iter_child_nodes(node)
    return any(_may_continue(child) for child in children)


def _mangle(name: str, class_name: str | None) -> str:
    if class_name is None or not name.startswith("__") or name.endswith("__"):
        return name
    stripped = class_name.lstrip("_")
    return f"_{stripped}{name}" if stripped else name


class _Rewriter(ast.NodeTransformer):
    """Routes the accesses of function bodies through the module's access helper."""

    def __init__(self, analysis: _Analysis, filename: str) -> None:
        self.analysis = analysis
        self.filename = filename
        self.scope: _Scope | None = None  # None: module or class level, left as it is
        self.temps = 0
        self.texts: dict[int, str] = {}

    # -- helpers

    def _site(self, node: ast.AST, kind: str, text: str) -> ast.Constant:
        return ast.Constant(access.register_site(self.filename, getattr(node, "lineno", 0), kind, text))

    def _call(self, method: str, args: list[ast.expr], node: ast.AST) -> ast.Call:
        func = ast.Attribute(ast.Name(HELPER, ast.Load()), method, ast.Load())
        return ast.copy_location(ast.Call(func, args, []), node)

    def _temp(self, node: ast.AST) -> tuple[ast.Name, ast.Name]:
        self.temps += 1
        name = f"_interleave_t{self.temps}"
        return (ast.copy_location(ast.Name(name, ast.Store()), node),
                ast.copy_location(ast.Name(name, ast.Load()), node))

    def _resolve(self, name: str) -> str:
        """``local``, ``cell`` (shared), ``global`` (shared) or ``plain`` for a name here."""
        scope = self.scope
        assert scope is not None
        if name in scope.globals:
            return "global" if name in self.analysis.shared_globals else "plain"
        if scope.binds(name) and name not in scope.nonlocals:
            return "cell" if name in self.analysis.shared_cells.get(id(scope.node), ()) else "local"
        s = scope.parent
        while s is not None and s.node is not None:
            if s.is_function and s.binds(name):
                return "cell" if name in self.analysis.shared_cells.get(id(s.node), ()) else "plain"
            s = s.parent
        if name in self.analysis.shared_globals:
            return "global"
        return "plain"

    def _class_name(self) -> str | None:
        return self.scope.class_name if self.scope is not None else None

    def _text(self, node: ast.AST) -> str:
        """The node's source as the user wrote it (taken before any rewriting)."""
        text = self.texts.get(id(node))
        if text is None:
            text = _unparse(node)
        return text if len(text) <= 40 else text[:37] + "..."

    # -- scopes

    @staticmethod
    def _generated(node: ast.AST) -> bool:
        """Code another rewriter made (pytest's assertion temporaries are named ``@py_...``)."""
        return any(isinstance(n, ast.Name) and n.id.startswith("@") for n in ast.walk(node))

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> Any:
        # Decorators and defaults run in the enclosing scope.
        node.decorator_list = [self.visit(d) for d in node.decorator_list]
        node.args = self._visit_args(node.args)
        if node.returns is not None:
            node.returns = self.visit(node.returns)
        outer, temps = self.scope, self.temps
        self.scope = self.analysis.scopes[id(node)]
        node.body = self._body(node.body)
        self.scope, self.temps = outer, temps
        return node

    visit_AsyncFunctionDef = visit_FunctionDef

    def _visit_args(self, args: ast.arguments) -> ast.arguments:
        args.defaults = [self.visit(d) for d in args.defaults]
        args.kw_defaults = [self.visit(d) if d is not None else None for d in args.kw_defaults]
        return args

    def visit_Lambda(self, node: ast.Lambda) -> Any:
        node.args = self._visit_args(node.args)
        outer = self.scope
        self.scope = self.analysis.scopes[id(node)]
        node.body = self.visit(node.body)
        self.scope = outer
        return node

    def _comprehension(self, node: Any) -> Any:
        first = node.generators[0]
        texts = [self._text(gen.iter) for gen in node.generators]
        first.iter = self.visit(first.iter)
        if self.scope is not None:
            first.iter = self._iterate(first.iter, texts[0])
        outer = self.scope
        if outer is not None:
            self.scope = self.analysis.scopes[id(node)]
        for i, gen in enumerate(node.generators):
            if i:
                gen.iter = self.visit(gen.iter)
                if self.scope is not None:
                    gen.iter = self._iterate(gen.iter, texts[i])
            gen.ifs = [self.visit(c) for c in gen.ifs]
        for part in ("elt", "key", "value"):
            if hasattr(node, part):
                setattr(node, part, self.visit(getattr(node, part)))
        self.scope = outer
        return node

    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = _comprehension

    def visit_ClassDef(self, node: ast.ClassDef) -> Any:
        node.decorator_list = [self.visit(d) for d in node.decorator_list]
        node.bases = [self.visit(b) for b in node.bases]
        outer = self.scope
        self.scope = None  # the class body itself runs once; its methods are scopes of their own
        node.body = [self.visit(stmt) for stmt in node.body]
        self.scope = outer
        return node

    # -- statements

    def _body(self, body: list[ast.stmt]) -> list[ast.stmt]:
        out: list[ast.stmt] = []
        for stmt in body:
            new = self.visit(stmt)
            if isinstance(new, list):
                out.extend(new)
            elif new is not None:
                out.append(new)
        return out

    def generic_visit(self, node: ast.AST) -> ast.AST:
        for name, value in ast.iter_fields(node):
            if isinstance(value, list) and value and isinstance(value[0], ast.stmt):
                setattr(node, name, self._body(value))
            elif isinstance(value, list):
                setattr(node, name, [self.visit(v) if isinstance(v, ast.AST) else v for v in value])
            elif isinstance(value, ast.AST):
                setattr(node, name, self.visit(value))
        return node

    def _loop_body(self, node: Any) -> Any:
        tick = self.scope is not None and not self._stores_every_turn(node.body)
        self.generic_visit(node)
        if tick:
            node.body.insert(0, ast.copy_location(ast.Expr(self._call("tick", [], node)), node))
        return node

    def _stores_every_turn(self, body: list[ast.stmt]) -> bool:
        """Whether every turn of a loop with this body stores to shared memory (always a switch
        point, which also tells the scheduler the thread runs): such a loop needs no tick. The
        store must be a statement of the body itself with no ``continue`` before it."""
        for stmt in body:
            if isinstance(stmt, ast.Assign):
                targets = stmt.targets
            elif isinstance(stmt, (ast.AugAssign, ast.AnnAssign)) and stmt.value is not None:
                targets = [stmt.target]
            else:
                targets = []
            if any(self._needs_rewrite(t) for t in targets):
                return True
            if _may_continue(stmt):
                return False
        return False

    def visit_While(self, node: ast.While) -> Any:
        text = self._text(node.test)
        node = self._loop_body(node)
        node.test = self._truth(node.test, text)
        return node

    def visit_If(self, node: ast.If) -> Any:
        text = self._text(node.test)
        self.generic_visit(node)
        node.test = self._truth(node.test, text)
        return node

    def visit_IfExp(self, node: ast.IfExp) -> Any:
        text = self._text(node.test)
        self.generic_visit(node)
        node.test = self._truth(node.test, text)
        return node

    def visit_UnaryOp(self, node: ast.UnaryOp) -> Any:
        text = self._text(node.operand)
        self.generic_visit(node)
        if isinstance(node.op, ast.Not):
            node.operand = self._truth(node.operand, text)
        return node

    def _truth(self, test: ast.expr, text: str) -> ast.expr:
        """``if c:``, ``while not c:``: the truth of a container reads it (its length)."""
        if self.scope is None or not isinstance(test, (ast.Name, ast.Call, ast.Attribute, ast.Subscript)):
            return test
        if isinstance(test, ast.Call) and not (isinstance(test.func, ast.Attribute) and test.func.attr in (
                "get_attr", "get_item", "read_global")):
            return test  # a call's result is the callee's, not shared memory read here
        return self._call("truth", [test, self._site(test, "read", text)], test)

    def visit_For(self, node: ast.For) -> Any:
        text = self._text(node.iter)
        node = self._loop_body(node)
        if self.scope is not None:
            node.iter = self._iterate(node.iter, text)
        return node

    def visit_AsyncFor(self, node: ast.AsyncFor) -> Any:
        return self._loop_body(node)

    def _iterate(self, iterable: ast.expr, text: str) -> ast.expr:
        if isinstance(iterable, ast.Call) and isinstance(iterable.func, ast.Name) and iterable.func.id == "range":
            return iterable  # nothing shared to read
        return self._call("iterate", [iterable, self._site(iterable, "iterate", text)], iterable)

    def visit_Assign(self, node: ast.Assign) -> Any:
        node.value = self.visit(node.value)
        if self.scope is None or not any(self._needs_rewrite(t) for t in node.targets):
            node.targets = [self.visit(t) if not isinstance(t, ast.Name) else t for t in node.targets]
            return node
        stmts: list[ast.stmt] = []
        store, load = self._temp(node)
        stmts.append(ast.copy_location(ast.Assign([store], node.value), node))
        for target in node.targets:
            stmts.extend(self._assign_to(target, load, node))
        return stmts

    def visit_AnnAssign(self, node: ast.AnnAssign) -> Any:
        if self.scope is None or node.value is None or not self._needs_rewrite(node.target):
            if node.value is not None:
                node.value = self.visit(node.value)
            return node
        return self.visit_Assign(ast.copy_location(ast.Assign([node.target], node.value), node))

    def _needs_rewrite(self, target: ast.expr) -> bool:
        if isinstance(target, (ast.Attribute, ast.Subscript)):
            return True
        if isinstance(target, ast.Name):
            return self._resolve(target.id) in ("global", "cell")
        if isinstance(target, (ast.Tuple, ast.List)):
            return any(self._needs_rewrite(e.value if isinstance(e, ast.Starred) else e) for e in target.elts)
        return False

    def _assign_to(self, target: ast.expr, value: ast.expr, node: ast.AST) -> list[ast.stmt]:
        """Statements storing ``value`` (a temporary) into ``target``, in Python's order."""
        if isinstance(target, ast.Attribute):
            name = _mangle(target.attr, self._class_name())
            site = self._site(target, "write", self._text(target))
            call = self._call("set_attr", [self.visit(target.value), ast.Constant(name), value, site], target)
            return [ast.copy_location(ast.Expr(call), node)]
        if isinstance(target, ast.Subscript):
            site = self._site(target, "write", self._text(target))
            call = self._call("set_item", [self.visit(target.value), self._index(target.slice), value, site], target)
            return [ast.copy_location(ast.Expr(call), node)]
        if isinstance(target, ast.Name):
            kind = self._resolve(target.id)
            if kind == "global":
                site = self._site(target, "write", target.id)
                call = self._call("write_global", [value, ast.Constant(target.id), site], target)
                return [ast.copy_location(ast.Expr(call), node)]
            if kind == "cell":
                site = self._site(target, "write", target.id)
                value = self._call("write_cell", [value, ast.Constant(target.id), site], target)
            return [ast.copy_location(ast.Assign([target], value), node)]
        if isinstance(target, (ast.Tuple, ast.List)):
            # Unpack into temporaries first, then store each element left to right.
            elements: list[ast.expr] = []
            later: list[tuple[ast.expr, ast.Name]] = []
            for element in target.elts:
                inner = element.value if isinstance(element, ast.Starred) else element
                store, load = self._temp(element)
                elements.append(ast.Starred(store, ast.Store()) if isinstance(element, ast.Starred) else store)
                later.append((inner, load))
            stmts: list[ast.stmt] = [ast.copy_location(
                ast.Assign([ast.copy_location(ast.Tuple(elements, ast.Store()), target)], value), node)]
            for inner, load in later:
                stmts.extend(self._assign_to(inner, load, node))
            return stmts
        return [ast.copy_location(ast.Assign([self.visit(target)], value), node)]

    def _index(self, index: ast.expr) -> ast.expr:
        if isinstance(index, ast.Slice):
            parts = [self.visit(p) if p is not None else ast.Constant(None)
                     for p in (index.lower, index.upper, index.step)]
            return ast.copy_location(
                ast.Call(ast.Attribute(ast.Name(HELPER, ast.Load()), "slice", ast.Load()), parts, []), index)
        visited: ast.expr = self.visit(index)
        return visited

    def visit_AugAssign(self, node: ast.AugAssign) -> Any:
        if self.scope is None:
            node.value = self.visit(node.value)
            return node
        target = node.target
        value = self.visit(node.value)
        stmts: list[ast.stmt] = []
        current_store, current_load = self._temp(node)

        def keep(expr: ast.expr) -> ast.expr:
            """Evaluate ``expr`` once, now, into a temporary (Python evaluates the target once)."""
            if isinstance(expr, (ast.Constant,)) or (isinstance(expr, ast.Name) and self._resolve(expr.id) == "local"):
                return expr
            store, load = self._temp(expr)
            stmts.append(ast.copy_location(ast.Assign([store], self.visit(expr)), node))
            return load

        read: ast.expr
        if isinstance(target, ast.Attribute):
            obj = keep(target.value)
            name = ast.Constant(_mangle(target.attr, self._class_name()))
            text = self._text(target)
            read = self._call("get_attr", [obj, name, self._site(target, "read", text)], target)
            write = self._call("set_attr", [obj, name, current_load, self._site(target, "write", text)], target)
        elif isinstance(target, ast.Subscript):
            obj = keep(target.value)
            key = self._index(target.slice)
            if not isinstance(target.slice, ast.Slice):
                key = keep(key)
            text = self._text(target)
            read = self._call("get_item", [obj, key, self._site(target, "read", text)], target)
            write = self._call("set_item", [obj, key, current_load, self._site(target, "write", text)], target)
        elif isinstance(target, ast.Name) and self._resolve(target.id) == "global":
            read = self._call("read_global", [ast.Constant(target.id), self._site(target, "read", target.id)], target)
            write = self._call("write_global", [current_load, ast.Constant(target.id),
                                                 self._site(target, "write", target.id)], target)
        elif isinstance(target, ast.Name) and self._resolve(target.id) == "cell":
            read = self._cell_read(target)
            stored = self._call("write_cell", [current_load, ast.Constant(target.id),
                                               self._site(target, "write", target.id)], target)
            stmts.append(ast.copy_location(ast.Assign([current_store], read), node))
            stmts.append(ast.copy_location(ast.AugAssign(current_store, node.op, value), node))
            stmts.append(ast.copy_location(ast.Assign([ast.Name(target.id, ast.Store())], stored), node))
            return [ast.fix_missing_locations(s) for s in stmts]
        else:
            node.value = value
            return node
        stmts.append(ast.copy_location(ast.Assign([current_store], read), node))
        stmts.append(ast.copy_location(ast.AugAssign(
            ast.copy_location(ast.Name(current_store.id, ast.Store()), node), node.op, value), node))
        stmts.append(ast.copy_location(ast.Expr(write), node))
        return [ast.fix_missing_locations(s) for s in stmts]

    def visit_Delete(self, node: ast.Delete) -> Any:
        if self.scope is None or not any(isinstance(t, (ast.Attribute, ast.Subscript)) for t in node.targets):
            return node
        stmts: list[ast.stmt] = []
        for target in node.targets:
            if isinstance(target, ast.Attribute):
                call = self._call("del_attr", [self.visit(target.value),
                                               ast.Constant(_mangle(target.attr, self._class_name())),
                                               self._site(target, "write", self._text(target))], target)
            elif isinstance(target, ast.Subscript):
                call = self._call("del_item", [self.visit(target.value), self._index(target.slice),
                                               self._site(target, "write", self._text(target))], target)
            else:
                stmts.append(ast.copy_location(ast.Delete([target]), node))
                continue
            stmts.append(ast.copy_location(ast.Expr(call), node))
        return stmts

    # -- expressions

    def visit_Attribute(self, node: ast.Attribute) -> Any:
        if self.scope is None or not isinstance(node.ctx, ast.Load) or self._generated(node.value):
            return self.generic_visit(node)
        name = _mangle(node.attr, self._class_name())
        return self._call("get_attr", [self.visit(node.value), ast.Constant(name),
                                       self._site(node, "read", self._text(node))], node)

    def visit_Subscript(self, node: ast.Subscript) -> Any:
        if self.scope is None or not isinstance(node.ctx, ast.Load):
            return self.generic_visit(node)
        return self._call("get_item", [self.visit(node.value), self._index(node.slice),
                                       self._site(node, "read", self._text(node))], node)

    def visit_Name(self, node: ast.Name) -> Any:
        if self.scope is None or not isinstance(node.ctx, ast.Load):
            return node
        kind = self._resolve(node.id)
        if kind == "global":
            return self._call("read_global", [ast.Constant(node.id), self._site(node, "read", node.id)], node)
        if kind == "cell":
            return self._cell_read(node)
        return node

    def _cell_read(self, node: ast.Name) -> ast.expr:
        # ``helper.read_cell(...) or name``: the switch point, then the load itself.
        point = self._call("read_cell", [ast.Constant(node.id), self._site(node, "read", node.id)], node)
        return ast.copy_location(ast.BoolOp(ast.Or(), [point, ast.Name(node.id, ast.Load())]), node)

    def visit_Call(self, node: ast.Call) -> Any:
        if self.scope is None:
            return self.generic_visit(node)
        func = node.func
        if self._generated(func):
            return self.generic_visit(node)
        args = [self.visit(a) for a in node.args]
        keywords = [ast.copy_location(ast.keyword(k.arg, self.visit(k.value)), k) for k in node.keywords]
        if isinstance(func, ast.Attribute):
            name = _mangle(func.attr, self._class_name())
            method = self._call("method", [self.visit(func.value), ast.Constant(name),
                                           self._site(func, "call", self._text(func))], func)
            return ast.copy_location(ast.Call(method, args, keywords), node)
        if (isinstance(func, ast.Name) and func.id in READING_BUILTINS and self._resolve(func.id) == "plain"
                and func.id not in self.analysis.module_names and args):
            site = self._site(node, "call", f"{self._text(node.args[0])} ({func.id})")
            return ast.copy_location(ast.Call(
                ast.Attribute(ast.Name(HELPER, ast.Load()), "call_reading", ast.Load()),
                [func, site, *args], keywords), node)
        node.func = self.visit(func)
        node.args, node.keywords = args, keywords
        return node

    def visit_Compare(self, node: ast.Compare) -> Any:
        if (self.scope is None or len(node.ops) != 1 or not isinstance(node.ops[0], (ast.In, ast.NotIn))
                or self._generated(node)):
            return self.generic_visit(node)
        left, right = self.visit(node.left), self.visit(node.comparators[0])
        site = self._site(node, "read", self._text(node.comparators[0]))
        test = self._call("contains", [left, right, site], node)
        if isinstance(node.ops[0], ast.NotIn):
            return ast.copy_location(ast.UnaryOp(ast.Not(), test), node)
        return test


def rewrite(tree: ast.Module, filename: str) -> ast.Module:
    """The module with its function bodies' shared accesses routed through the helper."""
    analysis = _analyse(tree)
    rewriter = _Rewriter(analysis, filename)
    # Site descriptions come from the source as written: children are rewritten first.
    rewriter.texts = {id(node): _unparse(node) for node in ast.walk(tree) if isinstance(node, _DESCRIBED)}
    new: ast.Module = ast.fix_missing_locations(rewriter.visit(tree))
    for node in ast.walk(new):
        # Nodes made by another rewriter (pytest's) may lack end positions; filled in from
        # their parents, they can end before they start, which compile() refuses.
        lineno, end = getattr(node, "lineno", None), getattr(node, "end_lineno", None)
        if lineno is not None and end is not None and (end < lineno or (
                end == lineno and getattr(node, "end_col_offset", 0) < getattr(node, "col_offset", 0))):
            # (only nodes with positions get here: their lineno and end_lineno were read above)
            node.end_lineno, node.end_col_offset = lineno, node.col_offset  # type: ignore[attr-defined]
    return new


_DESCRIBED = (ast.Attribute, ast.Subscript, ast.Call, ast.Name)


def _unparse(node: ast.AST) -> str:
    try:
        return ast.unparse(node)
    except Exception:  # noqa: BLE001 - a description only
        return "?"


def compile_module(source: str | bytes, filename: str, tree: ast.Module | None = None) -> types.CodeType:
    """Compile a module's source (or an already parsed tree) with its accesses instrumented."""
    if tree is None:
        tree = ast.parse(source, filename)
    return compile(rewrite(tree, filename), filename, "exec", dont_inherit=True)


# ------------------------------------------------------------------ what is code to instrument


class Scope:
    """Which code gets switch points: the user's files, and installed code on request."""

    def __init__(self, include: Sequence[str] = ()) -> None:
        self.include = tuple(include)

    def wants(self, filename: str | None, module_name: str | None = None) -> bool:
        if not filename or filename.startswith("<"):
            return False
        if is_user_file(filename):
            return True
        return self.included(filename, module_name)

    def included(self, filename: str, module_name: str | None) -> bool:
        for name in self.include:
            if module_name is not None and (module_name == name or module_name.startswith(name + ".")):
                return True
            if ("/" in name or name.endswith(".py")) and filename.startswith(_absolute(name)):
                return True
        return False


def _absolute(path: str) -> str:
    return os.path.abspath(path)


# ------------------------------------------------------------------ the import hook


class _Loader(importlib.machinery.SourceFileLoader):
    """Loads a module from its source with its accesses instrumented; writes no bytecode."""

    def get_code(self, fullname: str) -> types.CodeType:
        path = self.get_filename(fullname)
        source = self.get_data(path)
        return compile_module(source, path)

    def exec_module(self, module: types.ModuleType) -> None:
        access.inject(module.__dict__)
        super().exec_module(module)


class _Finder(importlib.abc.MetaPathFinder):
    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not isinstance(spec.loader, importlib.machinery.SourceFileLoader):
            return None
        if not self.scope.wants(spec.origin, fullname):
            return None
        spec.loader = _Loader(fullname, spec.origin)  # type: ignore[arg-type]  # origin: a path, for a source file
        return spec


# ------------------------------------------------------- code already loaded (swapped in place)


def _code_objects(code: types.CodeType) -> Iterator[types.CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_objects(const)


def _code_key(code: types.CodeType) -> tuple[str, int, str]:
    return (getattr(code, "co_qualname", code.co_name), code.co_firstlineno, code.co_name)


class Instrumentation:
    """Instruments the code in scope for the length of a campaign, and undoes it after.

    Modules imported from now on are compiled instrumented (an import hook); functions of
    modules already loaded get their code objects swapped for instrumented twins (pytest
    imported the test modules long before; an ``--include``d library may have been imported
    by another). Outside a run, instrumented code behaves exactly as the original.
    """

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.finder = _Finder(scope)
        self._swapped: list[tuple[types.FunctionType, types.CodeType]] = []
        self._active = False

    def __enter__(self) -> Instrumentation:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        access.prepare()
        if not self._active:
            sys.meta_path.insert(0, self.finder)
            self._active = True
        self.instrument_loaded()

    def stop(self) -> None:
        if self._active:
            sys.meta_path.remove(self.finder)
            self._active = False
        for function, code in reversed(self._swapped):
            function.__code__ = code
        self._swapped.clear()

    def instrument_loaded(self) -> None:
        """Swap instrumented code into the functions of every loaded module in scope."""
        by_file: dict[str, dict[tuple[str, int, str], types.CodeType]] = {}
        for name, module in list(sys.modules.items()):
            filename = getattr(module, "__file__", None)
            if not isinstance(filename, str) or not filename.endswith(".py"):
                continue
            namespace = getattr(module, "__dict__", None)
            if not isinstance(namespace, dict) or not self.scope.wants(filename, name):
                continue
            helper = namespace.get(HELPER)
            if isinstance(helper, access.ModuleAccess) and helper.compiled:
                continue  # compiled instrumented already (imported through the hook, or the target)
            instrumented = _compile_loaded(module, filename)
            if instrumented is None:
                continue
            by_file[filename] = _twins(instrumented)
            access.inject(namespace, compiled=False)
        if by_file:
            self._swap(by_file)

    def _swap(self, by_file: dict[str, dict[tuple[str, int, str], types.CodeType]]) -> None:
        """Every function object made from those files' code gets the instrumented twin
        (closures and decorated functions too, wherever they are kept)."""
        import gc

        for obj in gc.get_objects():
            if type(obj) is not types.FunctionType:
                continue
            code = obj.__code__
            twins = by_file.get(code.co_filename)
            if twins is None:
                continue
            twin = twins.get(_code_key(code))
            if twin is not None and twin is not code and twin.co_freevars == code.co_freevars:
                self._swapped.append((obj, code))
                obj.__code__ = twin


#: Each function's instrumented code in a compiled module, by its key (once per compiled module).
_twins = CodeFacts(lambda module_code: {_code_key(c): c for c in _code_objects(module_code)})


#: Instrumented code by (file, size, modification time): a campaign per test compiles once.
_compiled: dict[tuple[str, int, int, bool], types.CodeType | None] = {}


def _compile_loaded(module: types.ModuleType, filename: str) -> types.CodeType | None:
    loader = getattr(module, "__loader__", None)
    pytest_rewritten = type(loader).__name__ == "AssertionRewritingHook"
    try:
        stat = os.stat(filename)
    except OSError:
        return None
    key = (filename, stat.st_size, stat.st_mtime_ns, pytest_rewritten)
    if key not in _compiled:
        _compiled[key] = _compile_file(filename, loader if pytest_rewritten else None)
    return _compiled[key]


def _compile_file(filename: str, pytest_loader: Any) -> types.CodeType | None:
    try:
        with open(filename, "rb") as f:
            source = f.read()
        tree = ast.parse(source, filename)
    except (OSError, SyntaxError, ValueError):
        return None
    if pytest_loader is not None:
        # pytest compiled this module with its assertion rewriting: keep those messages.
        try:
            from _pytest.assertion.rewrite import rewrite_asserts

            rewrite_asserts(tree, source, filename, getattr(pytest_loader, "config", None))
        except Exception:  # noqa: BLE001 - plain asserts are still asserts
            pass
    try:
        return compile_module(source, filename, tree)
    except (SyntaxError, ValueError, TypeError):
        return None


def instrument_function(function: Any) -> Any:
    """An instrumented twin of a function made outside any instrumented module (a callable
    target), or the function itself where its source cannot be read."""
    code = getattr(function, "__code__", None)
    if code is None or _is_instrumented(code):
        return function
    filename = code.co_filename
    try:
        with open(filename, "rb") as f:
            source = f.read()
    except OSError:
        return function
    module = sys.modules.get(function.__module__)
    if module is not None and getattr(module, "__file__", None) == filename:
        instrumented = _compile_loaded(module, filename)
    else:
        try:
            instrumented = compile_module(source, filename)
        except (SyntaxError, ValueError, TypeError):
            instrumented = None
    if instrumented is None:
        return function
    twin = {_code_key(c): c for c in _code_objects(instrumented)}.get(_code_key(code))
    if twin is None or twin.co_freevars != code.co_freevars:
        return function
    access.inject(function.__globals__, compiled=False)
    new = types.FunctionType(twin, function.__globals__, function.__name__, function.__defaults__, function.__closure__)
    new.__kwdefaults__ = function.__kwdefaults__
    new.__qualname__ = function.__qualname__
    new.__dict__.update(function.__dict__)
    return new


def _is_instrumented(code: types.CodeType) -> bool:
    return HELPER in code.co_names or any(HELPER in c.co_names for c in _code_objects(code))
