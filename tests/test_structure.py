"""The shape of the house: imports point one way, from the programs down to the arrays.

Every import inside tinybt, at the top of a module or inside a function, is an edge of a graph
of modules. Drawn that way, the only circle allowed is the engine's deliberate one: `tensor`
imports `ops` once Tensor exists, and every op builds Tensors.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import tinybt

pytestmark = pytest.mark.host

PACKAGE = Path(tinybt.__file__).resolve().parent
PROGRAMS = {
    "tinybt.train",
    "tinybt.evaluate",
    "tinybt.export",
    "tinybt.exercises",
    "tinybt.experiments",
    "tinybt.book",
}
ALLOWED_CIRCLE = {"tinybt.tensor", "tinybt.ops"}


def module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path, modules):
    """The tinybt modules that the file at `path` imports, anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from tinybt import nn` imports tinybt.nn; `from tinybt.nn import X` imports it too
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        found.update(name for name in names if name in modules)
    return found


def import_graph():
    paths = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    return {name: imports_of(path, paths) - {name} for name, path in paths.items()}


def circles(graph):
    """Every module that lies on a circle of imports, with the circle's members."""
    found = {}
    for start in graph:
        stack, seen = [start], set()
        while stack:
            module = stack.pop()
            for target in graph[module]:
                if target == start:
                    found.setdefault(start, set()).add(module)
                elif target not in seen:
                    seen.add(target)
                    stack.append(target)
    return found


def test_no_module_imports_a_program():
    graph = import_graph()
    offenders = {name: edges & PROGRAMS for name, edges in graph.items() if edges & PROGRAMS}
    assert not offenders, f"modules import a program (move what they share below both): {offenders}"


def test_the_only_circle_of_imports_is_the_engines():
    on_circles = set(circles(import_graph()))
    engine = {name for name in on_circles if name.startswith("tinybt.ops.")} | ALLOWED_CIRCLE
    assert on_circles <= engine, f"modules on a circle of imports: {sorted(on_circles)}"


def test_the_graph_sees_function_level_imports(tmp_path):
    """The test above must not miss an import hidden in a function body."""
    path = tmp_path / "module.py"
    path.write_text("def f():\n    from tinybt.train import main\n    return main\n")
    assert imports_of(path, {"tinybt.train"}) == {"tinybt.train"}


def test_the_run_imports_no_method():
    """A method is one place: the run and its step reach it only through the configuration
    and the builders, so the training loop is the same for every method, a new one included."""
    graph = import_graph()
    methods = {name for name in graph if name.startswith("tinybt.methods")}
    assert methods, "no method modules found"
    for name in ("tinybt.run", "tinybt.step"):
        assert not graph[name] & methods, (name, sorted(graph[name] & methods))


def test_the_run_stands_on_its_step_the_builders_and_the_configuration():
    """config <- build <- step <- run: each imports none of the ones after it."""
    graph = import_graph()
    layers = ["tinybt.config", "tinybt.build", "tinybt.step", "tinybt.run"]
    for index, name in enumerate(layers):
        assert not graph[name] & set(layers[index + 1 :]), (name, sorted(graph[name]))


def test_no_method_imports_another():
    """What methods share is in tinybt/methods/common.py (or method.py, predictor.py,
    target.py): a method's file imports those, never another method's."""
    graph = import_graph()
    shared = {
        "tinybt.methods",
        *(f"tinybt.methods.{name}" for name in ("common", "method", "predictor", "target")),
    }
    methods = {name for name in graph if name.startswith("tinybt.methods.")} - shared
    offenders = {name: sorted(graph[name] & methods) for name in methods if graph[name] & methods}
    assert methods and not offenders, f"methods import each other: {offenders}"


def test_the_library_never_imports_the_study():
    """The study (tinybt/study/) stands on the library; only its program reaches into it."""
    graph = import_graph()
    study = {name for name in graph if name.startswith("tinybt.study")}
    assert study, "no study modules found"
    outside = set(graph) - study - {"tinybt.experiments"}
    offenders = {name: sorted(graph[name] & study) for name in outside if graph[name] & study}
    assert not offenders, f"library modules import the study: {offenders}"


def test_no_module_outside_methods_compares_method_names():
    """Which method a run uses is looked up in the registry, never spelt out: no string
    literal naming a method outside tinybt/methods/ (the study's grids and records aside)."""
    from tinybt.methods import METHODS

    names = set(METHODS)
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if {"methods", "study"} & set(path.relative_to(PACKAGE).parts):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                for part in (node.left, *node.comparators):
                    if isinstance(part, ast.Constant) and part.value in names:
                        offenders.append(f"{path.name}:{node.lineno}")
    assert not offenders, f"method names compared outside tinybt/methods/: {offenders}"


def test_the_programs_start_without_matplotlib():
    """matplotlib's import takes about half a second, as long as the rest of a program's
    start: it is loaded at the first figure, so a mistake in the options is answered at once."""
    code = "import sys, " + ", ".join(sorted(PROGRAMS)) + "; print('matplotlib' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr


def test_config_holds_every_methods_options_and_no_other():
    """Config's fields are written out in tinybt/config.py; each method option is one of them."""
    from dataclasses import fields

    from tinybt.config import CommonConfig, Config, method_options

    common = {f.name for f in fields(CommonConfig)}
    assert {f.name for f in fields(Config)} - common == set(method_options())
    for f in fields(Config):
        if f.name in method_options():
            assert getattr(Config(), f.name) == method_options()[f.name].default, f.name
