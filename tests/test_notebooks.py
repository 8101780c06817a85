"""Every notebook runs top to bottom, in reading order, in the fast configuration, and is
committed with the outputs of its full run (rendered by `python -m tinybt.book`).

The notebooks in notebooks/ are executed in a copy in memory with nbclient (the committed
file, with its full outputs, is never touched), with TINYBT_FAST=1, which each notebook reads
in its first code cell to shrink its epochs and data, and with the notebooks' folder as the
working directory, as Jupyter runs them. Checks inside the notebooks are asserts, so a notebook
whose claims stop holding fails here, naming the cell.

The notebooks plot and index NumPy arrays directly, so their kernel always runs on the NumPy
backend, whatever TINYBT_BACKEND the rest of the suite uses, and with one BLAS thread (see below).
"""

import importlib.util
import inspect
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.host

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))
ANSI_COLOUR = re.compile(r"\x1b\[[0-9;]*m")
GETSOURCE = re.compile(r"inspect\.getsource\(([\w.]+)\)")  # e.g. ops.Transpose
CELL_TIMEOUT = 300  # seconds; a fast notebook takes a few seconds in all
# A committed notebook, figures and animation embedded, stays under this size: a page that
# loads quickly, and a repository that does not grow by megabytes with every re-render.
MAX_NOTEBOOK_BYTES = 1_500_000


def test_the_notebooks_are_numbered_in_reading_order():
    numbers = [int(path.name[:2]) for path in NOTEBOOKS]
    assert numbers == list(range(1, len(NOTEBOOKS) + 1)), [path.name for path in NOTEBOOKS]


def test_every_notebook_opens_with_a_link_to_the_notation():
    notation = NOTEBOOKS_DIR.parent / "docs" / "NOTATION.md"
    assert notation.is_file(), "docs/NOTATION.md, the table of symbols, is missing"
    for path in NOTEBOOKS:
        first = nbformat.read(path, as_version=4).cells[0]
        assert "(../docs/NOTATION.md)" in first.source, f"{path.name}: link docs/NOTATION.md"


def test_every_exercise_is_introduced_by_one_notebook_heading():
    """Each learners' exercise has a heading `### Exercise <task-id>` in the notebook that
    introduces it, with the command that checks it (docs/EXERCISES.md lists where)."""
    from tinybt.exercises import TASKS

    headings = {}
    for path in NOTEBOOKS:
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type != "markdown":
                continue
            for task in re.findall(r"^#+ Exercise (\S+)\s*$", cell.source, flags=re.MULTILINE):
                assert task not in headings, f"{task}: in {headings.get(task)} and {path.name}"
                headings[task] = path.name
                command = f"python -m tinybt.exercises check {task}"
                assert command in cell.source, f"{path.name}: the {task} heading lacks `{command}`"
    assert sorted(headings) == sorted(TASKS), (
        f"tasks without a heading: {sorted(set(TASKS) - set(headings))}; "
        f"headings of unknown tasks: {sorted(set(headings) - set(TASKS))}"
    )


# The result each exercise asks for, as the notebook's worked answer writes it.
RESULTS = {
    "unbroadcast": r"\frac{\partial L}{\partial b_d} = \sum_n G_{nd}",
    "add": r"\partial L/\partial x = G$ and $\partial L/\partial y = G$",
    "mul": r"\partial L/\partial x = G \odot y",
    "pow": r"G \odot p\,x^{p-1}",
    "exp-log": r"\partial L/\partial x = G / x",
    "relu": r"G \odot [x > 0]",
    "sum": "copied back along the summed axes",
    "matmul": r"\partial L/\partial X = G\,Y^\top",
    "linear": r"\frac{\partial L}{\partial X} = G\,W^\top",
    "conv2d": r"\frac{\partial L}{\partial W} = G\,\text{cols}^\top",
    "maxpool": "**routes** each window's gradient to its argmax",
    "avgpool": r"\partial\,\text{out}/\partial x = 1/K^2",
    "batchnorm": r"g_k - \overline{g} - \hat x_k\,\overline{g\,\hat x}",
    "color-jitter": "luma(images).mean(axis=(1, 2, 3), keepdims=True)",
    "bt-loss": r"\frac1N\, \hat Z^B G^\top",
    "nt-xent": r"(G + G^\top)\, U",
    "vicreg": r"\frac{2\, \bar Z G}{N - 1}",
}


