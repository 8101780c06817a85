"""The learners' exercises: the fences, the learner's copy, and `check` on it.

Each copy's exercise tests run once, in one pytest subprocess (module-scoped fixtures), and
the tests below read the per-task results of those runs. PLANTED puts plausible wrong
solutions of every task into copies of a solved copy and asserts that `check` fails each.
"""

import os
import re
import shutil
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

pytestmark = pytest.mark.host

LIBRARY = PACKAGE.parent

# Wrong solutions a learner might write, each to be failed by `check <task>`:
# {task: {what is wrong: [(file, text of the library's solution, the wrong text)]}}.
# Every task has at least one; each text replaced lies inside a fence of its task.
ELEMENTWISE, CONV, POOL = "tinybt/ops/elementwise.py", "tinybt/ops/conv.py", "tinybt/ops/pool.py"
PLANTED = {
    "unbroadcast": {
        "stretched size-1 axes not summed": [
            (ELEMENTWISE, "if stretched:", "if False:"),
        ],
    },
    "add": {
        "wrong sign for y": [
            (ELEMENTWISE, "unbroadcast(grad, self.y_shape)", "unbroadcast(-grad, self.y_shape)"),
        ],
    },
    "mul": {
        "x and y swapped": [
            (
                ELEMENTWISE,
                "unbroadcast(grad * self.y, self.x.shape), unbroadcast(grad * self.x,",
                "unbroadcast(grad * self.x, self.x.shape), unbroadcast(grad * self.y,",
            ),
        ],
    },
    "pow": {
        "exponent not lowered": [
            (ELEMENTWISE, "self.x ** (self.exponent - 1)", "self.x**self.exponent"),
        ],
    },
    "exp-log": {
        "log without the upstream gradient": [(ELEMENTWISE, "(grad / self.x,)", "(1 / self.x,)")],
    },
    "relu": {
        "gradient not masked": [(ELEMENTWISE, "(grad * self.positive,)", "(grad,)")],
    },
    "sum": {
        "summed axes not put back": [
            ("tinybt/ops/reduce.py", "if not self.keepdims:", "if False:"),
        ],
    },
    "matmul": {
        "dY transposed": [
            ("tinybt/ops/matmul.py", "self.x.T @ grad", "grad.T @ self.x"),
        ],
    },
    "linear": {
        "bias left out": [
            ("tinybt/nn.py", "return y if self.bias is None else y + self.bias", "return y"),
        ],
    },
    "conv2d": {
        "rows in (KH, KW, C) order in im2col and col2im alike": [
            (
                CONV,
                "cols = xp.empty((C, KH, KW, OH, OW, N)",
                "cols = xp.empty((KH, KW, C, OH, OW, N)",
            ),
            (CONV, "cols[:, i, j] = x_pad", "cols[i, j] = x_pad"),
            (CONV, "cols.reshape(C, KH, KW, OH, OW, N)", "cols.reshape(KH, KW, C, OH, OW, N)"),
            (CONV, "+= cols[:, i, j]", "+= cols[i, j]"),
        ],
        "overlapping patches overwrite instead of adding up": [
            (
                CONV,
                "dx_pad[offset(i, j, OH, OW, stride)] +=",
                "dx_pad[offset(i, j, OH, OW, stride)] =",
            ),
        ],
    },
    "maxpool": {
        "window entry numbered i KH + j": [
            (POOL, "self.argmax == i * KW + j", "self.argmax == i * KH + j")
        ],
    },
    "avgpool": {
        "not divided by the window size": [(POOL, "share = grad / (KH * KW)", "share = grad")],
    },
    "batchnorm": {
        "mean of the gradient left out": [
            (
                "tinybt/ops/batchnorm.py",
                "return (self.inv_std * (grad - mean_grad - self.x_hat",
                "return (self.inv_std * (grad - self.x_hat",
            ),
        ],
        "dL/dγ's and dL/dβ's shares scaled by the whole batch's count": [
            (
                "tinybt/ops/batchnorm.py",
                "self.count * mean_grad_x_hat.reshape(-1), self.count * mean_grad.reshape(-1)",
                "self.batch_count * mean_grad_x_hat.reshape(-1), "
                "self.batch_count * mean_grad.reshape(-1)",
            ),
        ],
        "dL/dγ and dL/dβ swapped in the fused op": [
            (
                "tinybt/ops/batchnorm.py",
                "self.count * mean_grad_x_hat.reshape(-1), self.count * mean_grad.reshape(-1)",
                "self.count * mean_grad.reshape(-1), self.count * mean_grad_x_hat.reshape(-1)",
            ),
        ],
    },
    "color-jitter": {
        "contrast blends with each channel's own mean": [
            ("tinybt/augment.py", "luma(images).mean(axis=(1, 2, 3)", "images.mean(axis=(1, 2)"),
        ],
        "saturation blends with the mean grey": [
            (
                "tinybt/augment.py",
                "_blend(images, luma(images), factor)",
                "_blend(images, luma(images).mean(axis=(1, 2, 3), keepdims=True), factor)",
            ),
        ],
    },
    "bt-loss": {
        "dL/dZ_a with G instead of its transpose": [
            ("tinybt/methods/barlow_twins.py", "self.z_b_hat @ dc.T / n", "self.z_b_hat @ dc / n"),
        ],
        "divided by this process's rows, not the whole batch's N": [
            ("tinybt/methods/barlow_twins.py", "n = self.count", "n = len(self.z_a_hat)"),
        ],
        "standardisation's backward left out": [
            ("tinybt/methods/barlow_twins.py", "return dz_a, dz_b", "return dz_a_hat, dz_b_hat"),
        ],
    },
    "nt-xent": {
        "the similarity matrix taken as symmetric in its gradient": [
            (
                "tinybt/methods/simclr.py",
                "du = (g + g_columns) @ self.views / self.temperature",
                "du = 2 * g @ self.views / self.temperature",
            ),
        ],
    },
    "vicreg": {
        "the hinge's mask left out of the variance term": [
            (
                "tinybt/methods/vicreg.py",
                "d_std = -std_coeff / (2 * d) * (std < self.gamma)",
                "d_std = -std_coeff / (2 * d)",
            ),
        ],
    },
}


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


