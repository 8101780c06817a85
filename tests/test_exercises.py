"""The learners' exercises: the fences, the learner's copy, and `check` on it.

Each copy's exercise tests run once, in one pytest subprocess (module-scoped fixtures), and
the tests below read the per-task results of those runs.
"""

import os
import subprocess
import sys

import pytest

from tinybt import exercises
from tinybt.errors import TinyBTError
from tinybt.exercises import (
    PACKAGE,
    TASKS,
    find_fences,
    read_fences,
    read_report,
    run_tests,
    solve,
    start,
)

LIBRARY = PACKAGE.parent


@pytest.fixture(scope="module")
def untouched(tmp_path_factory):
    """A fresh learner's copy: every fence still raises NotImplementedError."""
    directory = tmp_path_factory.mktemp("learner") / "untouched"
    start(directory)
    return directory


@pytest.fixture(scope="module")
def solved(tmp_path_factory):
    """A learner's copy with every solution put back from the library."""
    directory = tmp_path_factory.mktemp("learner") / "solved"
    start(directory)
    solve(directory)
    return directory


@pytest.fixture(scope="module")
def library_results():
    """The exercise tests run once on the library itself."""
    return run_tests(LIBRARY)


@pytest.fixture(scope="module")
def stubs():
    """{task: the messages its stubs raise, as `check` shows them}."""
    messages = {}
    for fence in find_fences(PACKAGE):
        message = f"not implemented yet: {fence.task}: {fence.hint}"
        messages.setdefault(fence.task, set()).add(message)
    return messages


def by_task(results):
    """{task: [TestResult]} for each task of TASKS that has tests (the sync test finds the rest)."""
    grouped = {task: [r for r in results if r.task == task] for task in TASKS}
    return {task: results for task, results in grouped.items() if results}


def test_untouched_copy_fails_every_task_with_the_stub_messages(untouched, stubs):
    """Also proves the tests import the copy: the library itself passes all of them."""
    order = list(TASKS)
    for task, results in by_task(run_tests(untouched)).items():
        assert all(r.outcome == "failed" for r in results), f"{task}: a test passes unwritten"
        # A test may first reach the stub of a task it builds on: one earlier in TASKS.
        earlier = set().union(*(stubs.get(t, set()) for t in order[: order.index(task) + 1]))
        for result in results:
            assert result.message in earlier, f"{result.name}: {result.message}"
        assert any(r.message in stubs[task] for r in results), f"no test of {task} hits its stub"


def test_copy_with_solutions_restored_passes_every_task(solved):
    for task, results in by_task(run_tests(solved)).items():
        failed = [f"{r.name}: {r.message}" for r in results if r.outcome == "failed"]
        assert not failed, f"{task}: " + "; ".join(failed)


def test_solve_restores_the_library_source_exactly(solved):
    for path in PACKAGE.rglob("*.py"):
        copy = solved / path.relative_to(LIBRARY)
        assert copy.read_text() == path.read_text(), f"{copy} differs from {path}"


def test_library_passes_every_task(library_results):
    failed = [f"{r.name}: {r.message}" for r in library_results if r.outcome == "failed"]
    assert not failed, "; ".join(failed)


def test_fences_tasks_and_test_markers_agree(library_results):
    """Every task has a fence and a test; every fence and every marker names a task."""
    fenced = {fence.task for fence in find_fences(PACKAGE)}
    marked = {result.task for result in library_results}
    tasks = set(TASKS)
    problems = [
        f"fences use ids not in TASKS: {sorted(fenced - tasks)}",
        f"tests are marked with ids not in TASKS: {sorted(marked - tasks)}",
        f"tasks without a fence: {sorted(tasks - fenced)}",
        f"tasks without a test marked exercise(<task>): {sorted(tasks - marked)}",
    ]
    assert fenced == tasks == marked, "; ".join(p for p in problems if not p.endswith("[]"))


