"""The experiment records' faults: programs that must run as one process refuse a launcher,
a record's line is written whole or not at all, and every line read is checked against the
record's schema, so a bad line stops the verdicts in one line instead of changing them."""

import errno
import importlib
import json
import os

import pytest

from tinybt.errors import TinyBTError
from tinybt.grids import append_result

ONE_PROCESS_PROGRAMS = ("experiments", "evaluate", "book", "exercises")


@pytest.mark.parametrize("program", ONE_PROCESS_PROGRAMS)
def test_one_process_programs_refuse_a_launcher(program, monkeypatch, capsys):
    main = importlib.import_module(f"tinybt.{program}").main
    monkeypatch.setenv("PMI_SIZE", "2")
    with pytest.raises(SystemExit) as stopped:
        main(["--help"])
    assert stopped.value.code == 2
    message = capsys.readouterr().err
    assert message.startswith(f"error: python -m tinybt.{program} runs as one process: start it")
    assert message.count("\n") == 1


def short_writes(monkeypatch, fails_after=None):
    """os.write that writes at most 5 bytes a call, and raises ENOSPC once `fails_after`
    bytes are written (a disk that fills up)."""
    real_write, written = os.write, [0]

    def write(fd, data):
        if fails_after is not None and written[0] >= fails_after:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        count = real_write(fd, data[:5])
        written[0] += count
        return count

    monkeypatch.setattr(os, "write", write)


def test_a_short_write_still_appends_the_whole_line(tmp_path, monkeypatch):
    path = tmp_path / "grid.jsonl"
    path.write_text('{"name": "first"}\n')
    short_writes(monkeypatch)
    append_result(path, {"name": "second", "evaluation": {}})
    lines = path.read_text().splitlines()
    assert [json.loads(line)["name"] for line in lines] == ["first", "second"]


def test_a_full_disk_leaves_no_torn_fragment(tmp_path, monkeypatch):
    path = tmp_path / "grid.jsonl"
    path.write_text('{"name": "first"}\n')
    short_writes(monkeypatch, fails_after=12)
    with pytest.raises(TinyBTError, match=f"could not write a run's line to {path}") as error:
        append_result(path, {"name": "second", "evaluation": {}})
    assert "\n" not in str(error.value)
    assert path.read_text() == '{"name": "first"}\n'