def test_every_task_has_a_planted_wrong_solution():
    missing, unknown = set(TASKS) - set(PLANTED), set(PLANTED) - set(TASKS)
    assert not missing and not unknown, (
        f"add to PLANTED a wrong solution of each of {sorted(missing)} that `check` must fail; "
        f"PLANTED names tasks not in TASKS: {sorted(unknown)}"
    )


def plant(copy, task, wrong):
    """Put PLANTED[task][wrong] into `copy`, checking each replaced text is in a fence of task."""
    for file, right, wrong_text in PLANTED[task][wrong]:
        library = (LIBRARY / file).read_text()
        assert library.count(right) == 1, f"PLANTED: {right!r} is not once in {file}: update it"
        first = library[: library.index(right)].count("\n")
        last = first + right.count("\n")
        fences = [f for f in read_fences(LIBRARY / file) if f.begin < first and last < f.end]
        assert [f.task for f in fences] == [task], f"PLANTED: {right!r} is in no fence of {task}"
        path = copy / file
        path.write_text(path.read_text().replace(right, wrong_text))


@pytest.mark.parametrize(
    "task, wrong", [(task, wrong) for task, wrongs in PLANTED.items() for wrong in wrongs]
)
def test_check_fails_a_planted_wrong_solution(solved, tmp_path, capsys, task, wrong):
    copy = tmp_path / "copy"
    shutil.copytree(solved, copy, ignore=shutil.ignore_patterns("__pycache__"))
    plant(copy, task, wrong)
    status = exercises.check(task, copy)
    out = capsys.readouterr().out
    assert status == 1, f"`check {task}` passes a wrong solution ({wrong}):\n{out}"
    assert "not implemented yet" not in out, out


