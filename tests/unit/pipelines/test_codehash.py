"""Code hash: which edits invalidate a step's cache, across modules, styles and processes.

Helper modules are written to ``tmp_path`` (the project root) and imported from
there; ``Project.fresh`` drops them from ``sys.modules`` and imports again, which
is what a new process sees after an edit.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from loopml.pipelines._codehash import code_hash, code_hash_details

PREFIX = "chx_"


class Project:
    """Modules under a temporary project root, importable and rewritable."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.clock = time.time_ns()

    def write(self, name: str, source: str) -> None:
        path = self.root.joinpath(*name.split(".")).with_suffix(".py")
        path.parent.mkdir(parents=True, exist_ok=True)
        for parent in path.relative_to(self.root).parents:
            init = self.root / parent / "__init__.py"
            if parent != Path(".") and not init.exists():
                init.write_text("")
        path.write_text(textwrap.dedent(source))
        # Every rewrite gets a distinct mtime: file caches key on (mtime, size), and two
        # same-size writes can land within one filesystem timestamp tick.
        self.clock += 10_000_000
        os.utime(path, ns=(self.clock, self.clock))
        importlib.invalidate_caches()

    def drop(self) -> None:
        for name in [n for n in sys.modules if n.startswith(PREFIX)]:
            del sys.modules[name]

    def fresh(self, name: str) -> ModuleType:
        """Import ``name`` as a new process would: every project module re-read from disk."""
        self.drop()
        return importlib.import_module(name)

    def hash(self, fn: Any) -> str:
        return code_hash(fn, project_root=self.root)

    def details(self, fn: Any) -> dict[str, str]:
        return code_hash_details(fn, project_root=self.root)

    def step_hash(self, module: str = "chx_steps", attr: str = "step", preload: tuple[str, ...] = ()) -> str:
        step = getattr(self.fresh(module), attr)
        for name in preload:  # imported elsewhere in the process before the step is hashed
            importlib.import_module(name)
        return self.hash(step)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    root = tmp_path / "proj"
    root.mkdir()
    # No .pyc: a rewrite within the same second with the same size would load stale bytecode.
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    monkeypatch.syspath_prepend(str(root))
    proj = Project(root)
    yield proj
    proj.drop()


HELPERS = """
    import math

    LIMIT = 10

    def clean(x):
        return min(inner(x), LIMIT)

    def inner(x):
        return math.floor(x) + 1

    def unrelated():
        return "untouched"
"""

STEP_MODULE = """
    import chx_helpers

    def step(x):
        return chx_helpers.clean(x) * 2
"""


def edit(source: str, old: str, new: str) -> str:
    assert old in source, old
    return source.replace(old, new)


# -- what counts as a change ---------------------------------------------------------


def test_helper_in_another_module_changes_the_hash(project: Project) -> None:
    project.write("chx_helpers", HELPERS)
    project.write("chx_steps", STEP_MODULE)
    before = project.step_hash()
    assert project.step_hash() == before  # stable on re-import
    project.write("chx_helpers", edit(HELPERS, "min(inner(x), LIMIT)", "max(inner(x), LIMIT)"))
    assert project.step_hash() != before


def test_unrelated_function_in_the_helper_module_does_not(project: Project) -> None:
    project.write("chx_helpers", HELPERS)
    project.write("chx_steps", STEP_MODULE)
    before = project.step_hash()
    project.write("chx_helpers", edit(HELPERS, '"untouched"', '"edited"'))
    assert project.step_hash() == before
    project.write("chx_helpers", textwrap.dedent(HELPERS) + "\ndef added():\n    return 1\n")
    assert project.step_hash() == before


def test_constant_used_by_the_helper_changes_the_hash(project: Project) -> None:
    project.write("chx_helpers", HELPERS)
    project.write("chx_steps", STEP_MODULE)
    before = project.step_hash()
    project.write("chx_helpers", edit(HELPERS, "LIMIT = 10", "LIMIT = 11"))
    after = project.details(project.fresh("chx_steps").step)
    assert project.hash(sys.modules["chx_steps"].step) != before
    assert "chx_helpers.LIMIT" in after


