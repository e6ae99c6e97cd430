"""Code hash of a pipeline step: the step's own code plus the project code it reaches.

A step's cached output may be reused only while the code that produced it is
unchanged. "The code" is more than the step function: a helper in another
module, a constant, a method of a project class all change results. Orchestrators
that hash only the step's own source (Prefect, ZenML) serve stale results after
such an edit; this module walks the references instead.

What is walked
--------------
Starting from the step (unwrapped through ``__wrapped__``), every reference in its
bytecode is resolved against the function's globals, closure and local imports:

* global names (``clean(df)``), attribute chains through imported modules
  (``import helpers; helpers.clean(df)``; ``from pkg.helpers import clean``) and
  imports inside the function body (a module not imported yet is hashed as its
  whole file, without importing it);
* closure cells and default arguments, and project functions behind library
  decorators (``functools.lru_cache``, ``contextlib.contextmanager``...);
* classes: their header and class-body source, every member (methods,
  static/class methods, properties, class attributes) and project base classes;
* module-level values, each as its own entry: the source of the statement that
  assigns it (followed through ``from m import NAME``) plus its value. Constants,
  containers, dataclass instances, arrays and plain value types (paths, dates,
  decimals...) count by value; any other object only by type, because its state
  is not code (a logger's level, a client, a fitted model must not change the
  hash). A container only ever assigned empty in the source (``_cache = {}``,
  ``REGISTRY = {}``) is filled at run time, so it counts by the functions and
  classes it holds, not by its data.

A function or class is *project code* when its file lies under ``project_root``
(default: the working directory) and outside the interpreter's prefixes, the
standard library and any ``site-packages``/``dist-packages`` directory; code in
the step's own module, in ``__main__`` (scripts, notebooks, the REPL) and
functions without a module (``exec``, cloudpickle by value) count too. Project
code is hashed and walked transitively (cycles and recursion are fine). Other
code is not walked: a reference to it records its qualified name and, for a
package installed in site-packages, its distribution version (a library upgrade
invalidates the cache); the standard library counts through the Python version.

What counts as a change
-----------------------
Each function contributes its *source* as a token stream (comments, blank lines,
indentation width and spacing inside a line removed) plus its *bytecode*
(``co_code``, constants, names, argument layout, exception table; recursively for
nested functions, lambdas and comprehensions; line numbers excluded). So:

* counts: any edit to the code or a docstring, a helper's decorator lines
  and their arguments, a default value, a captured closure value, a referenced constant
  or module-level assignment, a rebinding such as ``from numpy import mean as
  agg`` -> ``median as agg``, the version of a referenced third-party package,
  the Python ``major.minor`` version;
* does not count: comments, blank lines, re-indentation or re-wrapping, moving
  a function within its file, edits to functions the step never references, the
  step's own decorator lines (``@step(retries=3)`` configures how it runs; the
  wrappers are unwrapped and not hashed either).

Lambdas are hashed by bytecode only (their source line may hold unrelated code).
Functions without source (REPL, ``exec``, cloudpickled) fall back to bytecode.
Every method of a referenced class counts, used or not.

Limits: references made through strings (``getattr(mod, "f")``) or attributes of
objects (``self.model.predict``) are not followed, and object state is not
hashed; pass data and fitted objects as step inputs. A module referenced as a
whole (passed around rather than used as ``mod.attr``) is hashed as its source
file, not walked.

Speed
-----
Results are memoised per step object within a process and revalidated on every
call by identity checks on what was resolved (globals, module attributes,
``__code__``, defaults, closure cells, class members), so a reloaded or
monkey-patched helper is noticed. Per code object, the tokenised source and
bytecode are memoised too, and per file (by mtime and size) its AST index. There
is no cross-process memo: a new process re-reads everything. In-place mutation
of a module-level container is not noticed within one process.
"""

from __future__ import annotations

import ast
import builtins
import dataclasses
import datetime
import decimal
import dis
import enum
import fractions
import functools
import hashlib
import importlib.machinery
import importlib.metadata
import importlib.util
import inspect
import io
import linecache
import os
import re
import site
import sys
import sysconfig
import textwrap
import tokenize
import types
import uuid
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any, Generic, TypeVar

__all__ = ["code_hash", "code_hash_details", "project_modules"]

_FORMAT = "loopml-codehash/1"
_MAX_MEMO = 1024
_MAX_DEPTH = 24
_MAX_ITEMS = 10_000

_V = TypeVar("_V")

# A reference found in bytecode: ("global", name, *attrs), ("deref", name, *attrs)
# or ("import", level, module, *attrs).
_Chain = tuple[str, ...]


class _Missing:
    """Sentinel type: a name that is not bound (distinct from ``None``)."""

    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Any = _Missing()
_EMPTY_CELL: Any = _Missing()

_BUILTIN_CONTAINERS = frozenset({tuple, list, set, frozenset, dict})
# Value types whose repr is their whole (immutable) state.
_REPR_TYPES: tuple[type, ...] = (
    range,
    slice,
    types.GenericAlias,
    PurePath,
    datetime.date,
    datetime.time,
    datetime.timedelta,
    datetime.tzinfo,
    decimal.Decimal,
    fractions.Fraction,
    uuid.UUID,
    re.Pattern,
)
_CLASS_SKIP = frozenset({"__dict__", "__weakref__", "__module__", "__qualname__", "__firstlineno__"})
_ATTR_OPS = frozenset({"LOAD_ATTR", "LOAD_METHOD"})
_LOCAL_LOAD_OPS = frozenset({"LOAD_FAST", "LOAD_FAST_CHECK", "LOAD_FAST_AND_CLEAR", "LOAD_DEREF", "LOAD_CLASSDEREF"})
_LOCAL_STORE_OPS = frozenset({"STORE_FAST", "STORE_DEREF"})
_DEFINITION_TYPES: tuple[type, ...] = (
    types.FunctionType,
    type,
    types.ModuleType,
    types.MethodType,
    types.BuiltinFunctionType,
    types.MethodDescriptorType,
    types.WrapperDescriptorType,
    types.MethodWrapperType,
    types.ClassMethodDescriptorType,
    staticmethod,
    classmethod,
    property,
)