def test_every_task_has_its_result_listed():
    from tinybt.exercises import TASKS

    assert sorted(RESULTS) == sorted(TASKS), "RESULTS must name the result of every task"


@pytest.mark.parametrize("task", list(RESULTS))
def test_an_exercise_comes_before_its_answer_which_is_at_the_back(task):
    """The learner derives first: the exercise links to its worked answer in the notebook's
    Answers section, and no cell above the exercise gives the result away."""
    for path in NOTEBOOKS:
        sources = [cell.source for cell in nbformat.read(path, as_version=4).cells]
        heading = re.compile(rf"^#+ Exercise {re.escape(task)}\s*$", flags=re.MULTILINE)
        exercises = [i for i, source in enumerate(sources) if heading.search(source)]
        if exercises:
            break
    else:
        pytest.fail(f"no notebook has the heading `### Exercise {task}`")
    exercise, notebook = exercises[0], path.name
    answers = [i for i, source in enumerate(sources) if source.startswith("## Answers")]
    assert answers, f"{notebook} has no section `## Answers` at the back"
    anchor = f'<a id="answer-{task}"></a>'
    answer = next((i for i, source in enumerate(sources) if anchor in source), None)
    assert answer is not None, f"{notebook}: no answer to {task} marked {anchor}"
    assert exercise < answers[0] < answer, (
        f"{notebook}: exercise {task} (cell {exercise}), the Answers section (cell "
        f"{answers[0]}) and its answer (cell {answer}) are not in that order"
    )
    assert f"(#answer-{task})" in sources[exercise], (
        f"{notebook}: exercise {task} does not link to its answer (#answer-{task})"
    )
    result = RESULTS[task]
    assert result in sources[answer], f"{notebook}: the answer to {task} lacks {result!r}"
    early = [i for i in range(exercise) if result in sources[i]]
    assert not early, (
        f"{notebook}: cells {early} give the result of {task} before its exercise (cell "
        f"{exercise}): move it to the answer"
    )


def test_no_notebook_prints_the_source_of_an_exercise_solution():
    """`inspect.getsource(ops.Mul)` before `Exercise mul` would hand the learner the answer."""
    shown = []
    for path in NOTEBOOKS:
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "code":
                shown += [(path.name, name) for name in GETSOURCE.findall(cell.source)]
    assert shown, "no notebook shows source any more: drop this test"
    for notebook, name in shown:
        module, _, attribute = name.rpartition(".")
        source = inspect.getsource(getattr(importlib.import_module(f"tinybt.{module}"), attribute))
        assert "# BEGIN SOLUTION" not in source, f"{notebook} prints the solution in {name}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_is_committed_with_the_outputs_of_its_full_run(path):
    """What a reader sees on the page: every code cell run, top to bottom in one kernel, by
    `python -m tinybt.book` in the full configuration, no error, and a file small enough to
    show. (A cell that only imports or defines has no output: every cell's execution count
    is the proof that it ran.)"""
    notebook = nbformat.read(path, as_version=4)
    rerender = f"re-render it with `python -m tinybt.book {path.stem[:2]}`"
    rendered = notebook.metadata.get("tinybt", {}).get("rendered")
    assert rendered == "full", f"{path.name} was not rendered in full mode: {rerender}"
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    counts = [cell.execution_count for cell in code]
    assert counts == list(range(1, len(code) + 1)), (
        f"{path.name}: execution counts {counts} are not one run top to bottom: {rerender}"
    )
    errors = [
        index
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and any(out.output_type == "error" for out in cell.outputs)
    ]
    assert not errors, f"{path.name}: cells {errors} hold an error: fix them, then {rerender}"
    assert any(cell.outputs for cell in code), f"{path.name} shows no output: {rerender}"
    size = path.stat().st_size
    assert size < MAX_NOTEBOOK_BYTES, (
        f"{path.name} is {size / 1e6:.1f} MB, over {MAX_NOTEBOOK_BYTES / 1e6:.1f} MB: "
        "make its figures smaller (fewer dots per inch, fewer frames)"
    )