def test_helper_of_helper_change_is_detected(project: Project) -> None:
    project.write("chx_helpers", HELPERS)
    project.write("chx_steps", STEP_MODULE)
    before = project.step_hash()
    project.write("chx_helpers", edit(HELPERS, "math.floor(x) + 1", "math.floor(x) + 2"))
    assert project.step_hash() != before


def test_three_modules_deep(project: Project) -> None:
    project.write("chx_low", "def f(x):\n    return x + 1\n")
    project.write("chx_mid", "from chx_low import f\n\ndef g(x):\n    return f(x) * 2\n")
    project.write("chx_steps", "import chx_mid\n\ndef step(x):\n    return chx_mid.g(x)\n")
    before = project.step_hash()
    project.write("chx_low", "def f(x):\n    return x + 2\n")
    assert project.step_hash() != before
    assert set(project.details(sys.modules["chx_steps"].step)) == {"chx_steps.step", "chx_mid.g", "chx_low.f"}


def test_comments_and_formatting_do_not_count_but_docstrings_do(project: Project) -> None:
    project.write("chx_helpers", HELPERS)
    project.write("chx_steps", STEP_MODULE)
    before = project.step_hash()
    reformatted = edit(
        HELPERS,
        "def inner(x):\n        return math.floor(x) + 1",
        "def inner(x):\n        # why: floors first\n\n        return math.floor(\n            x\n        )   +   1  # one",
    )
    project.write("chx_helpers", "# header comment\n\n\n" + textwrap.dedent(reformatted))
    assert project.step_hash() == before
    project.write("chx_helpers", edit(HELPERS, "def inner(x):\n", 'def inner(x):\n        """Floor plus one."""\n'))
    assert project.step_hash() != before


STYLES = {
    "module attribute": ("import chx_pkg.helpers\n\ndef step(x):\n    return chx_pkg.helpers.clean(x)\n"),
    "module alias": ("import chx_pkg.helpers as h\n\ndef step(x):\n    return h.clean(x)\n"),
    "from import": ("from chx_pkg.helpers import clean\n\ndef step(x):\n    return clean(x)\n"),
    "from package import module": ("from chx_pkg import helpers\n\ndef step(x):\n    return helpers.clean(x)\n"),
    "local from import": ("def step(x):\n    from chx_pkg.helpers import clean\n    return clean(x)\n"),
    "local import": ("def step(x):\n    import chx_pkg.helpers\n    return chx_pkg.helpers.clean(x)\n"),
    "local relative import": ("def step(x):\n    from .helpers import clean\n    return clean(x)\n"),
    "default argument": ("from chx_pkg.helpers import clean\n\ndef step(x, fn=clean):\n    return fn(x)\n"),
}


@pytest.mark.parametrize("style", sorted(STYLES))
def test_reference_styles(project: Project, style: str) -> None:
    module = "chx_pkg.steps" if style == "local relative import" else "chx_steps"
    project.write("chx_pkg.helpers", HELPERS)
    project.write(module, STYLES[style])
    # Local imports resolve through sys.modules once the module is loaded; see the next test for before.
    preload = ("chx_pkg.helpers",)
    before = project.step_hash(module, preload=preload)
    project.write("chx_pkg.helpers", edit(HELPERS, '"untouched"', '"edited"'))
    assert project.step_hash(module, preload=preload) == before, "an unrelated edit must not count"
    project.write("chx_pkg.helpers", edit(HELPERS, "math.floor(x) + 1", "math.floor(x) + 3"))
    assert project.step_hash(module, preload=preload) != before
    assert "chx_pkg.helpers.inner" in project.details(sys.modules[module].step)


