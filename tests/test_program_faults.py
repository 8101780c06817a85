"""The programs' faults outside a run's own files: Ctrl-C while a program starts, options that
differ between the processes of one launcher job, paths the file system refuses (a name over
its length limit, a file it will not read or write): each one clean `error:` line or a quiet
stop, never a traceback, a hang or a wrong result."""

import os
import subprocess
import sys

import pytest

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
