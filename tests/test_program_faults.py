"""The programs' faults outside a run's own files: Ctrl-C while a program starts, options that
differ between the processes of one launcher job, paths the file system refuses (a name over
its length limit, a file it will not read or write): each one clean `error:` line or a quiet
stop, never a traceback, a hang or a wrong result."""

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tinybt.errors import TinyBTError
from tinybt.study import records, runner

PROGRAMS = ["train", "evaluate", "experiments", "book", "exercises", "embed", "export"]


@pytest.mark.parametrize("program", PROGRAMS)
def test_ctrl_c_while_a_program_imports_numpy_stops_it_quietly(program, tmp_path):
    # A stand-in for NumPy that is interrupted while it imports, as Ctrl-C in a program's
    # first tenth of a second is: the program must stop with status 130 and print nothing.
    (tmp_path / "numpy").mkdir()
    (tmp_path / "numpy" / "__init__.py").write_text(
        "import os, signal, time\n"
        "os.kill(os.getpid(), signal.SIGINT)\n"
        "time.sleep(10)\n"
        "raise SystemExit('the interrupt was not handled')\n"
    )
    environment = {**os.environ, "PYTHONPATH": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", f"tinybt.{program}", "--help"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stdout, result.stderr) == (130, "", "")


LONG = "x" * 300  # over the 255 bytes a name in a path may have


@pytest.mark.parametrize(
    "arguments",
    [
        "train --preset tiny --out {tmp}/" + LONG,
        "train --preset tiny --data-dir {tmp}/" + LONG + " --out {tmp}/run",
        "evaluate {tmp}/" + LONG,
        "experiments verdicts --root {tmp}/" + LONG,
        "experiments run shuffle --fast --dry-run --root {tmp}/" + LONG,
        "export {tmp}/" + LONG + " --to {tmp}/encoder.onnx",
    ],
)
def test_a_name_over_the_file_systems_limit_is_one_line(arguments, tmp_path):
    program, *rest = arguments.format(tmp=tmp_path).split(" ")
    result = subprocess.run(
        [sys.executable, "-m", f"tinybt.{program}", *rest],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: File name too long: "), result.stderr
    assert result.stderr.endswith("(shorten it: a name in a path may be at most 255 bytes)\n")
    assert len(result.stderr.splitlines()) == 1


def test_verdicts_of_a_folder_that_does_not_exist_say_so(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "tinybt.experiments", "verdicts", "--root", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (
        f"error: no folder {tmp_path / 'nope'} holds the grids' records: give --root their "
        "folder (the default is relative to the repository's folder: run the command there)\n"
    )


def refuse_opening(monkeypatch, refused):
    """Make the study runner's open() refuse the file `refused`, as for a file without permission
    (as root, permissions refuse nothing)."""

    def opening(path, *args, **options):
        if Path(path) == refused:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return open(path, *args, **options)

    monkeypatch.setattr(runner, "open", opening, raising=False)


@pytest.mark.parametrize("write", [True, False])
def test_a_record_that_cannot_be_opened_is_refused_before_any_run(write, tmp_path, monkeypatch):
    record = records.results_path(tmp_path, "shuffle", fast=True)
    record.write_text("")
    refuse_opening(monkeypatch, record)
    access = "read and write" if write else "read"
    with pytest.raises(TinyBTError, match=f"cannot {access} the record {record} .Permission"):
        runner.run_grid("shuffle", tmp_path, fast=True, dry_run=not write, log=None)
    assert sorted(path.name for path in tmp_path.iterdir()) == [record.name]  # nothing trained
