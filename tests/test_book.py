"""`python -m tinybt.book`: the notebooks re-rendered in place, in full, as a page shows them."""

import subprocess
import sys

import pytest

from tinybt import book

pytestmark = pytest.mark.host

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbclient")

PROBE = """\
import os
from tqdm.auto import tqdm

for step in tqdm(range(500), unit="step"):
    pass
print(os.environ.get("TINYBT_FAST"), os.environ.get("TINYBT_BACKEND"), end=" ", flush=True)
print(os.getcwd())
"""


def test_notebooks_are_picked_by_number_or_name_in_reading_order():
    every = book.notebooks()
    assert [path.name[:2] for path in every] == [f"{n:02d}" for n in range(1, len(every) + 1)]
    picked = book.notebooks(["07", "6", "notebooks/01_autograd.ipynb"])
    assert [path.name[:2] for path in picked] == ["01", "06", "07"]
    with pytest.raises(SystemExit, match="no notebook '99': name one of 01_autograd"):
        book.notebooks(["99"])


def test_help_states_how_long_each_notebook_and_the_set_take():
    completed = subprocess.run(
        [sys.executable, "-m", "tinybt.book", "--help"], capture_output=True, text=True
    )
    assert completed.returncode == 0, completed.stderr
    text = " ".join(completed.stdout.split())
    assert "minutes for the whole set" in text
    assert all(f"{number}: {time}" in text for number, time in book.TIMES.items())


@pytest.mark.slow
def test_render_runs_in_full_in_the_notebooks_folder_and_keeps_a_bar_final_state(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("TINYBT_FAST", "1")  # set in the shell: the render must drop it
    monkeypatch.setenv("TINYBT_BACKEND", "strict")
    path = tmp_path / "probe.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(PROBE)]), path)
    seconds = book.render(path)

    notebook = nbformat.read(path, as_version=4)
    assert notebook.metadata["tinybt"] == {"rendered": "full", "seconds": round(seconds)}
    assert "widgets" not in notebook.metadata
    bar, printed = notebook.cells[0].outputs
    assert bar.output_type == "stream" and bar.text.startswith("100%|██████████| 500/500 ["), bar
    assert printed.text == f"None numpy {book.NOTEBOOKS_DIR}\n"


@pytest.mark.slow
def test_a_failing_notebook_is_left_as_it_was_and_named(tmp_path, monkeypatch, capsys):
    path = tmp_path / "01_broken.ipynb"
    cell = nbformat.v4.new_code_cell("raise ValueError('the claim no longer holds')")
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), path)
    committed = path.read_bytes()
    monkeypatch.setattr(book, "NOTEBOOKS_DIR", tmp_path)
    assert book.main(["01"]) == 1
    out, err = capsys.readouterr()
    assert out == (
        "[1/1] 01_broken.ipynb ... failed, left as it was: ValueError: the claim no longer holds\n"
    )
    assert err == "error: 01_broken.ipynb failed: run it in Jupyter to see which cell\n"
    assert path.read_bytes() == committed