def test_local_import_of_a_module_not_yet_imported_hashes_its_file(project: Project) -> None:
    lazy = "def f(x):\n    return x + 1\n"
    project.write("chx_lazy", lazy)
    project.write("chx_steps", "def step(x):\n    from chx_lazy import f\n    return f(x)\n")
    before = project.step_hash()
    assert "chx_lazy" not in sys.modules, "hashing must not import"
    assert "module:chx_lazy" in project.details(sys.modules["chx_steps"].step)
    project.write("chx_lazy", lazy + "# a comment\n")
    assert project.step_hash() == before
    project.write("chx_lazy", lazy + "def g():\n    return 0\n")
    assert project.step_hash() != before, "the whole file counts while it is not imported"
    project.write("chx_lazy", "def f(x):\n    return x + 2\n")
    assert project.step_hash() != before
    # Once imported, the same step resolves to the function itself.
    step = sys.modules["chx_steps"].step
    importlib.import_module("chx_lazy")
    assert set(project.details(step)) == {"chx_steps.step", "chx_lazy.f"}


def test_class_method_used_by_the_step(project: Project) -> None:
    helpers = """
        class Scaler:
            factor = 2

            def __init__(self, offset):
                self.offset = offset

            def apply(self, x):
                return x * self.factor + self.offset
    """
    project.write("chx_helpers", helpers)
    project.write("chx_steps", "from chx_helpers import Scaler\n\ndef step(x):\n    return Scaler(1).apply(x)\n")
    before = project.step_hash()
    assert {"chx_helpers.Scaler", "chx_helpers.Scaler.apply"} <= set(project.details(sys.modules["chx_steps"].step))
    project.write("chx_helpers", edit(helpers, "x * self.factor", "x / self.factor"))
    assert project.step_hash() != before
    project.write("chx_helpers", edit(helpers, "factor = 2", "factor = 3"))
    assert project.step_hash() != before


def test_inherited_project_methods_and_dataclasses(project: Project) -> None:
    helpers = """
        from dataclasses import dataclass

        class Base:
            def score(self):
                return 1

        @dataclass
        class Config(Base):
            lr: float = 0.1
    """
    project.write("chx_helpers", helpers)
    project.write("chx_steps", "from chx_helpers import Config\n\ndef step():\n    return Config().score()\n")
    before = project.step_hash()
    assert project.step_hash() == before
    project.write("chx_helpers", edit(helpers, "return 1", "return 2"))
    assert project.step_hash() != before
    project.write("chx_helpers", edit(helpers, "lr: float = 0.1", "lr: float = 0.2"))
    assert project.step_hash() != before


OBJECTS = """
    import logging

    logger = logging.getLogger("chx.objects")

    class Scaler:
        def __init__(self, with_mean):
            self.with_mean = with_mean

        def __call__(self, x):
            return x - 1 if self.with_mean else x

    SCALER = Scaler(with_mean=False)

    class Model:
        scaler = Scaler(with_mean=False)

        def predict(self, x):
            return self.scaler(x)
"""


@pytest.mark.parametrize(
    ("step_source", "old", "new"),
    [
        (
            "from chx_objects import SCALER\n\ndef step(x):\n    return SCALER(x)\n",
            *["SCALER = Scaler(with_mean=False)"] * 1,
            "SCALER = Scaler(with_mean=True)",
        ),
        (
            "import chx_objects\n\ndef step(x):\n    return chx_objects.SCALER(x)\n",
            "SCALER = Scaler(with_mean=False)",
            "SCALER = Scaler(with_mean=True)",
        ),
        (
            "from chx_objects import Model\n\ndef step(x):\n    return Model().predict(x)\n",
            "scaler = Scaler(with_mean=False)",
            "scaler = Scaler(with_mean=True)",
        ),
    ],
    ids=["from-imported object", "module attribute object", "class attribute object"],
)
def test_module_level_objects_count_by_their_defining_source(
    project: Project, step_source: str, old: str, new: str
) -> None:
    project.write("chx_objects", OBJECTS)
    project.write("chx_steps", step_source)
    before = project.step_hash()
    project.write("chx_objects", edit(OBJECTS, old, new))
    assert project.step_hash() != before


