"""Learners' exercises: write the library's key bodies yourself, checked by its own tests.

The library fences each body a learner should write between two comment lines, the first of
the form `# BEGIN SOLUTION <task-id>: <what to implement>` and the last `# END SOLUTION`,
and marks the tests of that body `@pytest.mark.exercise("<task-id>")`. The notebooks
introduce each task under the heading `Exercise <task-id>`. This program:

    python -m tinybt.exercises list                    the tasks, in the order to do them
    python -m tinybt.exercises start DIR               a learner's copy with the fences emptied
    python -m tinybt.exercises check TASK [--dir DIR]  run one task's tests on the copy
    python -m tinybt.exercises check all [--dir DIR]   a progress table of every task
    python -m tinybt.exercises solve DIR [--task TASK] put the library's solutions back

In the learner's copy each fenced body is replaced by a `raise NotImplementedError` that
names the task, so the package still imports and only the unwritten code fails. `start` marks
the copy with a file `.tinybt-copy`, and `check` refuses a folder without it: the library's own
source would pass every task. `check` runs pytest on the copy in a subprocess whose import path
starts with the copy, so the tests import the learner's tinybt rather than the installed one;
options it does not know (`-v`, `-x`, `-k EXPR`) go to pytest, whose own report it then shows.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

from tinybt.distributed import refuse_launcher
from tinybt.errors import OneLineArgumentParser, TinyBTError, run_program

# Every task, in the order a learner should do them (later tasks use the earlier ones).
TASKS = {
    "unbroadcast": "sum a gradient back to the shape of an input that broadcasting stretched",
    "add": "backward of z = x + y",
    "mul": "backward of z = x * y",
    "pow": "backward of z = x ** p",
    "exp-log": "backward of z = exp(x) and of z = log(x)",
    "relu": "backward of z = max(x, 0)",
    "sum": "backward of a sum over axes (mean and variance are built from it)",
    "matmul": "backward of Z = X @ Y",
    "linear": "the linear layer's forward, y = x W + b (autograd derives its backward)",
    "conv2d": "convolution: im2col, col2im, and the backward through GEMMs",
    "maxpool": "backward of max pooling",
    "avgpool": "backward of average pooling",
    "batchnorm": "backward of batch normalisation",
    "color-jitter": "brightness, contrast and saturation: blends with black, mean grey, grey",
    "bt-loss": "backward of the Barlow Twins loss",
    "nt-xent": "backward of SimCLR's NT-Xent loss",
    "vicreg": "backward of the VICReg loss: invariance, variance and covariance terms",
}

# this file's folder, not tinybt.__file__: a folder named tinybt where the program runs makes
# `tinybt` a package without a file
PACKAGE = Path(__file__).resolve().parent
LIBRARY_TESTS = PACKAGE.parent / "tests"
COMMAND = "python -m tinybt.exercises"
# `start` writes this file into a learner's copy; `check` and `solve` refuse a folder without it.
COPY_MARKER = ".tinybt-copy"
# Every exercise test sits in a test file that spells its marker so: `check` collects only those
# files, which saves importing the rest (PyTorch, nbformat) on every check; tests/conftest.py
# stops a run that finds a marker spelled otherwise.
MARKER_SPELLING = "pytest.mark.exercise("

BEGIN = re.compile(
    r"(?P<indent>[ \t]*)# BEGIN SOLUTION (?P<task>[a-z0-9]+(-[a-z0-9]+)*): (?P<hint>\S.*)"
)
END = re.compile(r"(?P<indent>[ \t]*)# END SOLUTION")
HEADER_FORM = "# BEGIN SOLUTION <task-id>: <what to implement>"

PYTEST_INI = """\
[pytest]
testpaths = tests
markers =
    exercise(task_id): the test checks learners' exercise <task_id> (see README.md)
"""

README = """\
# Your tinybt

A copy of tinybt in which the bodies you are to write raise `NotImplementedError`. Each sits
between `# BEGIN SOLUTION <task>: <what to implement>` and `# END SOLUTION`; the notebook
heading `Exercise <task>` introduces it (docs/EXERCISES.md in the repository has the details).

`python` below is the Python of tinybt's virtual environment: `../.venv/bin/python` when this
folder is `my-tinybt` inside the repository, as the repository's README makes it.

