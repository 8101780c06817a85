"""A grid's record: the file of its finished runs, read, checked and appended to.

Each run is trained in its own folder, <root>/<grid>/<name>/, and the grid's record is
<root>/<grid>.jsonl, under one rule: one JSON line per finished, evaluated run (its name, tags,
configuration, last epoch's metrics, evaluation and seconds), unique by name, read back
tolerant of a torn last line and checked against one schema (`check_record`). So:
- a run whose line is there is done and skipped; a run another process is training holds a
  lock file, <root>/<grid>/<name>.lock (tinybt/runfolder.py), and is skipped too;
- a run that fails (its data cannot be read, training diverges) writes no line: it is reported,
  the other runs go on, and the command ends with an error naming it;
- a run interrupted half-way resumes from its checkpoint, if the checkpoint was made with the
  run's configuration; otherwise the run is refused (a failure, as above) and its folder kept;
- a torn last line (a process killed while writing it) is cut off before the next line is
  appended, and every line is appended whole, on a fresh line (a write a full disk cuts short
  is cut back off).
"""

import errno
import json
import math
import os
from pathlib import Path

from tinybt.errors import TinyBTError
from tinybt.runfolder import numbered_lines, wait_to_hold
from tinybt.study.grids import NO_COLOUR, REMOVALS
from tinybt.study.tags import (
    BARLOW_EMA,
    BARLOW_HYBRID,
    BARLOW_INVERSE_D,
    BARLOW_NOSTD,
    JITTER,
    NO_JITTER,
)


def results_path(root, name, fast=False):
    """The record of grid `name` under `root`: <name>.jsonl, or <name>-fast.jsonl for --fast."""
    return Path(root) / f"{folder_name(name, fast)}.jsonl"


def folder_name(name, fast):
    return f"{name}-fast" if fast else name


def read_results(path, fast=False):
    """The lines of a grid's record ([] if there is none yet), one per finished run.

    A torn last line, from a process killed while writing it, is dropped; so are lines of runs
    that failed ({"error": ...}, no "evaluation"), which older versions of tinybt wrote. Every
    other line must follow the schema of `check_record`. A line of a --fast run in the record of
    a real grid (or the other way round), or a second line for one run, is refused.
    """
    path = Path(path)
    if path.is_dir():
        raise TinyBTError(f"{path} is a folder, not a grid's record: move it out of the way")
    lines, names = [], set()
    for number, line in numbered_lines(path):
        if isinstance(line, dict) and "error" in line and "evaluation" not in line:
            continue
        check_record(line, f"line {number} of {path}")
        if line.get("fast", False) != fast:
            kind = "a --fast run" if line.get("fast") else "a run of the real grid"
            raise TinyBTError(
                f"line {number} of {path} is {kind} ({line['name']}): keep --fast records "
                "apart (the fast grids write <grid>-fast.jsonl); move that line out"
            )
        if line["name"] in names:
            raise TinyBTError(
                f"line {number} of {path} repeats run {line['name']}: delete one of its lines"
            )
        names.add(line["name"])
        lines.append(line)
    return lines


def check_record(line, where):
    """Refuse, in one line naming `where` (its file and line), a record's line that breaks the
    schema of a finished run, instead of a verdict it would change quietly. A line is an object
    with:

    - "name": a non-empty string;
    - "tags": an object with "method" (a string) and "seed" (an integer), and perhaps
      "dimension" and "batch" (positive integers), "augment" (a key of REMOVALS) and "colour"
      (JITTER or NO_JITTER); no other tag;
    - "evaluation": an object whose "learned" and "random_init" are objects with "knn" and
      "linear", each an accuracy: a finite fraction in [0, 1] (0.562, not 56.2);
    - "fast": true or false, if present (false when absent);
    - "config": an object, if present (records of tinybt's grids have one), whose settings
      imply each tag: "seed" its seed, "dimension" its projector's last width, "batch" its
      batch size, "method" its method and variant (`_implied_method`), "augment" the removal
      its augmentation changes make, "colour" whether they turn colour distortion off.
    """
    if not isinstance(line, dict):
        raise TinyBTError(f"{where} is {json.dumps(line)}, not a run's record: delete that line")
    _expect(where, "name", line.get("name"), lambda name: isinstance(name, str) and name)
    _check_tags(line.get("tags"), where)
    evaluation = line.get("evaluation")
    _expect(where, "evaluation", evaluation, lambda value: isinstance(value, dict))
    for encoder in ("learned", "random_init"):
        accuracies = evaluation.get(encoder)
        _expect(where, f"evaluation.{encoder}", accuracies, lambda value: isinstance(value, dict))
        for metric in ("knn", "linear"):
            _expect(where, f"evaluation.{encoder}.{metric}", accuracies.get(metric), _accuracy)
    _expect(where, "fast", line.get("fast", False), lambda value: isinstance(value, bool))
    if "config" in line:
        _expect(where, "config", line["config"], lambda value: isinstance(value, dict))
        _check_implied_tags(line["tags"], line["config"], where)