def test_runtime_state_of_objects_does_not_count(project: Project) -> None:
    project.write("chx_objects", OBJECTS)
    project.write(
        "chx_steps",
        "from chx_objects import logger, SCALER\n\ndef step(x):\n    logger.info(x)\n    return SCALER(x)\n",
    )
    before = project.step_hash()
    logger = sys.modules["chx_objects"].logger
    logger.setLevel("DEBUG")  # the same logger object in the next import
    try:
        assert project.step_hash() == before
    finally:
        logger.setLevel("NOTSET")


def test_dataclass_config_values_count(project: Project) -> None:
    config = """
        from dataclasses import dataclass

        @dataclass(frozen=True)
        class Config:
            lr: float
            layers: tuple = (8, 8)

        CFG = Config(lr=0.1)
    """
    project.write("chx_config", config)
    project.write("chx_steps", "import chx_config\n\ndef step():\n    return chx_config.CFG.lr\n")
    before = project.step_hash()
    project.write("chx_config", edit(config, "(8, 8)", "(8, 16)"))  # a field default: class source and value
    assert project.step_hash() != before


def test_runtime_caches_do_not_count_but_registered_functions_do(project: Project) -> None:
    helpers = """
        _cache = {}
        HANDLERS = {}
        COLUMNS = ["a", "b"]

        def register(name):
            def add(fn):
                HANDLERS[name] = fn
                return fn
            return add

        @register("double")
        def double(x):
            return x * 2

        def lookup(x):
            if x not in _cache:
                _cache[x] = HANDLERS["double"](x)
            return _cache[x], COLUMNS
    """
    project.write("chx_helpers", helpers)
    project.write("chx_steps", "from chx_helpers import lookup\n\ndef step(x):\n    return lookup(x)\n")
    before = project.step_hash()
    step = sys.modules["chx_steps"].step
    step(1), step(2)  # fills the cache
    fresh_step = project.fresh("chx_steps").step
    fresh_step(3)
    assert project.hash(fresh_step) == before, "a cache filled at run time must not change the hash"
    assert "chx_helpers.double" in project.details(fresh_step)
    project.write("chx_helpers", edit(helpers, "x * 2", "x * 4"))  # a registered handler
    assert project.step_hash() != before
    project.write("chx_helpers", edit(helpers, '["a", "b"]', '["a", "c"]'))  # a literal list counts by value
    assert project.step_hash() != before


def test_recursion_and_cycles_terminate(project: Project) -> None:
    project.write("chx_a", "import chx_b\n\ndef ping(n):\n    return 0 if n <= 0 else chx_b.pong(n - 1)\n")
    project.write("chx_b", "import chx_a\n\ndef pong(n):\n    return 1 if n <= 0 else chx_a.ping(n - 1)\n")
    project.write(
        "chx_steps",
        "import chx_a\n\ndef fact(n):\n    return 1 if n <= 1 else n * fact(n - 1)\n\n"
        "def step(n):\n    return fact(n) + chx_a.ping(n) + step.__name__.count('s')\n",
    )
    before = project.step_hash()
    assert set(project.details(sys.modules["chx_steps"].step)) == {
        "chx_steps.step",
        "chx_steps.fact",
        "chx_a.ping",
        "chx_b.pong",
    }
    project.write("chx_b", "import chx_a\n\ndef pong(n):\n    return 2 if n <= 0 else chx_a.ping(n - 1)\n")
    assert project.step_hash() != before


def test_stdlib_and_numpy_are_not_walked_and_keep_the_hash_stable(project: Project) -> None:
    project.write(
        "chx_steps",
        """
        import json
        import math
        import os.path
        from collections import Counter

        import numpy as np

        def step(xs):
            counts = Counter(xs)
            return json.dumps([math.sqrt(float(np.mean(xs))), os.path.join("a", "b"), len(counts)])
        """,
    )
    hashes = {project.step_hash() for _ in range(3)}
    assert len(hashes) == 1
    details = project.details(sys.modules["chx_steps"].step)
    assert set(details) == {"chx_steps.step", "package:numpy"}


def test_rebinding_an_imported_library_function_counts(project: Project) -> None:
    project.write("chx_steps", "from statistics import mean as agg\n\ndef step(xs):\n    return agg(xs)\n")
    before = project.step_hash()
    project.write("chx_steps", "from statistics import median as agg\n\ndef step(xs):\n    return agg(xs)\n")
    assert project.step_hash() != before


