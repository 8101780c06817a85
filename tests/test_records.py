"""The experiment records' faults: programs that must run as one process refuse a launcher,
a record's line is written whole or not at all, and every line read is checked against the
record's schema, so a bad line stops the verdicts in one line instead of changing them."""

import errno
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

from tinybt.errors import TinyBTError
from tinybt.study.grids import GRIDS, grid
from tinybt.study.records import append_result, check_record, read_results

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


RECORDS = Path(__file__).resolve().parents[1] / "results" / "experiments"


def a_bad_copy(tmp_path, change):
    """A copy of the committed records whose methods record has its first line passed through
    `change` (a function of the line, returning what to write instead)."""
    root = tmp_path / "experiments"
    root.mkdir()
    for path in RECORDS.glob("*.jsonl"):
        shutil.copy(path, root / path.name)
    path = root / "methods.jsonl"
    lines = path.read_text().splitlines()
    lines[0] = json.dumps(change(json.loads(lines[0])))
    path.write_text("\n".join(lines) + "\n")
    return root, path


def changed(keys, value):
    """A change that sets the field at `keys` (a path of keys) to `value`, or deletes it when
    `value` is DELETE."""

    def change(line):
        inner = line
        for key in keys[:-1]:
            inner = inner[key]
        if value is DELETE:
            del inner[keys[-1]]
        else:
            inner[keys[-1]] = value
        return line

    return change


DELETE = object()
LEARNED_LINEAR = ("evaluation", "learned", "linear")
BAD_LINES = {
    "a NaN accuracy": changed(LEARNED_LINEAR, float("nan")),
    "a percentage accuracy": changed(LEARNED_LINEAR, 56.2),
    "a negative accuracy": changed(LEARNED_LINEAR, -0.1),
    "an accuracy as a string": changed(("evaluation", "random_init", "knn"), "0.3"),
    "a seed as a string": changed(("tags", "seed"), "0"),
    "a seed that is not the config's": changed(("tags", "seed"), 7),
    "a method that is not the config's": changed(("tags", "method"), "barlow-ema"),
    "a tag nothing makes": changed(("tags", "colur"), "colour jitter"),
    "no name": changed(("name",), DELETE),
    "no tags": changed(("tags",), DELETE),
    "no evaluation": changed(("evaluation",), DELETE),
    "no learned accuracies": changed(("evaluation", "learned"), DELETE),
    "learned accuracies as a list": changed(("evaluation", "learned"), [0.5, 0.5]),
    "a null line": lambda line: None,
    "a bare number": lambda line: 0.5,
}


@pytest.mark.parametrize("change", BAD_LINES.values(), ids=BAD_LINES)
def test_a_bad_line_is_refused_naming_its_file_and_line(change, tmp_path):
    root, path = a_bad_copy(tmp_path, change)
    with pytest.raises(TinyBTError, match=f"^line 1 of {re.escape(str(path))} ") as error:
        read_results(path)
    assert "\n" not in str(error.value)


def test_verdicts_stop_in_one_line_on_a_bad_line(tmp_path):
    root, path = a_bad_copy(tmp_path, BAD_LINES["a percentage accuracy"])
    done = subprocess.run(
        [sys.executable, "-m", "tinybt.experiments", "verdicts", "--root", str(root)],
        capture_output=True,
        text=True,
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith(f"error: line 1 of {path} has evaluation.learned.linear 56.2")
    assert done.stderr.count("\n") == 1


@pytest.mark.parametrize("record", sorted(RECORDS.glob("*.jsonl")), ids=lambda path: path.name)
def test_the_committed_records_follow_the_schema(record):
    assert read_results(record)


def test_every_run_of_every_grid_has_the_tags_its_config_implies():
    for fast in (False, True):
        for name in GRIDS:
            for run, (tags, config) in grid(name, fast).items():
                line = {"name": run, "tags": tags, "config": asdict(config), "evaluation": {}}
                accuracies = {"knn": 0.5, "linear": 0.5}
                line["evaluation"] = {"learned": accuracies, "random_init": accuracies}
                check_record(line, f"{name}/{run}")


def test_a_bad_line_is_named_by_its_number_in_the_file(tmp_path):
    root, path = a_bad_copy(tmp_path, lambda line: line)
    lines = path.read_text().splitlines()
    lines[2] = lines[2].replace('"seed": 0', '"seed": "0"', 1)
    path.write_text("\n\n".join(lines) + "\n")  # blank lines between: line 3 is line 5
    with pytest.raises(TinyBTError, match=f"^line 5 of {re.escape(str(path))} has tags.seed"):
        read_results(path)