TAG_RULES = {  # tag: whether a value is one it can take
    "method": lambda value: isinstance(value, str) and value,
    "seed": lambda value: _integer(value) and value >= 0,
    "dimension": lambda value: _integer(value) and value > 0,
    "batch": lambda value: _integer(value) and value > 0,
    "augment": lambda value: value in REMOVALS,
    "colour": lambda value: value in (JITTER, NO_JITTER),
}


def _check_tags(tags, where):
    _expect(where, "tags", tags, lambda value: isinstance(value, dict))
    for key in ("method", "seed"):
        if key not in tags:
            raise TinyBTError(f"{where} has no tags.{key}: repair or delete that line")
    for key, value in tags.items():
        if key not in TAG_RULES:
            raise TinyBTError(f"{where} has an unknown tag {key!r}: repair or delete that line")
        _expect(where, f"tags.{key}", value, TAG_RULES[key])


def _check_implied_tags(tags, config, where):
    """Each tag of a line against the value its configuration implies."""
    implied = {
        "seed": lambda: config["seed"],
        "dimension": lambda: int(config["projector"].split("-")[-1]),
        "batch": lambda: config["batch_size"],
        "method": lambda: _implied_method(config),
        "augment": lambda: _implied_removal(config["augment_changes"]),
        "colour": lambda: (
            NO_JITTER if NO_COLOUR.items() <= config["augment_changes"].items() else JITTER
        ),
    }
    for key, value in tags.items():
        try:
            expected = implied[key]()
        except KeyError as error:  # a setting an older or newer tinybt did not write
            raise TinyBTError(
                f"{where} has no config.{error.args[0]}, which tags.{key} is made from: the "
                "line was written by another version of tinybt; delete it, and `python -m "
                "tinybt.experiments run` trains that run again"
            ) from None
        except (AttributeError, TypeError, ValueError):
            raise TinyBTError(
                f"{where} has a config without what tags.{key} is made from: repair or delete "
                "that line"
            ) from None
        if value != expected:
            raise TinyBTError(
                f"{where} has tags.{key} {json.dumps(value)}, but its config says "
                f"{json.dumps(expected)}: repair or delete that line"
            )


def _implied_method(config):
    """The method tag a configuration makes: its method, or Barlow Twins' variant."""
    if config["method"] != "barlow":
        return config["method"]
    if not config["standardize"]:
        return BARLOW_NOSTD
    if config["ema"]:
        return BARLOW_HYBRID if config["predictor"] else BARLOW_EMA
    dimension = int(config["projector"].split("-")[-1])
    return BARLOW_INVERSE_D if math.isclose(config["lambd"], 1.0 / dimension) else "barlow"


def _implied_removal(augment_changes):
    """The augment tag of the largest removal that `augment_changes` makes (on top of the
    preset's own changes)."""
    made = [tag for tag, removal in REMOVALS.items() if removal.items() <= augment_changes.items()]
    return max(made, key=lambda tag: len(REMOVALS[tag]))


def _integer(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _accuracy(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1


def _expect(where, field, value, rule):
    """A one-line error naming `where` unless `value` of `field` passes `rule`."""
    if value is None or not rule(value):
        shown = "missing" if value is None else json.dumps(value)
        raise TinyBTError(f"{where} has {field} {shown}: repair or delete that line")


def append_result(path, line):
    """Append `line` (a dict) to the record at `path` as one JSON line. Processes sharing the
    record take turns (a flock on it): each cuts off a torn last line, or ends a complete last
    line that lacks its newline, so its line starts on a fresh line, then appends it whole.
    A write that fails part way (a full disk) is cut back off, so the record keeps only whole
    lines, and raised as a one-line TinyBTError."""
    with open(path, "a+b") as file:
        wait_to_hold(file)
        try:
            _repair_tail(file)
            end = file.seek(0, os.SEEK_END)
            try:
                _write_all(file, (json.dumps(line) + "\n").encode())
            except OSError:
                file.truncate(end)
                raise
        except OSError as error:
            raise TinyBTError(
                f"could not write a run's line to {path} ({error.strerror or error}): "
                "free some space and run the grid again (the run is not recorded)"
            ) from None


def _write_all(file, data):
    """Write all of `data` at the end of `file`: os.write may write only part of it (a disk
    that fills up), and says so only in the count it returns."""
    while data:
        written = os.write(file.fileno(), data)
        if written == 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        data = data[written:]


def _repair_tail(file):
    """Make the record open as `file` ("a+b") end with a complete line, or be empty."""
    file.seek(0)
    data = file.read()
    if not data or data.endswith(b"\n"):
        return
    start = data.rfind(b"\n") + 1
    try:
        json.loads(data[start:])
    except ValueError:  # torn: cut it off
        file.truncate(start)
        return
    _write_all(file, b"\n")  # complete, only its newline missing


# ----- running a grid -----