def test_lambdas_nested_functions_and_closures(project: Project) -> None:
    helpers = "scale = lambda x: x * 2\n\ndef make(k):\n    def add(x):\n        return x + k\n    return add\n"
    project.write("chx_helpers", helpers)
    step = """
        import chx_helpers

        add_one = chx_helpers.make(1)
        add_two = chx_helpers.make(2)

        def step(x):
            def twice(y):
                return chx_helpers.scale(y) + 0
            return sorted([x], key=lambda v: -v)[0] + twice(x) + add_one(x)

        def other(x):
            return add_two(x)
    """
    project.write("chx_steps", step)
    before = project.step_hash()
    mod = sys.modules["chx_steps"]
    # Same code, different captured values: different hashes.
    assert project.hash(mod.add_one) != project.hash(mod.add_two)
    project.write("chx_helpers", edit(helpers, "x * 2", "x * 3"))  # module-level lambda
    assert project.step_hash() != before
    project.write("chx_helpers", helpers)
    project.write("chx_steps", edit(step, "+ 0", "+ 1"))  # nested function body
    assert project.step_hash() != before
    project.write("chx_steps", edit(step, "key=lambda v: -v", "key=lambda v: v"))  # inline lambda
    assert project.step_hash() != before
    project.write("chx_steps", edit(step, "make(1)", "make(5)"))  # closure value of a global
    assert project.step_hash() != before
    project.write("chx_steps", step)
    assert project.step_hash() == before


def test_details_name_the_changed_helper(project: Project) -> None:
    project.write("chx_helpers", HELPERS)
    project.write("chx_steps", STEP_MODULE)
    old = project.details(project.fresh("chx_steps").step)
    project.write("chx_helpers", edit(HELPERS, "math.floor(x) + 1", "math.ceil(x) + 1"))
    new = project.details(project.fresh("chx_steps").step)
    assert set(old) == set(new)
    assert {k for k in old if old[k] != new[k]} == {"chx_helpers.inner"}


def test_code_outside_the_project_root_is_not_walked(project: Project, tmp_path: Path) -> None:
    outside = tmp_path / "vendor"
    outside.mkdir()
    (outside / "chx_vendored.py").write_text("def f(x):\n    return x\n")
    sys.path.insert(0, str(outside))
    try:
        project.write("chx_steps", "from chx_vendored import f\n\ndef step(x):\n    return f(x)\n")
        assert set(project.details(project.fresh("chx_steps").step)) == {"chx_steps.step"}
    finally:
        sys.path.remove(str(outside))


# -- decorators, sources without files, memo ------------------------------------------


def test_decorated_step_is_unwrapped(project: Project) -> None:
    project.write(
        "chx_steps",
        """
        import functools

        def step_decorator(fn):
            @functools.wraps(fn)
            def wrapper(*args, **kwargs):
                return fn(*args, **kwargs)
            return wrapper

        def step(x):
            return x + 1

        wrapped = step_decorator(step)
        """,
    )
    mod = project.fresh("chx_steps")
    assert project.hash(mod.wrapped) == project.hash(mod.step)


def test_helpers_behind_library_decorators_are_walked(project: Project) -> None:
    helpers = """
        import contextlib
        import functools

        @functools.lru_cache(maxsize=None)
        def cached(x):
            return x + 1

        @contextlib.contextmanager
        def managed(x):
            yield x * 2
    """
    project.write("chx_helpers", helpers)
    project.write(
        "chx_steps",
        "from chx_helpers import cached, managed\n\ndef step(x):\n    with managed(x) as y:\n        return cached(y)\n",
    )
    before = project.step_hash()
    assert {"chx_helpers.cached", "chx_helpers.managed"} <= set(project.details(sys.modules["chx_steps"].step))
    project.write("chx_helpers", edit(helpers, "x + 1", "x + 2"))
    assert project.step_hash() != before
    project.write("chx_helpers", edit(helpers, "x * 2", "x * 3"))
    assert project.step_hash() != before
    project.write("chx_helpers", edit(helpers, "maxsize=None", "maxsize=8"))  # decorator arguments count
    assert project.step_hash() != before