# -- public API ---------------------------------------------------------------------


def code_hash(fn: Callable[..., Any], *, project_root: str | os.PathLike[str] | None = None) -> str:
    """Hash of a step's code and of every project function, class and constant it reaches.

    Args:
        fn: The step function (or any callable: a ``@step``-decorated object is
            unwrapped through ``__wrapped__``; a bound method, class or
            ``functools.partial`` works too).
        project_root: Directory whose code is hashed and walked; code elsewhere
            (standard library, site-packages) is referenced by name and package
            version only. Defaults to the current working directory.

    Returns:
        A sha256 hex digest, equal across processes for equal code (see the module
        docstring for what counts as a change).
    """
    return _compute(fn, project_root).digest


def code_hash_details(fn: Callable[..., Any], *, project_root: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """Per-definition hashes behind :func:`code_hash`, to say *which* helper changed.

    Comparing the dicts of two versions names what changed: a key whose value
    differs is a function, class or constant whose own code changed (its callers'
    entries stay the same); a new or missing key is a reference added or removed.

    Args:
        fn: As for :func:`code_hash`.
        project_root: As for :func:`code_hash`.

    Returns:
        ``{qualified name: sha256 hex}`` for every walked definition: functions and
        classes as ``module.qualname``, constants as ``module.NAME``, modules hashed
        as whole files as ``module:name``, third-party packages as
        ``package:<distribution>``.
    """
    return dict(_compute(fn, project_root).details)


def project_modules(project_root: str | os.PathLike[str] | None = None) -> list[types.ModuleType]:
    """The imported modules that are project code (see the module docstring).

    The Ray executor pickles these by value, so a cluster's workers run the
    project's code without it being installed there.
    """
    scope = _scope_for(os.fspath(project_root) if project_root is not None else os.getcwd())
    found = []
    for name, module in list(sys.modules.items()):
        filename = getattr(module, "__file__", None)
        if name != "__main__" and isinstance(filename, str) and scope.is_project_file(filename):
            found.append(module)
    return found


# -- memo ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Result:
    digest: str
    details: Mapping[str, str]
    dict_checks: tuple[tuple[Mapping[str, Any], str, Any], ...]
    attr_checks: tuple[tuple[Any, str, Any], ...]
    cell_checks: tuple[tuple[types.CellType, Any], ...]
    len_checks: tuple[tuple[Mapping[str, Any], int], ...]

    def valid(self) -> bool:
        """True while everything the walk resolved is still bound to the same objects."""
        for mapping, name, expected in self.dict_checks:
            if mapping.get(name, _MISSING) is not expected:
                return False
        for obj, attr, expected in self.attr_checks:
            if getattr(obj, attr, _MISSING) is not expected:
                return False
        for cell, expected in self.cell_checks:
            if _cell_value(cell) is not expected:
                return False
        for mapping, length in self.len_checks:
            if len(mapping) != length:
                return False
        return True


class _Pin:
    """A strong reference that keeps an id from being reused (and is not a container to walk)."""

    __slots__ = ("obj",)

    def __init__(self, obj: object) -> None:
        self.obj = obj


# (id(fn), project_root as given) -> (pinned fn, result); the size cap bounds memory
# for dynamically created functions.
_RESULTS: dict[tuple[int, str], tuple[_Pin, _Result]] = {}


def _compute(fn: Callable[..., Any], project_root: str | os.PathLike[str] | None) -> _Result:
    root = os.getcwd() if project_root is None else os.fspath(project_root)
    memo_key = (id(fn), root)
    entry = _RESULTS.get(memo_key)
    if entry is not None and entry[0].obj is fn and entry[1].valid():
        return entry[1]
    walker = _Walker(_scope_for(root))
    result = walker.run(fn)
    if len(_RESULTS) >= _MAX_MEMO:
        _RESULTS.pop(next(iter(_RESULTS)))
    _RESULTS[memo_key] = (_Pin(fn), result)
    return result


class _IdentityMemo(Generic[_V]):
    """Values keyed by object identity, dropped when the (weakly held) object dies."""

    def __init__(self) -> None:
        self._data: dict[int, tuple[weakref.ref[Any], _V]] = {}

    def get(self, obj: object) -> _V | None:
        entry = self._data.get(id(obj))
        if entry is not None and entry[0]() is obj:
            return entry[1]
        return None

    def put(self, obj: object, value: _V) -> None:
        key = id(obj)
        ref = weakref.ref(obj, functools.partial(self._discard, key))
        self._data[key] = (ref, value)

    def _discard(self, key: int, ref: weakref.ref[Any]) -> None:
        entry = self._data.get(key)
        if entry is not None and entry[0] is ref:
            del self._data[key]


# -- which files are project code ------------------------------------------------------


def _is_within(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


class _Scope:
    """Decides which files are project code for one project root."""

    def __init__(self, root: str) -> None:
        self.root = os.path.realpath(root)
        candidates: set[str] = set()
        for scheme_vars in (None, {"base": sys.base_prefix, "platbase": sys.base_exec_prefix}):
            paths = sysconfig.get_paths(vars=scheme_vars) if scheme_vars else sysconfig.get_paths()
            candidates.update(paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths)
        candidates.update(getattr(site, "getsitepackages", list)())
        user_site = site.getusersitepackages() if hasattr(site, "getusersitepackages") else None
        if isinstance(user_site, str):
            candidates.add(user_site)
        for prefix in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix):
            # A virtualenv inside the project is excluded; a prefix that contains the
            # project (a system Python in /usr with the project in /usr/src) is not.
            if not _is_within(self.root, os.path.realpath(prefix)):
                candidates.add(prefix)
        # loopml itself is a library, not project code, even when the project is loopml's own checkout
        candidates.add(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        self.excluded = tuple(sorted({os.path.realpath(c) for c in candidates if c}))
        self._files: dict[str, bool] = {}

    def is_project_file(self, filename: str) -> bool:
        known = self._files.get(filename)
        if known is not None:
            return known
        path = os.path.realpath(filename)
        inside = _is_within(path, self.root) and not any(_is_within(path, ex) for ex in self.excluded)
        if inside:
            parts = os.path.relpath(path, self.root).split(os.sep)
            inside = "site-packages" not in parts and "dist-packages" not in parts
        self._files[filename] = inside
        return inside


_SCOPES: dict[str, _Scope] = {}


def _scope_for(root: str) -> _Scope:
    scope = _SCOPES.get(root)
    if scope is None:
        scope = _SCOPES[root] = _Scope(root)
    return scope


# -- per-code facts (memoised per code object) ---------------------------------------


@dataclass(frozen=True, slots=True)
class _CodeInfo:
    source: str  # digest of the source token stream, "" when unavailable
    undecorated: str  # the same without the decorator lines (for the step itself)
    bytecode: str  # digest of the canonical bytecode
    chains: tuple[_Chain, ...]  # references, sorted


_CODE_INFO: _IdentityMemo[_CodeInfo] = _IdentityMemo()


def _code_info(code: types.CodeType) -> _CodeInfo:
    info = _CODE_INFO.get(code)
    if info is None:
        chains: set[_Chain] = set()
        _scan(code, {}, chains)
        source, undecorated = ("", "") if code.co_name == "<lambda>" else _code_source_digests(code)
        info = _CodeInfo(source, undecorated, bytecode=_sha(_code_repr(code)), chains=tuple(sorted(chains)))
        _CODE_INFO.put(code, info)
    return info


def _code_source_digests(code: types.CodeType) -> tuple[str, str]:
    """Digests of a function's source with and without its decorator lines ("" when unavailable)."""
    # inspect.getsource(code) first maps every loaded module to its file
    # (inspect.getmodule); the block at co_firstlineno (decorators included) is enough.
    try:
        linecache.checkcache(code.co_filename)
        lines = linecache.getlines(code.co_filename)
        start = code.co_firstlineno - 1
        if not lines or not 0 <= start < len(lines):
            return "", ""
        block = inspect.getblock(lines[start:])
    except (IndexError, SyntaxError, tokenize.TokenError):
        return "", ""
    full = _source_digest("".join(block))
    if not block or not block[0].lstrip().startswith("@"):
        return full, full
    try:
        node = ast.parse(textwrap.dedent("".join(block))).body[0]
    except (SyntaxError, IndexError, ValueError):
        return full, full
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return full, full
    return full, _source_digest("".join(block[node.lineno - 1 :]))


# -- source of classes and module-level assignments (one AST index per file) ----------

_Ranges = tuple[tuple[int, int], ...]  # 1-based inclusive line ranges


@dataclass(frozen=True, slots=True)
class _FileIndex:
    """Where a file defines its classes and module-level names."""

    lines: tuple[str, ...]
    classes: Mapping[str, _Ranges]  # qualname -> header and non-method statements
    assignments: Mapping[str, _Ranges]  # module-level name -> its assignment statements
    imports: Mapping[str, tuple[int, str, str]]  # name -> (level, module, name) of ``from m import x``
    runtime_filled: frozenset[str]  # NAME or Class.attr only ever assigned an empty container
    digests: dict[_Ranges, str]

    def digest(self, ranges: _Ranges) -> str:
        known = self.digests.get(ranges)
        if known is None:
            known = _sha("\n".join(_source_digest("".join(self.lines[a - 1 : b])) for a, b in ranges))
            self.digests[ranges] = known
        return known


# filename -> ((mtime_ns, size), value): re-read when the file changes on disk.
_FILE_INDEX: dict[str, tuple[tuple[int, int], _FileIndex | None]] = {}
_FILE_DIGEST: dict[str, tuple[tuple[int, int], str]] = {}


def _stamp(filename: str) -> tuple[int, int] | None:
    try:
        st = os.stat(filename)
    except (OSError, ValueError):
        return None
    return st.st_mtime_ns, st.st_size


def _file_index(filename: str) -> _FileIndex | None:
    stamp = _stamp(filename)
    if stamp is None:
        return None
    cached = _FILE_INDEX.get(filename)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    linecache.checkcache(filename)
    lines = tuple(linecache.getlines(filename))
    index: _FileIndex | None
    try:
        tree = ast.parse("".join(lines))
    except (SyntaxError, ValueError):
        index = None
    else:
        index = _index_tree(tree, lines)
    _FILE_INDEX[filename] = (stamp, index)
    return index


def _start(node: ast.stmt) -> int:
    decorators: list[ast.expr] = getattr(node, "decorator_list", [])
    return min([node.lineno, *(d.lineno for d in decorators)])


def _end(node: ast.stmt) -> int:
    return node.end_lineno or node.lineno


def _target_names(target: ast.expr) -> list[str]:
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, (ast.Tuple, ast.List)):
        return [n for elt in target.elts for n in _target_names(elt)]
    if isinstance(target, ast.Starred):
        return _target_names(target.value)
    return []


_EMPTY_FACTORIES = frozenset(
    {"dict", "list", "set", "defaultdict", "OrderedDict", "Counter", "deque", "ChainMap"}
    | {"WeakKeyDictionary", "WeakValueDictionary", "WeakSet"}
)


def _is_empty_container(expr: ast.expr | None) -> bool:
    """``{}``, ``[]``, ``set()``, ``defaultdict(list)``...: a container filled at run time."""
    if isinstance(expr, ast.Dict):
        return not expr.keys
    if isinstance(expr, (ast.List, ast.Set)):
        return not expr.elts
    if not isinstance(expr, ast.Call):
        return False
    func = expr.func
    name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
    if name not in _EMPTY_FACTORIES or any(k.arg != "maxlen" for k in expr.keywords):
        return False
    return len(expr.args) <= (1 if name == "defaultdict" else 0)


def _index_tree(tree: ast.Module, lines: tuple[str, ...]) -> _FileIndex:
    classes: dict[str, _Ranges] = {}
    assignments: dict[str, list[tuple[int, int]]] = {}
    imports: dict[str, tuple[int, str, str]] = {}
    empty: dict[str, bool] = {}  # name -> every assignment is an empty container

    def assigned(stmt: ast.stmt, prefix: str) -> list[str]:
        if isinstance(stmt, ast.Assign):
            names = [n for t in stmt.targets for n in _target_names(t)]
            value: ast.expr | None = stmt.value
        elif isinstance(stmt, (ast.AnnAssign, ast.AugAssign)):
            names, value = _target_names(stmt.target), stmt.value
            if value is None:  # a bare annotation binds nothing
                return []
        else:
            return []
        is_empty = isinstance(stmt, ast.Assign | ast.AnnAssign) and _is_empty_container(value)
        for name in names:
            empty[prefix + name] = empty.get(prefix + name, True) and is_empty
        return names

    def nested(node: ast.AST, prefix: str) -> None:
        """Classes defined anywhere below ``node`` (inside a function: ``f.<locals>.C``)."""
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                a_class(child, prefix)
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                nested(child, f"{prefix}{child.name}.<locals>.")
            else:
                nested(child, prefix)

    def a_class(node: ast.ClassDef, prefix: str) -> None:
        qualname = prefix + node.name
        ranges = [(_start(node), max(node.lineno, _start(node.body[0]) - 1))]  # decorators and header
        for stmt in node.body:
            if isinstance(stmt, ast.ClassDef):
                a_class(stmt, qualname + ".")
            elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                nested(stmt, f"{qualname}.{stmt.name}.<locals>.")  # methods are hashed as functions
            else:
                ranges.append((_start(stmt), _end(stmt)))
                assigned(stmt, qualname + ".")
                nested(stmt, qualname + ".")
        classes.setdefault(qualname, tuple(ranges))

    def block(stmts: list[ast.stmt]) -> None:
        for stmt in stmts:
            if isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                for name in assigned(stmt, ""):
                    assignments.setdefault(name, []).append((stmt.lineno, _end(stmt)))
            elif isinstance(stmt, ast.ImportFrom):
                for alias in stmt.names:
                    imports[alias.asname or alias.name] = (stmt.level, stmt.module or "", alias.name)
            elif isinstance(stmt, ast.ClassDef):
                a_class(stmt, "")
            elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                nested(stmt, f"{stmt.name}.<locals>.")
            else:  # if / try / with / for at module level
                for field in ("body", "orelse", "finalbody"):
                    block(getattr(stmt, field, []))
                for handler in getattr(stmt, "handlers", []):
                    block(handler.body)

    block(tree.body)
    return _FileIndex(
        lines=lines,
        classes=classes,
        assignments={k: tuple(v) for k, v in assignments.items()},
        imports=imports,
        runtime_filled=frozenset(name for name, is_empty in empty.items() if is_empty),
        digests={},
    )


def _assignment_source(filename: object, package: object, name: str, hops: int = 4) -> tuple[str, bool]:
    """Digest of the statements binding module-level ``name`` (following ``from m import name``)
    and whether they only ever assign an empty container (a cache or registry filled at run time)."""
    index = _file_index(filename) if isinstance(filename, str) else None
    if index is None:
        return "", False
    ranges = index.assignments.get(name)
    if ranges:
        return index.digest(ranges), name in index.runtime_filled
    imported = index.imports.get(name)
    if imported is None or hops <= 0:
        return "", False
    level, module, original = imported
    try:
        absolute = importlib.util.resolve_name("." * level + module, package if isinstance(package, str) else None)
    except (ImportError, ValueError):
        return "", False
    source = sys.modules.get(absolute)
    if source is None:
        return "", False
    return _assignment_source(getattr(source, "__file__", None), source.__package__, original, hops - 1)


def _class_index(cls: type) -> _FileIndex | None:
    module = sys.modules.get(cls.__module__)
    filename = getattr(module, "__file__", None)
    return _file_index(filename) if isinstance(filename, str) else None


def _file_digest(filename: str) -> str:
    stamp = _stamp(filename)
    if stamp is None:
        return ""
    cached = _FILE_DIGEST.get(filename)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    try:
        if filename.endswith(".py"):
            with tokenize.open(filename) as f:
                digest = _source_digest(f.read())
        else:
            with open(filename, "rb") as fb:
                digest = hashlib.sha256(fb.read()).hexdigest()
    except (OSError, SyntaxError, UnicodeDecodeError):
        digest = ""
    _FILE_DIGEST[filename] = (stamp, digest)
    return digest


def _source_digest(text: str) -> str:
    """Digest of the token stream: comments, blank lines and spacing do not count."""
    text = textwrap.dedent(text)
    parts: list[str] = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type in (tokenize.COMMENT, tokenize.NL, tokenize.ENDMARKER):
                continue
            if tok.type in (tokenize.INDENT, tokenize.DEDENT, tokenize.NEWLINE):
                parts.append(tokenize.tok_name[tok.type])
            else:
                parts.append(f"{tokenize.tok_name[tok.type]}:{tok.string}")
    except (tokenize.TokenError, SyntaxError):
        parts = ["raw", *(line.strip() for line in text.splitlines() if line.strip())]
    return _sha("\x00".join(parts))


def _code_repr(code: types.CodeType) -> str:
    """Canonical text of a code object; line numbers and file names excluded."""
    return "|".join(
        (
            "code",
            code.co_name,
            str(code.co_argcount),
            str(code.co_posonlyargcount),
            str(code.co_kwonlyargcount),
            str(code.co_flags),
            code.co_code.hex(),
            repr(code.co_names),
            repr(code.co_varnames),
            repr(code.co_freevars),
            repr(code.co_cellvars),
            getattr(code, "co_exceptiontable", b"").hex(),
            "consts=" + ",".join(_const_repr(c) for c in code.co_consts),
        )
    )


def _const_repr(value: object) -> str:
    if isinstance(value, types.CodeType):
        return "{" + _code_repr(value) + "}"
    if isinstance(value, tuple):
        return "(" + ",".join(_const_repr(v) for v in value) + ")"
    if isinstance(value, frozenset):
        # Set iteration order depends on the per-process string hash seed.
        return "frozenset{" + ",".join(sorted(_const_repr(v) for v in value)) + "}"
    return f"{type(value).__name__}:{value!r}"


def _scan(code: types.CodeType, inherited: Mapping[str, _Chain], out: set[_Chain]) -> None:
    """Collect the references of ``code`` and its nested code objects into ``out``."""
    aliases: dict[str, _Chain] = {name: chain for name, chain in inherited.items() if name in code.co_freevars}
    instrs = list(dis.get_instructions(code))
    n = len(instrs)
    i = 0
    while i < n:
        ins = instrs[i]
        op = ins.opname
        root: _Chain | None = None
        if op == "IMPORT_NAME":
            i = _scan_import(instrs, i, aliases)
            continue
        if op in ("LOAD_GLOBAL", "LOAD_NAME") and isinstance(ins.argval, str):
            root = ("global", ins.argval)
        elif op in _LOCAL_LOAD_OPS and isinstance(ins.argval, str):
            if ins.argval in aliases:
                root = aliases[ins.argval]
            elif op in ("LOAD_DEREF", "LOAD_CLASSDEREF") and ins.argval in code.co_freevars:
                root = ("deref", ins.argval)
        elif op.startswith("LOAD_FAST") and isinstance(ins.argval, tuple):  # superinstructions (3.13+)
            out.update(aliases[name] for name in ins.argval if isinstance(name, str) and name in aliases)
        if root is None:
            i += 1
            continue
        attrs: list[str] = []
        j = i + 1
        while j < n and instrs[j].opname in _ATTR_OPS and isinstance(instrs[j].argval, str):
            attrs.append(instrs[j].argval)
            j += 1
        out.add(root + tuple(attrs))
        i = j
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _scan(const, aliases, out)


def _scan_import(instrs: list[dis.Instruction], i: int, aliases: dict[str, _Chain]) -> int:
    """Record the local names bound by the import at ``instrs[i]``; return the next index."""
    name = instrs[i].argval
    level = instrs[i - 2].argval if i >= 2 and instrs[i - 2].opname == "LOAD_CONST" else 0
    fromlist = instrs[i - 1].argval if i >= 1 and instrs[i - 1].opname == "LOAD_CONST" else None
    if not isinstance(name, str) or not isinstance(level, int):
        return i + 1
    # ``import a.b`` binds ``a``; ``import a.b as c`` then walks IMPORT_FROM b;
    # ``from m import x, y`` takes each IMPORT_FROM from ``m``.
    bound: _Chain = ("import", "0", name.split(".")[0]) if fromlist is None else ("import", str(level), name)
    last = bound
    j = i + 1
    while j < len(instrs):
        ins = instrs[j]
        if ins.opname == "IMPORT_FROM" and isinstance(ins.argval, str):
            last = (last if fromlist is None else bound) + (ins.argval,)
        elif ins.opname in _LOCAL_STORE_OPS and isinstance(ins.argval, str):
            aliases[ins.argval] = last
        elif ins.opname not in ("SWAP", "POP_TOP", "COPY"):
            break
        j += 1
    return j


# -- the walk -------------------------------------------------------------------------


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _cell_value(cell: types.CellType) -> Any:
    try:
        return cell.cell_contents
    except ValueError:
        return _EMPTY_CELL


@functools.cache
def _distributions() -> Mapping[str, list[str]]:
    return importlib.metadata.packages_distributions()  # slow (scans every RECORD): last resort


_VERSIONS: dict[str, tuple[tuple[str, str], ...]] = {}


def _package_versions(top: str) -> tuple[tuple[str, str], ...]:
    """``(distribution, version)`` of an installed top-level package; () for the stdlib and local code."""
    known = _VERSIONS.get(top)
    if known is not None:
        return known
    if top in sys.stdlib_module_names or top in sys.builtin_module_names or top == "__main__":
        return ()
    module = sys.modules.get(top)
    if module is None:
        return ()  # not imported: nothing to version (and nothing to cache yet)
    location = getattr(module, "__file__", None) or next(iter(getattr(module, "__path__", None) or ()), None)
    parts = os.path.normpath(location).split(os.sep) if isinstance(location, str) else []
    found: tuple[tuple[str, str], ...] = ()
    if "site-packages" in parts or "dist-packages" in parts:
        found = _installed_versions(top, module)
    _VERSIONS[top] = found
    return found


def _installed_versions(top: str, module: types.ModuleType) -> tuple[tuple[str, str], ...]:
    try:  # the common case: the distribution is named like the module (numpy, pandas)
        return ((top, importlib.metadata.version(top)),)
    except (importlib.metadata.PackageNotFoundError, ValueError):
        pass
    version = getattr(module, "__version__", None)
    if isinstance(version, str):  # sklearn, yaml: no metadata scan needed
        return ((top, version),)
    found: list[tuple[str, str]] = []
    for dist in sorted(set(_distributions().get(top, ()))):
        try:
            found.append((dist, importlib.metadata.version(dist)))
        except importlib.metadata.PackageNotFoundError:
            continue
    return tuple(found)


class _Walker:
    """One walk from a root callable; collects node hashes and the checks that keep them valid."""

    def __init__(self, scope: _Scope) -> None:
        self.scope = scope
        self.root_modules: set[str] = set()
        self.root_files: set[str] = set()
        self.keys: dict[int, str] = {}
        self.used: set[str] = set()
        self.alive: list[object] = []  # keeps ids in ``keys`` unique during the walk
        self.queue: deque[tuple[str, Any, str]] = deque()
        self.details: dict[str, str] = {}
        self.dict_checks: list[tuple[Mapping[str, Any], str, Any]] = []
        self.attr_checks: list[tuple[Any, str, Any]] = []
        self.cell_checks: list[tuple[types.CellType, Any]] = []
        self.len_checks: list[tuple[Mapping[str, Any], int]] = []
        self.values: dict[int, str] = {}  # id -> canonical text of containers and objects
        self.budget = _MAX_ITEMS
        self.root: object = None

    # -- driver

    def run(self, fn: Callable[..., Any]) -> _Result:
        target: Any = fn
        seen = {id(target)}
        while True:
            wrapped = getattr(target, "__wrapped__", _MISSING)
            self.attr_checks.append((target, "__wrapped__", wrapped))
            if wrapped is _MISSING or id(wrapped) in seen:
                break
            seen.add(id(wrapped))
            target = wrapped
        func = target.__func__ if isinstance(target, types.MethodType) else target
        self.root = func
        if isinstance(func, types.FunctionType):
            self.root_modules.add(func.__module__)
            self.root_files.add(func.__code__.co_filename)
        elif isinstance(func, type):
            self.root_modules.add(func.__module__)
        root_key = self.ref(target) if _is_definition(target) else "value:" + self.value(target)
        while self.queue:
            kind, obj, key = self.queue.popleft()
            if kind == "function":
                self._function_node(obj, key)
            elif kind == "class":
                self._class_node(obj, key)
            else:
                self._module_node(obj, key)
        header = f"{_FORMAT}\n{sys.implementation.name} {sys.version_info[0]}.{sys.version_info[1]}\nroot {root_key}\n"
        digest = hashlib.sha256(header.encode())
        for key in sorted(self.details):
            digest.update(f"{key}\t{self.details[key]}\n".encode("utf-8", "surrogatepass"))
        return _Result(
            digest=digest.hexdigest(),
            details=self.details,
            dict_checks=tuple({(id(m), k): (m, k, v) for m, k, v in self.dict_checks}.values()),
            attr_checks=tuple({(id(o), a): (o, a, v) for o, a, v in self.attr_checks}.values()),
            cell_checks=tuple({id(c): (c, v) for c, v in self.cell_checks}.values()),
            len_checks=tuple({id(m): (m, n) for m, n in self.len_checks}.values()),
        )

    # -- classification

    def module_is_project(self, module: types.ModuleType) -> bool:
        name = module.__name__
        if name == "__main__" or name in self.root_modules:
            return True
        filename = getattr(module, "__file__", None)
        if isinstance(filename, str):
            return self.scope.is_project_file(filename)
        paths = getattr(module, "__path__", None)  # namespace package
        if not paths:
            return False
        return all(self.scope.is_project_file(p) for p in paths)

    def function_is_project(self, fn: types.FunctionType) -> bool:
        module_name = fn.__module__
        filename = fn.__code__.co_filename
        if module_name == "__main__" or module_name in self.root_modules or filename in self.root_files:
            return True
        if not filename.startswith("<"):
            return self.scope.is_project_file(filename)
        module = sys.modules.get(module_name) if isinstance(module_name, str) else None
        # No importable module: exec'd or cloudpickled-by-value code, i.e. user code.
        return module is None or self.module_is_project(module)

    def class_is_project(self, cls: type) -> bool:
        module_name = cls.__module__
        if module_name == "__main__" or module_name in self.root_modules:
            return True
        module = sys.modules.get(module_name)
        return module is None or self.module_is_project(module)

    # -- references and values

    def _enqueue(self, kind: str, obj: Any, base: str) -> str:
        key = base
        n = 2
        while key in self.used:  # same qualname, different object (closures, lambdas)
            key = f"{base}#{n}"
            n += 1
        self.used.add(key)
        self.keys[id(obj)] = key
        self.alive.append(obj)
        self.queue.append((kind, obj, key))
        return key

    def ref(self, obj: Any) -> str:
        """Name of a definition; project definitions are queued to be hashed."""
        known = self.keys.get(id(obj))
        if known is not None:
            return known
        if isinstance(obj, types.FunctionType):
            if self.function_is_project(obj):
                return self._enqueue("function", obj, f"{obj.__module__}.{obj.__qualname__}")
            return self.external_function(obj)
        if isinstance(obj, type):
            if self.class_is_project(obj):
                return self._enqueue("class", obj, f"{obj.__module__}.{obj.__qualname__}")
            return self.external(obj)
        if isinstance(obj, types.ModuleType):
            if self.module_is_project(obj):
                return self._enqueue("module", obj, f"module:{obj.__name__}")
            return self.external(obj)
        if isinstance(obj, types.MethodType):
            return f"method({self.ref(obj.__func__)}, {self.value(obj.__self__)})"
        if isinstance(obj, (staticmethod, classmethod)):
            return f"{type(obj).__name__}({self.ref(obj.__func__)})"
        if isinstance(obj, property):
            return f"property({self.value(obj.fget)}, {self.value(obj.fset)}, {self.value(obj.fdel)})"
        wrapped = getattr(obj, "__wrapped__", _MISSING)
        if wrapped is not _MISSING and wrapped is not obj:
            return f"{self.ref(type(obj))}({self.value(wrapped)})"
        return self.external(obj)

    def external_function(self, fn: types.FunctionType) -> str:
        """A library function; when it wraps project code (a decorator), that code counts."""
        name = self.external(fn)
        wrapped = fn.__dict__.get("__wrapped__", _MISSING)
        self.dict_checks.append((fn.__dict__, "__wrapped__", wrapped))
        if wrapped is not _MISSING:
            return f"{name}({self.value(wrapped)})"
        captured = []
        for cell in fn.__closure__ or ():  # a decorator without functools.wraps
            contents = _cell_value(cell)
            if isinstance(contents, (types.FunctionType, type)):
                self.cell_checks.append((cell, contents))
                captured.append(self.ref(contents))
        return f"{name}({','.join(captured)})" if captured else name

    def external(self, obj: Any) -> str:
        """Name of a non-project definition; records its package version."""
        module: Any
        if isinstance(obj, types.ModuleType):
            module, name = obj.__name__, obj.__name__
        else:
            module = getattr(obj, "__module__", None)
            qualname = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
            if not isinstance(module, str):
                owner = getattr(obj, "__objclass__", None) or type(getattr(obj, "__self__", obj))
                module = getattr(owner, "__module__", "?")
            name = f"{module}.{qualname}" if isinstance(qualname, str) else f"{module}.<{type(obj).__qualname__}>"
        self.package(module if isinstance(module, str) else "?")
        return name

    def package(self, module: str) -> None:
        for dist, version in _package_versions(module.partition(".")[0]):
            self.details[f"package:{dist}"] = _sha(f"{dist}=={version}")

    def value(self, value: Any, runtime_filled: bool = False) -> str:
        """Canonical, process-independent text of a value; definitions become references.

        Containers are followed to ``_MAX_ITEMS`` elements per value (a large table
        counts by its type, length and first elements), each container once per walk.
        A container filled at run time (assigned ``{}`` in the source: a cache, a
        registry) counts only by the functions and classes it holds, so its data
        cannot make the hash depend on what the process did before.
        """
        saved = self.budget
        self.budget = _MAX_ITEMS
        try:
            if runtime_filled:
                found: set[str] = set()
                self._definitions(value, 0, found, set())
                return "definitions[" + ",".join(sorted(found)) + "]"
            return self._value(value, 0)
        finally:
            self.budget = saved

    def _definitions(self, value: Any, depth: int, found: set[str], seen: set[int]) -> None:
        if _is_definition(value) or isinstance(value, enum.Enum):
            found.add(self._value(value, depth))
        elif isinstance(value, (tuple, list, set, frozenset, dict)) and id(value) not in seen:
            seen.add(id(value))
            if depth > _MAX_DEPTH or self.budget <= 0:
                return
            self.budget -= len(value)
            items = [x for kv in value.items() for x in kv] if isinstance(value, dict) else list(value)
            for item in items:
                self._definitions(item, depth + 1, found, seen)

    def _value(self, value: Any, depth: int) -> str:
        if value is None or value is Ellipsis or value is NotImplemented:
            return repr(value)
        cls = type(value)
        if cls in (bool, int, float, complex, str, bytes):
            return f"{cls.__name__}:{value!r}"
        if isinstance(value, enum.Enum):
            return f"enum:{self.ref(cls)}.{value.name}"
        if _is_definition(value):
            return "ref:" + self.ref(value)
        known = self.values.get(id(value))
        if known is not None:
            return known
        self.values[id(value)] = "<cycle>"
        self.alive.append(value)
        text = self._compound(value, cls, depth)
        self.values[id(value)] = text
        return text

    def _compound(self, value: Any, cls: type, depth: int) -> str:
        name = cls.__name__ if cls in _BUILTIN_CONTAINERS else self.ref(cls)
        if isinstance(value, (tuple, list, set, frozenset, dict)):
            if depth > _MAX_DEPTH or self.budget <= 0:
                return f"<{name} len={len(value)}>"
            self.budget -= len(value)
            if isinstance(value, dict):
                items = [f"{self._value(k, depth + 1)}:{self._value(v, depth + 1)}" for k, v in value.items()]
                factory = getattr(value, "default_factory", None)  # defaultdict
                if factory is not None:
                    items.append("default_factory=" + self._value(factory, depth + 1))
            else:
                items = [self._value(v, depth + 1) for v in value]
            if isinstance(value, (set, frozenset)):
                items.sort()  # set order depends on the per-process string hash seed
            return f"{name}[" + ",".join(items) + "]"
        if isinstance(value, (bool, int, float, complex, str, bytes, *_REPR_TYPES)) or cls.__module__ == "typing":
            return f"{name}:{value!r}"
        if isinstance(value, functools.partial):
            args = f"{self._value(value.args, depth + 1)},{self._value(value.keywords, depth + 1)}"
            return f"partial({self.ref(value.func)},{args})"
        if isinstance(value, types.CodeType):
            return "code:" + _sha(_code_repr(value))
        if dataclasses.is_dataclass(value):  # a config object: its fields are code-like
            fields = (
                f"{f.name}={self._value(getattr(value, f.name, None), depth + 1)}" for f in dataclasses.fields(value)
            )
            return f"dataclass:{name}(" + ",".join(fields) + ")"
        tobytes = getattr(value, "tobytes", None)
        if callable(tobytes) and hasattr(value, "dtype") and hasattr(value, "shape"):  # numpy arrays and scalars
            try:
                data = tobytes()
                if isinstance(data, bytes):
                    return f"array:{name}:{value.dtype}:{value.shape}:{hashlib.sha256(data).hexdigest()}"
            except Exception:  # an array-like that cannot export bytes: count its type only
                pass
        # Any other object is state, not code (a logger's level, a client, a fitted
        # model): only its type counts, so runtime state cannot change the hash.
        return f"object:{name}"

    # -- resolving bytecode references

    def resolve(self, fn: types.FunctionType, key: str, chain: _Chain) -> str | None:
        kind, name, *rest = chain
        globals_ = fn.__globals__
        if kind == "global":
            obj = globals_.get(name, _MISSING)
            self.dict_checks.append((globals_, name, obj))
            if obj is _MISSING:
                builtins_ = globals_.get("__builtins__", builtins)
                names = builtins_.__dict__ if isinstance(builtins_, types.ModuleType) else builtins_
                return f"builtins.{name}" if name in names else f"<unresolved {name}>"
            qual = f"{globals_.get('__name__', fn.__module__)}.{name}"
            attrs = rest
            owner: tuple[Any, Any, str] | None = (globals_.get("__file__"), _package_of(fn), name)
        elif kind == "deref":
            code = fn.__code__
            if name not in code.co_freevars or fn.__closure__ is None or not rest:
                return None  # a local of an enclosing scope, or a closure value hashed inline
            cell = fn.__closure__[code.co_freevars.index(name)]
            obj = _cell_value(cell)
            self.cell_checks.append((cell, obj))
            if obj is _EMPTY_CELL:
                return "<empty cell>"
            qual, attrs, owner = f"{key}.<closure>.{name}", rest, None
        else:  # import
            level, module, attrs = int(name), rest[0], rest[1:]
            try:
                absolute = importlib.util.resolve_name("." * level + module, _package_of(fn)) if level else module
            except (ImportError, ValueError):
                return f"<unresolved import {module}>"
            parts = absolute.split(".")
            attrs = parts[1:] + attrs
            obj = sys.modules.get(parts[0], _MISSING)
            self.dict_checks.append((sys.modules, parts[0], obj))
            if obj is _MISSING:
                return self.unloaded(parts[0], attrs)
            qual, owner = parts[0], None
        return self.target(obj, qual, attrs, owner)

    def target(self, obj: Any, qual: str, attrs: list[str], owner: tuple[Any, Any, str] | None) -> str:
        """Follow ``attrs`` through project modules, then name what was reached.

        ``owner`` is (file, package, name) of the module-level binding reached, whose
        assignment source is hashed with a value (``SCALER = Scaler(with_mean=False)``).
        """
        for attr in attrs:
            if not (isinstance(obj, types.ModuleType) and self.module_is_project(obj)):
                break
            namespace = obj.__dict__
            nxt = namespace.get(attr, _MISSING)
            self.dict_checks.append((namespace, attr, nxt))
            qual = f"{obj.__name__}.{attr}"
            if nxt is _MISSING:
                nxt = sys.modules.get(qual, _MISSING)
                self.dict_checks.append((sys.modules, qual, nxt))
                if nxt is _MISSING:
                    return self.unloaded(obj.__name__, [attr])
            owner = (getattr(obj, "__file__", None), obj.__package__, attr)
            obj = nxt
        if _is_definition(obj):
            return self.ref(obj)
        if qual not in self.details:  # a module-level value: its own entry, named by where it lives
            source, runtime_filled = _assignment_source(*owner) if owner is not None else ("", False)
            self.used.add(qual)
            self.details[qual] = _sha(f"value\n{qual}\n{self.value(obj, runtime_filled)}\nsource {source}")
        return qual

    def unloaded(self, module: str, attrs: list[str]) -> str:
        """A module that is not imported (yet): hash its file when it is project code."""
        parts = [*module.split("."), *attrs]
        search: list[str] | None = None
        origin: str | None = None
        found = ""
        for i in range(len(parts)):
            name = ".".join(parts[: i + 1])
            loaded = sys.modules.get(name)
            if loaded is not None:
                origin, found = getattr(loaded, "__file__", None), name
                search = getattr(loaded, "__path__", None)
            else:
                try:
                    spec = importlib.machinery.PathFinder.find_spec(name, search)
                except (ImportError, ValueError):
                    spec = None
                if spec is None:
                    break
                self.dict_checks.append((sys.modules, name, _MISSING))
                origin, found, search = spec.origin, name, spec.submodule_search_locations
            if search is None:
                break
        full = ".".join(parts)
        if not found or not isinstance(origin, str) or not os.path.isfile(origin):
            return f"<unresolved {full}>"
        if not self.scope.is_project_file(origin):
            self.package(found)
            return full
        key = f"module:{found}"
        if key not in self.details:
            self.used.add(key)
            self.details[key] = _sha(f"module\n{key}\n{_file_digest(origin)}")
        return key

    # -- nodes

    def _function_node(self, fn: types.FunctionType, key: str) -> None:
        code = fn.__code__
        self.attr_checks.append((fn, "__code__", code))
        self.attr_checks.append((fn, "__defaults__", fn.__defaults__))
        self.attr_checks.append((fn, "__kwdefaults__", fn.__kwdefaults__))
        info = _code_info(code)
        # The step's own decorators (``@step(retries=3)``) configure how it runs, not what it
        # computes, and their wrappers are skipped too; a helper's decorators count.
        source = info.undecorated if fn is self.root else info.source
        lines = ["function", key, f"source {source}", f"bytecode {info.bytecode}"]
        lines.append("defaults " + self.value(fn.__defaults__))
        lines.append("kwdefaults " + self.value(fn.__kwdefaults__))
        for name, cell in zip(code.co_freevars, fn.__closure__ or (), strict=False):
            contents = _cell_value(cell)
            self.cell_checks.append((cell, contents))
            lines.append(f"closure {name} " + ("<empty>" if contents is _EMPTY_CELL else self.value(contents)))
        for chain in info.chains:
            resolved = self.resolve(fn, key, chain)
            if resolved is not None:
                lines.append(f"ref {'.'.join(chain)} -> {resolved}")
        wrapped = fn.__dict__.get("__wrapped__", _MISSING)
        self.dict_checks.append((fn.__dict__, "__wrapped__", wrapped))
        if wrapped is not _MISSING:
            lines.append("wraps " + self.value(wrapped))
        self.details[key] = _sha("\n".join(lines))

    def _class_node(self, cls: type, key: str) -> None:
        index = _class_index(cls)
        ranges = index.classes.get(cls.__qualname__) if index is not None else None
        source = index.digest(ranges) if index is not None and ranges else ""
        runtime_filled = index.runtime_filled if index is not None else frozenset()
        self.attr_checks.append((cls, "__bases__", cls.__bases__))
        lines = ["class", key, f"source {source}", "metaclass " + self.ref(type(cls))]
        lines.extend("base " + self.ref(base) for base in cls.__bases__)
        namespace = cls.__dict__
        self.len_checks.append((namespace, len(namespace)))
        for name in sorted(namespace):
            if name in _CLASS_SKIP:
                continue
            member = namespace[name]
            self.dict_checks.append((namespace, name, member))
            filled = f"{cls.__qualname__}.{name}" in runtime_filled
            lines.append(f"member {name} {self.value(member, filled)}")
        self.details[key] = _sha("\n".join(lines))

    def _module_node(self, module: types.ModuleType, key: str) -> None:
        self.attr_checks.append((module, "__spec__", getattr(module, "__spec__", None)))
        filename = getattr(module, "__file__", None)
        digest = _file_digest(filename) if isinstance(filename, str) else ""
        self.details[key] = _sha(f"module\n{key}\n{digest}")


def _is_definition(obj: object) -> bool:
    if isinstance(obj, _DEFINITION_TYPES):
        return True
    try:
        return callable(obj) and getattr(obj, "__wrapped__", _MISSING) is not _MISSING
    except Exception:  # exotic __getattr__
        return False


def _package_of(fn: types.FunctionType) -> str | None:
    globals_ = fn.__globals__
    package = globals_.get("__package__")
    if isinstance(package, str):
        return package
    name = globals_.get("__name__", fn.__module__)
    if not isinstance(name, str):
        return None
    return name if "__path__" in globals_ else name.rpartition(".")[0]