1. `python -m tinybt.exercises list` shows the tasks in order and the files they are in.
2. Replace the `raise NotImplementedError(...)` line of a task with your code. Keep the
   BEGIN and END lines: they tell the tools where your code is.
3. `python -m tinybt.exercises check <task>`, run in this folder, runs that task's tests on
   this copy and says, for a wrong gradient, which input, which entry and by how much; for an
   error in your code, the file and line it came from. Options it does not know go to pytest:
   `check <task> -v` shows pytest's own report, `check <task> -x` stops at the first failure.
4. `python -m tinybt.exercises check all` shows your progress through every task.

Stuck? From outside this folder, `python -m tinybt.exercises solve <this folder> --task <task>`
puts the library's solution of one task back (without `--task`, of every task).

`.tinybt-copy` tells `check` that this folder is a learner's copy; `.gitignore` keeps git from
tracking it inside the repository (delete it to keep your copy in git of your own).
"""


@dataclass
class Fence:
    """One fenced body: lines begin+1 .. end-1 of `path` (0-based line indices)."""

    path: Path
    begin: int
    end: int
    task: str
    hint: str
    indent: str

    def stub(self):
        """The line that stands in for the body in a learner's copy."""
        # json.dumps writes a double-quoted string that is also a valid Python literal.
        message = json.dumps(f"{self.task}: {self.hint}", ensure_ascii=False)
        return f"{self.indent}raise NotImplementedError({message})"


# ----- fences -----
def read_fences(path):
    """The fences of one file, checked: a malformed header or a missing END names its line."""
    fences, opened = [], None
    for index, line in enumerate(path.read_text().splitlines()):
        where = f"{path}:{index + 1}"
        stripped = line.strip()
        if stripped.startswith("# BEGIN SOLUTION"):
            header = BEGIN.fullmatch(line)
            if header is None:
                raise TinyBTError(
                    f"{where}: malformed fence header {stripped!r}: write it as {HEADER_FORM!r}"
                )
            if opened is not None:
                raise TinyBTError(
                    f"{where}: a fence begins inside the one opened at line "
                    f"{opened.begin + 1}: close that one with '# END SOLUTION'"
                )
            opened = Fence(path, index, -1, header["task"], header["hint"], header["indent"])
        elif stripped.startswith("# END SOLUTION"):
            if END.fullmatch(line) is None or opened is None:
                raise TinyBTError(
                    f"{where}: {stripped!r} closes no fence: it must read "
                    f"'# END SOLUTION' after a '# BEGIN SOLUTION' line"
                )
            if line[: len(line) - len(stripped)] != opened.indent:
                raise TinyBTError(
                    f"{where}: '# END SOLUTION' is not indented like its "
                    f"BEGIN line {opened.begin + 1}"
                )
            opened.end = index
            fences.append(opened)
            opened = None
    if opened is not None:
        raise TinyBTError(
            f"{path}:{opened.begin + 1}: the fence of {opened.task!r} has no '# END SOLUTION' line"
        )
    return fences


def find_fences(package):
    """Every fence in the .py files under `package`, in file order."""
    return [fence for path in sorted(package.rglob("*.py")) for fence in read_fences(path)]


def body(fence, lines):
    """The lines between a fence's BEGIN and END lines."""
    return lines[fence.begin + 1 : fence.end]


def replace_bodies(path, bodies):
    """Rewrite `path` with each fence's body replaced: bodies is [(fence, new lines)]."""
    lines = path.read_text().splitlines()
    for fence, new in sorted(bodies, key=lambda pair: -pair[0].begin):  # bottom up: indices hold
        lines[fence.begin + 1 : fence.end] = new
    path.write_text("\n".join(lines) + "\n")


def by_file(fences):
    """{path: [fences in that file]}."""
    grouped = {}
    for fence in fences:
        grouped.setdefault(fence.path, []).append(fence)
    return grouped


def relative(path, root):
    """A fence file's path as the learner sees it, e.g. tinybt/ops/matmul.py."""
    return path.relative_to(root).as_posix()