def test_report_skips_modules_skipped_whole_but_keeps_every_test(tmp_path):
    """Without torch, pytest reports test_torch_reference.py as one skipped case with no
    exercise property; it must not count as a test marked with an unknown task."""
    report = tmp_path / "report.xml"
    report.write_text(
        "<testsuites><testsuite>"
        '<testcase file="tests/test_torch_reference.py" name="tests.test_torch_reference">'
        '<skipped message="could not import torch"/></testcase>'
        '<testcase file="tests/test_ops.py" name="test_add_backward"><properties>'
        '<property name="exercise" value="add"/></properties></testcase>'
        '<testcase file="tests/test_ops.py" name="test_mul_backward"><properties>'
        '<property name="exercise" value="mul"/></properties>'
        '<failure message="AssertionError: mul: gradient wrong"/></testcase>'
        "</testsuite></testsuites>"
    )
    results = read_report(report)
    assert [(r.task, r.outcome, r.message) for r in results] == [
        ("add", "passed", ""),
        ("mul", "failed", "mul: gradient wrong"),
    ]


def test_learner_copy_imports_and_is_the_one_imported(untouched):
    code = (
        "import importlib, pkgutil, tinybt\n"
        "for module in pkgutil.walk_packages(tinybt.__path__, 'tinybt.'):\n"
        "    importlib.import_module(module.name)\n"
        "print(tinybt.__file__)"
    )
    env = {**os.environ, "PYTHONPATH": str(untouched)}
    completed = subprocess.run(
        [sys.executable, "-c", code], cwd=untouched, env=env, capture_output=True, text=True
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == str(untouched / "tinybt" / "__init__.py")


def test_check_prints_the_stub_message_and_fails(untouched, capsys):
    assert exercises.main(["check", "matmul", "--dir", str(untouched)]) == 1
    out = capsys.readouterr().out
    assert "not implemented yet: matmul: return (dL/dX, dL/dY)" in out
    assert "matmul: 0 of" in out


def test_start_refuses_a_folder_that_is_not_empty(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(TinyBTError, match="is not an empty folder"):
        start(tmp_path)
    assert exercises.main(["start", str(tmp_path)]) == 2
    assert capsys.readouterr().err.count("\n") == 1  # one line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_commands_refuse_an_unknown_task_and_a_folder_without_a_copy(tmp_path, capsys):
    assert exercises.main(["check", "softmax", "--dir", str(tmp_path)]) == 2
    assert "unknown task 'softmax'" in capsys.readouterr().err
    assert exercises.main(["check", "all", "--dir", str(tmp_path)]) == 2
    assert "holds no learner's copy" in capsys.readouterr().err


@pytest.mark.parametrize(
    "source, line, complaint",
    [
        ("x = 1\n    # BEGIN SOLUTION mul return x\n    # END SOLUTION\n", 2, "malformed"),
        ("# BEGIN SOLUTION Mul: a hint\n# END SOLUTION\n", 1, "malformed"),
        ("def f():\n    # BEGIN SOLUTION mul: a hint\n    return 1\n", 2, "no '# END SOLUTION'"),
        ("    # END SOLUTION\n", 1, "closes no fence"),
        ("# BEGIN SOLUTION a: one\n# BEGIN SOLUTION b: two\n# END SOLUTION\n", 2, "inside"),
        ("    # BEGIN SOLUTION a: one\n# END SOLUTION\n", 2, "not indented like"),
    ],
)
def test_a_broken_fence_is_reported_with_file_and_line(tmp_path, source, line, complaint):
    path = tmp_path / "op.py"
    path.write_text(source)
    with pytest.raises(TinyBTError, match=complaint) as raised:
        read_fences(path)
    assert str(raised.value).startswith(f"{path}:{line}: ")


def test_stub_keeps_the_fence_lines_and_indentation(tmp_path):
    path = tmp_path / "op.py"
    path.write_text(
        'def f(x):\n    # BEGIN SOLUTION mul: say "twice"\n    return 2 * x\n    # END SOLUTION\n'
    )
    (fence,) = read_fences(path)
    exercises.replace_bodies(path, [(fence, [fence.stub()])])
    namespace = {}
    exec(path.read_text(), namespace)
    with pytest.raises(NotImplementedError, match='mul: say "twice"'):
        namespace["f"](1)
    assert read_fences(path)[0].hint == 'say "twice"'