def test_check_names_the_row_order_of_a_wrong_im2col(solved, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(solved, copy, ignore=shutil.ignore_patterns("__pycache__"))
    plant(copy, "conv2d", "rows in (KH, KW, C) order in im2col and col2im alike")
    assert exercises.check("conv2d", copy) == 1
    out = capsys.readouterr().out
    assert "im2col's rows are in (KH, KW, C) order: they must be in (C, KH, KW) order" in out, out


@pytest.mark.parametrize(
    "task, wrong, meant",
    [
        (
            "bt-loss",
            "divided by this process's rows, not the whole batch's N",
            "divides by the whole batch's count, N = 16 rows (distributed.batch_count), "
            "not by this process's 8 rows",
        ),
        (
            "batchnorm",
            "dL/dγ's and dL/dβ's shares scaled by the whole batch's count",
            "this process's count (self.count, m / P = 4 values per feature), not the whole "
            "batch's (self.batch_count, m = 8)",
        ),
    ],
)
def test_check_says_which_count_a_count_mistake_meant(solved, tmp_path, capsys, task, wrong, meant):
    """One process cannot tell the two counts apart; the check with the batch shared by
    several processes can, and says which was meant."""
    copy = tmp_path / "copy"
    shutil.copytree(solved, copy, ignore=shutil.ignore_patterns("__pycache__"))
    plant(copy, task, wrong)
    status = exercises.check(task, copy)
    out = capsys.readouterr().out
    assert status == 1, out
    failed = [line for line in out.splitlines() if line.strip().startswith("FAILED")]
    assert all("with_the_batch_shared" in line for line in failed), out
    assert meant in out, out


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
    results = read_report(report, tmp_path)
    assert [(r.task, r.outcome, r.message) for r in results] == [
        ("add", "passed", ""),
        ("mul", "failed", "mul: gradient wrong"),
    ]


def test_no_fence_message_gives_the_rule_it_asks_for():
    """The message a stub raises names the op and its forward, not how to write its backward
    (the rules the exercises ask for: routing, spreading, copying back, adding back)."""
    giveaways = ("route", "send each", "spread", "copying grad back", "add each column")
    for fence in find_fences(PACKAGE):
        said = [word for word in giveaways if word in fence.hint]
        assert not said, f"{fence.task}'s fence message {fence.hint!r} gives away {said}"


@pytest.mark.parametrize(
    "file, result",
    [
        ("tinybt/ops/batchnorm.py", "x̂_k mean(g ⊙ x̂)) / σ̂"),
        ("tinybt/ops/batchnorm.py", "dL/dβ = m mean(g)"),
        ("tinybt/ops/conv.py", "dL/dx = col2im(dL/dcols)"),
        ("tinybt/ops/elementwise.py", "dL/dx = G ⊙ y"),
        ("tinybt/ops/matmul.py", "dL/dX = G Yᵀ"),
        ("tinybt/ops/conv.py", "dL/dW = G colsᵀ"),
        ("tinybt/ops/pool.py", "grad / (KH KW)"),
        ("tinybt/methods/barlow_twins.py", "dL/dẐ^A = Ẑ^B Gᵀ / N"),
        ("tinybt/methods/simclr.py", "dL/dU = (G + Gᵀ) U / τ"),
        ("tinybt/methods/vicreg.py", "dL/dZ̄ = 2 Z̄ G / (N - 1)"),
    ],
)
def test_the_result_to_derive_is_in_the_solution_not_in_the_copy(untouched, file, result):
    """The docstrings give the steps as hints; the final formula sits in the fence."""
    assert result in (LIBRARY / file).read_text()
    assert result not in (untouched / file).read_text()


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


def test_check_names_the_copy_prints_the_stub_message_and_fails(untouched, capsys):
    assert exercises.main(["check", "matmul", "--dir", str(untouched)]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"checking the learner's copy in {untouched.resolve()}\n")
    assert "not implemented yet: matmul: return (dL/dX, dL/dY)" in out
    assert "matmul: 0 of" in out


def test_check_and_solve_refuse_the_library_itself_in_one_line(monkeypatch, capsys):
    """The library passes every task: checking it would report a learner's work as done."""
    monkeypatch.chdir(LIBRARY)
    for command in (["check", "mul"], ["check", "all"], ["solve", str(LIBRARY)]):
        assert exercises.main(command) == 2, command
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err
        assert f"{LIBRARY} is not a learner's copy" in err
        assert "start my-tinybt`, then run check inside it or with --dir my-tinybt" in err


def test_start_marks_the_copy_and_keeps_it_out_of_git(untouched):
    assert (untouched / exercises.COPY_MARKER).is_file()
    assert "`../.venv/bin/python`" in (untouched / "README.md").read_text()  # which python
    assert (untouched / ".gitignore").read_text() == "*\n"
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "my-tinybt/tinybt/ops/elementwise.py"], cwd=LIBRARY
    )
    assert ignored.returncode == 0, "the README's copy, my-tinybt, is not in .gitignore"


def test_a_marker_that_check_would_not_collect_stops_the_run(tmp_path):
    """`check` collects only files that spell `pytest.mark.exercise(`: an alias would hide tests."""
    (tmp_path / "tests").mkdir()
    shutil.copy(LIBRARY / "tests" / "conftest.py", tmp_path / "tests")
    (tmp_path / "tests" / "test_alias.py").write_text(
        'import pytest\n\nexercise = pytest.mark.exercise\n\n\n@exercise("mul")\n'
        "def test_hidden():\n    pass\n"
    )
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "tests", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(LIBRARY)},
        capture_output=True,
        text=True,
    )
    assert completed.returncode == pytest.ExitCode.USAGE_ERROR, completed.stdout
    assert "test_alias.py::test_hidden is marked exercise('mul') but its file" in completed.stderr


def test_check_passes_unknown_options_to_pytest(untouched, capsys):
    """-v shows pytest's own report; -x stops it at the first failure."""
    assert exercises.main(["check", "mul", "-v", "--dir", str(untouched), "-x"]) == 1
    out = capsys.readouterr().out
    assert re.search(r"test_ops.py::test_mul_backward\[\S+\] FAILED", out), out
    assert "mul: 0 of 1 tests pass" in out
    with pytest.raises(SystemExit):
        exercises.main(["list", "-v"])
    assert "unrecognized arguments: -v" in capsys.readouterr().err


def test_check_points_at_the_file_and_line_of_an_error(solved, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(solved, copy, ignore=shutil.ignore_patterns("__pycache__"))
    path = copy / ELEMENTWISE
    source = path.read_text().replace("grad * self.y, self.x.shape", "grad * y, self.x.shape")
    path.write_text(source)
    line = source[: source.index("grad * y,")].count("\n") + 1
    assert exercises.check("mul", copy) == 1
    out = capsys.readouterr().out
    assert f"{ELEMENTWISE}:{line}: NameError: name 'y' is not defined" in out, out


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