# ----- the learner's copy -----
def start(directory):
    """Write a learner's copy to `directory`: tinybt/ with every fence stubbed, tests/,
    pytest.ini (which registers the exercise marker) and README.md."""
    directory = Path(directory)
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise TinyBTError(
            f"{directory} is not an empty folder: name a new one, or carry on in "
            f"it with `{COMMAND} check all --dir {directory}`"
        )
    if not LIBRARY_TESTS.is_dir():
        raise TinyBTError(
            f"no tests folder beside the package at {LIBRARY_TESTS}: install "
            f"tinybt from a checkout with `pip install -e .`"
        )
    fences = find_fences(PACKAGE)  # read them all first, so that a bad fence writes nothing
    no_cache = shutil.ignore_patterns("__pycache__", "*.pyc")
    new = not directory.exists()
    try:
        shutil.copytree(PACKAGE, directory / "tinybt", ignore=no_cache)
        shutil.copytree(LIBRARY_TESTS, directory / "tests", ignore=no_cache)
        for path, file_fences in by_file(fences).items():
            copy = directory / relative(path, PACKAGE.parent)
            replace_bodies(copy, [(fence, [fence.stub()]) for fence in file_fences])
        (directory / "pytest.ini").write_text(PYTEST_INI)
        (directory / "README.md").write_text(README)
        (directory / COPY_MARKER).write_text(f"a learner's copy of tinybt, by `{COMMAND} start`\n")
        (directory / ".gitignore").write_text("*\n")  # a copy in the repository stays out of git
    except (OSError, shutil.Error) as error:
        reason = getattr(error, "strerror", None) or str(error).splitlines()[0]
        if new:  # a half-written copy would make the next `start` refuse the folder
            shutil.rmtree(directory, ignore_errors=True)
        raise TinyBTError(
            f"cannot write the learner's copy to {directory} ({reason}): name a new folder "
            "in a place you can write to"
        ) from None
    return fences


def learner_root(directory):
    """`directory`, checked to hold a learner's copy: tinybt/, tests/ and the mark of `start`."""
    directory = Path(directory).resolve()
    if not (directory / "tinybt" / "__init__.py").is_file() or not (directory / "tests").is_dir():
        raise TinyBTError(
            f"{directory} holds no learner's copy (tinybt/ and tests/): make one "
            f"with `{COMMAND} start DIR`, or point --dir at it"
        )
    if not (directory / COPY_MARKER).is_file():
        raise TinyBTError(
            f"{directory} is not a learner's copy written by `start` (it has no {COPY_MARKER}; "
            f"the library itself passes every task): make one with `{COMMAND} start "
            f"my-tinybt`, then run check inside it or with --dir my-tinybt"
        )
    return directory


def solve(directory, task=None):
    """Put the library's solutions back into a learner's copy (only `task`'s if given)."""
    root = learner_root(directory)
    restored = []
    for path, solutions in by_file(find_fences(PACKAGE)).items():
        lines = path.read_text().splitlines()
        if any(body(solution, lines) == [solution.stub()] for solution in solutions):
            raise TinyBTError(
                f"tinybt was imported from {PACKAGE}, a learner's copy (python -m "
                f"imports the current folder's): run solve from outside it"
            )
        copy = root / relative(path, PACKAGE.parent)
        if not copy.is_file():
            raise TinyBTError(
                f"{copy} is missing: the copy is older than the library; start a new one"
            )
        stubs = read_fences(copy)
        if [(f.task, f.hint) for f in stubs] != [(f.task, f.hint) for f in solutions]:
            raise TinyBTError(
                f"the fences of {copy} differ from the library's {path}: start a new copy"
            )
        pairs = zip(stubs, solutions, strict=True)
        chosen = [
            (stub, body(solution, lines)) for stub, solution in pairs if task in (None, stub.task)
        ]
        if chosen:
            replace_bodies(copy, chosen)
        restored += [stub for stub, _ in chosen]
    return restored


# ----- running the tests -----
@dataclass
class ExerciseResult:
    """One exercise test on one copy: outcome is passed, failed or skipped."""

    task: str
    name: str
    outcome: str
    message: str  # why it failed, as the learner should read it; "" otherwise


def exercise_test_files(tests):
    """The test files in `tests` that hold exercise tests (see MARKER_SPELLING)."""
    return [path for path in sorted(tests.glob("test_*.py")) if MARKER_SPELLING in path.read_text()]