# A path from the root of a file system: /home/..., /work/run/..., C:\\Users\\... (two parts at
# least, so that "img/s" or "1/N" is none).
ABSOLUTE_PATH = re.compile(r"(?<![\w./~:-])/(?:[\w.+-]+/)+[\w.+-]*|\b[A-Za-z]:\\[\w\\.-]+")


def output_texts(cell):
    """Every text a code cell's outputs show: streams, text results, tracebacks."""
    for output in cell.get("outputs", []):
        if "text" in output:
            yield output.text
        for kind, value in output.get("data", {}).items():
            if kind.startswith("text/"):
                yield value
        yield "\n".join(output.get("traceback", []))


def absolute_paths(notebook):
    """[(cell index, path)] of every absolute path in the outputs of `notebook`."""
    return [
        (index, path)
        for index, cell in enumerate(notebook.cells)
        for text in output_texts(cell)
        for path in ABSOLUTE_PATH.findall(text)
    ]


def test_absolute_paths_are_found_in_an_output():
    cell = nbformat.v4.new_code_cell("print(folder)")
    cell.outputs = [
        nbformat.v4.new_output("stream", text="wrote /work/copy/runs/a/ and C:\\Users\\me\\runs\n"),
        nbformat.v4.new_output("execute_result", {"text/plain": "'/home/me/data'"}),
        nbformat.v4.new_output("stream", text="wrote runs/a/ at 213 img/s, 1/N of the batch\n"),
    ]
    notebook = nbformat.v4.new_notebook(cells=[cell])
    assert [path for _, path in absolute_paths(notebook)] == [
        "/work/copy/runs/a/",
        "C:\\Users\\me\\runs",
        "/home/me/data",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_no_output_holds_an_absolute_path(path):
    """A path of the machine that rendered the book means nothing to a reader, and tells
    where someone keeps their files: print paths relative to the repository."""
    found = absolute_paths(nbformat.read(path, as_version=4))
    assert not found, f"{path.name}: absolute paths in outputs (cell, path): {found}"


# Notebooks that train with `mpiexec` (the mpi extra), skipped where it is not installed.
NEEDS_MPI = {"11_distributed"}


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_runs_in_the_fast_configuration(path, monkeypatch):
    if path.stem in NEEDS_MPI and importlib.util.find_spec("mpi4py") is None:
        pytest.skip('trains with mpiexec: pip install -e ".[mpi]"')
    monkeypatch.setenv("TINYBT_FAST", "1")  # the kernel inherits this process's environment
    monkeypatch.setenv("TINYBT_BACKEND", "numpy")
    # The fast configuration's arrays are small, and a multi-threaded BLAS gains nothing on them;
    # on a busy machine its threads spin waiting for cores and a 1 s training run takes a minute.
    for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(variable, "1")
    committed = path.read_bytes()
    notebook = nbformat.reads(committed.decode(), as_version=4)  # a copy in memory
    running = {}  # the cell being executed, so that a failure can name it
    client = nbclient.NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=CELL_TIMEOUT,
        resources={"metadata": {"path": str(NOTEBOOKS_DIR)}},  # the kernel's working directory
        on_cell_start=lambda cell, cell_index: running.update(cell=cell, index=cell_index),
    )
    failure = None
    try:
        client.execute()
    except (nbclient.exceptions.CellExecutionError, nbclient.exceptions.CellTimeoutError) as error:
        failure = ANSI_COLOUR.sub("", str(error))  # IPython colours its tracebacks
    assert path.read_bytes() == committed, f"running {path.name} changed the committed file"
    if failure is not None:  # outside the except block, so the error is reported once
        cell = running["cell"]
        first_line = (cell.source.strip().splitlines() or [""])[0]
        pytest.fail(
            f"{path.name}: cell {running['index']} (counting every cell from 0, "
            f"starting {first_line!r}) failed:\n{failure}",
            pytrace=False,
        )