def test_loopml_step_is_hashed_as_its_function_without_its_options(project: Project) -> None:
    steps = """
        from loopml.pipelines import step

        import chx_helpers

        @step(retries=1)
        def train(n: int) -> int:
            return chx_helpers.clean(n)
    """
    project.write("chx_helpers", HELPERS)
    project.write("chx_steps", steps)
    train = project.fresh("chx_steps").train
    before = project.hash(train)
    assert before == project.hash(train.fn)
    assert set(project.details(train)) >= {"chx_steps.train", "chx_helpers.clean", "chx_helpers.inner"}
    project.write("chx_steps", edit(steps, "retries=1", "retries=2"))
    assert project.step_hash(attr="train") == before
    project.write("chx_steps", steps)
    project.write("chx_helpers", edit(HELPERS, "math.floor(x) + 1", "math.floor(x) + 2"))
    assert project.step_hash(attr="train") != before


def test_functions_without_source_hash_by_bytecode(project: Project) -> None:
    def compile_step(body: str) -> Any:
        namespace: dict[str, Any] = {"__name__": "chx_generated"}
        exec(compile(f"def step(x):\n    return {body}\n", "<generated>", "exec"), namespace)
        return namespace["step"]

    assert project.hash(compile_step("x + 1")) == project.hash(compile_step("x + 1"))
    assert project.hash(compile_step("x + 1")) != project.hash(compile_step("x + 2"))
    assert project.hash(lambda x: x + 1) == project.hash(lambda x: x + 1)


def test_memo_notices_a_reloaded_or_patched_helper(project: Project) -> None:
    project.write("chx_helpers", HELPERS)
    project.write("chx_steps", STEP_MODULE)
    step = project.fresh("chx_steps").step
    before = project.hash(step)
    assert project.hash(step) == before  # memoised
    helpers = sys.modules["chx_helpers"]
    original = helpers.inner
    helpers.inner = lambda x: x
    assert project.hash(step) != before
    helpers.inner = original
    assert project.hash(step) == before
    project.write("chx_helpers", edit(HELPERS, "LIMIT = 10", "LIMIT = 12"))
    importlib.reload(helpers)  # the step module itself is not reloaded
    assert project.hash(step) != before


def test_details_are_a_copy(project: Project) -> None:
    project.write("chx_helpers", HELPERS)
    project.write("chx_steps", STEP_MODULE)
    step = project.fresh("chx_steps").step
    project.details(step).clear()
    assert "chx_helpers.clean" in project.details(step)


# -- across processes ---------------------------------------------------------------


@pytest.mark.integration
def test_identical_code_gives_the_same_hash_in_another_process(project: Project) -> None:
    project.write(
        "chx_helpers",
        """
        KINDS = frozenset({"alpha", "beta", "gamma", "delta"})
        WEIGHTS = {"alpha": 1.5, "beta": (1, 2)}

        def kind_of(x):
            return x in {"alpha", "beta", "gamma"} and x in KINDS

        class Model:
            names = {"one", "two", "three"}

            def predict(self, x):
                return WEIGHTS.get(x, 0)
        """,
    )
    project.write(
        "chx_steps",
        "import numpy as np\nimport chx_helpers\n\n"
        "def step(x):\n    return chx_helpers.kind_of(x), chx_helpers.Model().predict(x), np.zeros(1)\n",
    )
    step = project.fresh("chx_steps").step
    for _ in range(2000):  # let the interpreter specialise the bytecode first
        step("alpha")
    here = project.hash(step)
    script = (
        "import sys\n"
        "sys.dont_write_bytecode = True\n"
        f"sys.path.insert(0, {str(project.root)!r})\n"
        "from loopml.pipelines._codehash import code_hash\n"
        "import chx_steps\n"
        f"print(code_hash(chx_steps.step, project_root={str(project.root)!r}))\n"
    )
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", script], cwd=project.root, env=env, capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == here