def run_tests(root, task=None, pytest_options=(), show=False):
    """Run the exercise tests (only `task`'s if given) of the copy in `root`, one pytest run.

    The subprocess starts in `root` with `root` first on PYTHONPATH, so `import tinybt` in
    the tests finds root/tinybt, not the installed package. `pytest_options` go to pytest as
    they are; with `show`, pytest's own report is printed.
    """
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "report.xml"
        command = [
            sys.executable,
            "-m",
            "pytest",
            *map(str, exercise_test_files(root / "tests")),
            "-m",
            "exercise",
            "-p",
            "no:cacheprovider",
            "-o",
            "junit_family=xunit1",
            f"--junitxml={report}",
            *pytest_options,
        ]
        if task is not None:
            command += ["--exercise", task]
        path = os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))
        env = {**os.environ, "PYTHONPATH": path}
        completed = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True)
        if show:
            print(completed.stdout + completed.stderr)
        if completed.returncode == 5:
            raise TinyBTError(f"no test in {root / 'tests'} is marked exercise({task!r})")
        if completed.returncode not in (0, 1):
            raise TinyBTError(
                f"pytest could not run the tests in {root / 'tests'}: "
                f"{pytest_complaint(completed.stdout + completed.stderr)}"
            )
        return read_report(report, root)


def pytest_complaint(output):
    """The lines of pytest's output that say why it stopped (a syntax error, say), as one."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    # pytest repeats an import error for every test file; "^^^" marks a column, lost on one line
    errors = [line[1:].strip() for line in lines if line.startswith("E ")]
    errors = [line for line in dict.fromkeys(errors) if line.strip("^~ ")]
    return " | ".join(errors or lines[-1:])


def read_report(report, root):
    """[ExerciseResult] from pytest's JUnit XML of a run in `root`; tests/conftest.py records
    each test's task."""
    results = []
    for case in ElementTree.parse(report).iter("testcase"):
        task = {p.get("name"): p.get("value") for p in case.iter("property")}.get("exercise")
        problem = case.find("failure") if case.find("failure") is not None else case.find("error")
        if problem is not None:
            outcome = "failed"
            message = explain(problem.get("message", ""), where(problem.text or "", root))
        else:
            outcome, message = ("skipped" if case.find("skipped") is not None else "passed"), ""
        if task is None and outcome == "skipped":
            continue  # a whole test module skipped as it was collected (no torch, say)
        results.append(
            ExerciseResult(task, f"{case.get('file')}::{case.get('name')}", outcome, message)
        )
    return results


# A traceback entry in pytest's report: "tinybt/ops/elementwise.py:53: NameError" for the
# innermost frame, "tinybt/tensor.py:138: in backward" for the others.
FRAME = re.compile(r"^(?P<path>[^\s:][^:]*\.py):(?P<line>\d+): ", re.MULTILINE)


def where(traceback, root):
    """'tinybt/<file>.py:<line>', the innermost frame of `traceback` in root/tinybt; or ""."""
    package = root / "tinybt"
    frames = [
        f"{(root / frame['path']).resolve().relative_to(root).as_posix()}:{frame['line']}"
        for frame in FRAME.finditer(traceback)
        if (root / frame["path"]).resolve().is_relative_to(package)
    ]
    return frames[-1] if frames else ""


def explain(message, location=""):
    """A failure as the learner should read it: a NotImplementedError is a stub still there,
    and any other error names the file and line of the copy's tinybt it came from."""
    kind, _, text = message.partition(": ")
    if kind == "NotImplementedError":
        return f"not implemented yet: {text}"
    if kind == "AssertionError":
        return text
    return f"{location}: {message}" if location else message


# ----- the commands -----
def list_tasks():
    files = {}
    for fence in find_fences(PACKAGE):
        files.setdefault(fence.task, {})[relative(fence.path, PACKAGE.parent)] = None
    width = max(map(len, TASKS))
    for number, (task, title) in enumerate(TASKS.items(), 1):
        where = ", ".join(files.get(task, {})) or "(no fence yet)"
        print(f"{number:2d}  {task:<{width}}  {title}\n    {'':<{width}}  in {where}")


