"""Re-render the notebooks in place with the outputs of their full run: `python -m tinybt.book`.

    python -m tinybt.book            every notebook, in reading order
    python -m tinybt.book 06 07      only those (by number or name)

Each notebook runs top to bottom in a fresh kernel, as Jupyter runs it: in the notebooks'
folder, on the NumPy backend, in the full configuration (TINYBT_FAST unset, whatever this
shell says), and is written back with its outputs and a record of the render in its metadata,
{"tinybt": {"rendered": "full", "seconds": ...}}, which tests/test_notebooks.py checks. Figures
are embedded as PNG, the animation of notebook 06 as a GIF. A progress bar is kept as its final
state, one line of text that a page shows, not as a widget that only a live kernel draws. A
notebook that fails is left as it was, and the others still run.
"""

import argparse
import html
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import nbclient
import nbformat

from tinybt.distributed import refuse_launcher

NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"
# How long each notebook takes in the full configuration, kernel start included, as this
# command measured it on an idle 2-core CPU; other work on the cores slows the trainings of
# 06-08 and 11 several times over.
TIMES = {
    "01": "5 s",
    "02": "5 s",
    "03": "10 s",
    "04": "10 s",
    "05": "10 s",
    "06": "6 min",
    "07": "5 min",
    "08": "27 min",
    "09": "5 s",
    "10": "5 s",
    "11": "3 min",
}
HELP = (
    "Time per notebook on an idle 2-core CPU: "
    + ", ".join(f"{number}: {time}" for number, time in TIMES.items())
    + "; about 40 minutes for the whole set on an idle CPU, nearly all of it the trainings of "
    "06-08 and 11, which slow down several times over when other work shares the cores. "
    "Notebook 10 draws from the grid results committed in results/experiments/: re-render it "
    "when they change."
)
WIDGET = "application/vnd.jupyter.widget-view+json"
ANSI_COLOUR = re.compile(r"\x1b\[[0-9;]*m")  # IPython colours its tracebacks


def notebooks(names=()):
    """The notebooks to render, in reading order: all, or those `names` pick (e.g. 06, 6,
    06_training, notebooks/06_training.ipynb)."""
    every = sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))
    chosen = []
    for name in names:
        stem = Path(name).stem
        picked = [p for p in every if stem in (p.stem, p.stem[:2], p.stem[:2].lstrip("0"))]
        if not picked:
            known = " ".join(p.stem for p in every)
            raise SystemExit(f"error: no notebook {name!r}: name one of {known}")
        chosen += picked
    return sorted(set(chosen)) if names else every


def kernel_environment():
    """This process's environment for the kernel: the full configuration, on NumPy."""
    environment = {key: value for key, value in os.environ.items() if key != "TINYBT_FAST"}
    environment["TINYBT_BACKEND"] = "numpy"  # the notebooks plot and index NumPy arrays
    return environment


def final_progress_bar(output, widgets):
    """A tqdm widget's display as the one line of text its last state reads, or None if
    `output` is no widget. widgets: the kernel's widget states, {model id: model}."""
    view = output.get("data", {}).get(WIDGET)
    box = widgets.get(view["model_id"], {}).get("state", {}) if view else {}
    children = box.get("children", [])  # tqdm's box holds [prefix, bar, suffix]
    if len(children) != 3:
        return None
    prefix, bar, suffix = (widgets[child.removeprefix("IPY_MODEL_")]["state"] for child in children)
    filled = round(10 * bar["value"] / bar["max"]) if bar["max"] else 0
    text = f"{prefix['value']}|{'█' * filled}{' ' * (10 - filled)}|{suffix['value']}"
    text = html.unescape(text).replace("\u2007", " ")  # the widget pads with figure spaces
    return nbformat.v4.new_output("stream", name="stderr", text=text + "\n")


def joined_streams(outputs):
    """`outputs` with each run of printed text to the same stream as one output, as a page
    shows it (the kernel sends what a cell prints in chunks)."""
    joined = []
    for output in outputs:
        previous = joined[-1] if joined else None
        if (
            output.output_type == "stream"
            and previous is not None
            and previous.output_type == "stream"
            and previous.name == output.name
        ):
            previous.text += output.text
        else:
            joined.append(output)
    return joined


def tidy_outputs(notebook):
    """Each progress-bar widget replaced by its final state, the widgets' states dropped, and
    the printed text joined."""
    widgets = notebook.metadata.pop("widgets", {})
    states = widgets.get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    for cell in notebook.cells:
        if cell.cell_type == "code":
            outputs = [final_progress_bar(output, states) or output for output in cell.outputs]
            cell.outputs = joined_streams(outputs)


def render(path):
    """Run one notebook in full and write it back; returns the seconds it took."""
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=None,  # notebook 08 trains for a quarter of an hour in one cell
        resources={"metadata": {"path": str(NOTEBOOKS_DIR)}},  # the kernel's working directory
        store_widget_state=True,
        record_timing=False,  # no timestamps that would change the file on every render
    )
    start = time.perf_counter()
    # The kernel's own stderr only warns that it talks over local TCP: kept off the progress
    # lines. What a cell prints to stderr still reaches its outputs.
    client.execute(env=kernel_environment(), stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    tidy_outputs(notebook)
    notebook.metadata["tinybt"] = {"rendered": "full", "seconds": round(seconds)}
    nbformat.write(notebook, path)
    return seconds


def main(argv=None):
    refuse_launcher(
        "tinybt.book", "every copy would render the same notebooks and write them at once"
    )
    parser = argparse.ArgumentParser(
        prog="python -m tinybt.book",
        description="Re-render the notebooks in place, in order, with the outputs of their "
        "full run (TINYBT_FAST unset), on the NumPy backend.",
        epilog=HELP,
    )
    parser.add_argument("names", nargs="*", metavar="NOTEBOOK", help="e.g. 06 or 06_training")
    paths = notebooks(parser.parse_args(argv).names)
    failed = []
    for number, path in enumerate(paths, 1):
        print(f"[{number}/{len(paths)}] {path.name} ...", end=" ", flush=True)
        try:
            seconds = render(path)
        except nbclient.exceptions.CellExecutionError as error:
            last_line = ANSI_COLOUR.sub("", str(error)).strip().splitlines()[-1]
            print(f"failed, left as it was: {last_line}", flush=True)
            failed.append(path.name)
            continue
        print(f"{seconds:.0f} s", flush=True)
    if failed:
        names = ", ".join(failed)
        print(f"error: {names} failed: run it in Jupyter to see which cell", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