def check(task, directory, pytest_options=()):
    """Run one task's tests on the copy and print each result; 0 if all pass."""
    if task not in TASKS:
        raise TinyBTError(f"unknown task {task!r}: `{COMMAND} list` shows the tasks")
    root = learner_root(directory)
    print(f"checking the learner's copy in {root}")
    results = run_tests(root, task, pytest_options, show=bool(pytest_options))
    for result in results:
        print(f"  {result.outcome.upper():7s} {result.name}")
        for line in result.message.splitlines()[:6]:
            print(f"          {line}")
    passed = sum(r.outcome == "passed" for r in results)
    failed = sum(r.outcome == "failed" for r in results)
    print(f"{task}: {passed} of {passed + failed} tests pass")
    return 1 if failed else 0


def progress(directory, pytest_options=()):
    """[(task, passed, total, status)] for every task, from one pytest run on the copy."""
    root = learner_root(directory)
    print(f"checking the learner's copy in {root}")
    results = run_tests(root, None, pytest_options, show=bool(pytest_options))
    fences = find_fences(root / "tinybt")
    lines = {path: path.read_text().splitlines() for path in by_file(fences)}
    untouched = {
        task
        for task in TASKS
        if all(
            body(fence, lines[fence.path]) == [fence.stub()]
            for fence in fences
            if fence.task == task
        )
    }
    rows = []
    for task in TASKS:
        mine = [r for r in results if r.task == task and r.outcome != "skipped"]
        passed = sum(r.outcome == "passed" for r in mine)
        if not mine:
            status = "no tests"
        elif passed == len(mine):
            status = "done"
        else:
            status = "not started" if task in untouched else "failing"
        rows.append((task, passed, len(mine), status))
    return rows


def check_all(directory, pytest_options=()):
    """Print the progress table; 0 if every task is done."""
    rows = progress(directory, pytest_options)
    width = max(map(len, TASKS))
    print(f"     {'task':<{width}}  tests  status")
    for number, (task, passed, total, status) in enumerate(rows, 1):
        print(f"{number:3d}  {task:<{width}}  {f'{passed}/{total}':>5}  {status}")
    done = sum(status == "done" for *_, status in rows)
    print(f"{done} of {len(rows)} tasks done")
    return 0 if done == len(rows) else 1


def parse_args(argv=None):
    parser = OneLineArgumentParser(
        prog=COMMAND,
        description="Learners' exercises: write "
        "the fenced bodies of tinybt yourself, checked by its tests.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="the tasks in order, with the files they are in")
    start_parser = commands.add_parser("start", help="write a learner's copy to DIR")
    start_parser.add_argument("dir", metavar="DIR")
    check_parser = commands.add_parser(
        "check",
        help="run a task's tests (or all) on a copy",
        description="Run a task's tests (or all) on a learner's copy. Options not listed "
        "here go to pytest, whose own report is then shown: -v, -x, -k EXPR.",
    )
    check_parser.add_argument("task", metavar="TASK", help="a task id, or 'all'")
    check_parser.add_argument("--dir", default=".", help="the learner's copy (default: here)")
    solve_parser = commands.add_parser(
        "solve", aliases=["restore"], help="put the library's solutions back into DIR"
    )
    solve_parser.add_argument("dir", metavar="DIR")
    solve_parser.add_argument("--task", help="restore only this task's solution")
    args, unknown = parser.parse_known_args(argv)
    if unknown and args.command != "check":
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    args.pytest_options = unknown
    return args


def main(argv=None):
    refuse_launcher(
        "tinybt.exercises", "every copy would write or check the same learner's folder at once"
    )
    args = parse_args(argv)
    try:
        if args.command == "list":
            list_tasks()
        elif args.command == "start":
            fences = start(args.dir)
            print(
                f"wrote {args.dir}/ with {len(fences)} fences to fill: see "
                f"{args.dir}/README.md, then `{COMMAND} check {next(iter(TASKS))}`"
            )
        elif args.command == "check":
            if args.task == "all":
                return check_all(args.dir, args.pytest_options)
            return check(args.task, args.dir, args.pytest_options)
        else:
            if args.task is not None and args.task not in TASKS:
                raise TinyBTError(f"unknown task {args.task!r}: `{COMMAND} list` shows the tasks")
            count = len(solve(args.dir, args.task))
            print(f"restored {count} fence{'' if count == 1 else 's'} in {args.dir}/")
    except TinyBTError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    run_program(main)
