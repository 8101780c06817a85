"""Running a grid: train each of its runs that is neither recorded nor held by another
process, and record each that finishes, so that a grid stops and resumes across sessions and
several processes share it."""

import time
from dataclasses import asdict, replace
from pathlib import Path

from tinybt.checkpoint import load_checkpoint
from tinybt.config import Config, stored_config
from tinybt.errors import TinyBTError
from tinybt.run import train
from tinybt.runfolder import claim, held_by_another, release
from tinybt.study.grids import grid
from tinybt.study.records import append_result, folder_name, read_results, results_path


class RunsFailed(TinyBTError):
    """Runs of a grid that failed: each was reported as it failed, and none is in the record."""


def check_root(root, path, write):
    """One-line errors for a --root that cannot hold the grids, before any run trains: a
    file, a folder this process cannot write to (when `write`), a record that is a folder or
    that this process cannot read (and write)."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise TinyBTError(f"--root {root} is a file, not a folder: give a folder for the grids")
    if path.is_dir():
        raise TinyBTError(f"{path} is a folder, not a grid's record: move it out of the way")
    if path.exists():
        access = "read and write" if write else "read"
        try:
            open(path, "r+b" if write else "rb").close()
        except OSError as error:
            raise TinyBTError(
                f"cannot {access} the record {path} ({error.strerror}): give yourself {access} "
                "access to it"
            ) from None
    if not write:
        return
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise TinyBTError(
            f"cannot write to --root {root} ({error.strerror}): choose a folder you can write to"
        ) from None


def run_grid(name, root, fast=False, only=None, dry_run=False, log=print, **data):
    """Train every run of grid `name` that has no line in its record and no other process
    claims; record each that finishes (tinybt/study/records.py states the rule).

    only: run names to restrict it to. dry_run: only say what would run. log: where progress
    lines go (None: nowhere). data: shapes_dir and cifar, as `grid` takes them. Returns the
    names of the runs this call finished (or, with dry_run, would start); raises RunsFailed at
    the end, after every other run, if any failed.
    """
    runs = grid(name, fast, **data)
    log = log or (lambda *_: None)
    unknown = sorted(set(only or ()) - set(runs))
    if unknown:
        raise TinyBTError(
            f"grid {name} has no run {', '.join(unknown)}: `--dry-run` lists its runs"
        )
    path = results_path(root, name, fast)
    check_root(root, path, write=not dry_run)
    finished = {line["name"] for line in read_results(path, fast)}
    todo = [run for run in runs if run not in finished and (not only or run in only)]
    log(f"grid {name}: {len(runs)} runs, {len(finished & set(runs))} finished, {len(todo)} to do")
    folder = Path(root) / folder_name(name, fast)
    if dry_run:
        for run in todo:
            busy = held_by_another(folder / f"{run}.lock")
            log(f"  {run}{' (running elsewhere)' if busy else ''}")
        return todo
    done, failed = [], []
    for index, run in enumerate(todo, 1):
        tags, config = runs[run]
        config = replace(config, out=str(folder / run))
        lock = folder / f"{run}.lock"
        folder.mkdir(parents=True, exist_ok=True)
        if not claim(lock):
            continue
        try:
            # another process may have finished it since the record was read
            if run in {line["name"] for line in read_results(path, fast)}:
                continue
            log(f"[{index}/{len(todo)}] {name}/{run}")
            try:
                line = _train_one(run, tags, config, fast)
            except TinyBTError as error:
                log(f"  failed: {error}")
                failed.append(f"{run} ({error})")
                continue
            append_result(path, line)
            log(f"  {_summary(line)}")
            done.append(run)
        finally:
            release(lock)
    if failed:
        raise RunsFailed(
            f"grid {name}: {len(failed)} run(s) failed and are not recorded: "
            f"{'; '.join(failed)}; fix the cause and run the grid again"
        )
    return done


def _train_one(run, tags, config, fast):
    """One run trained and evaluated (resumed if a killed process left its checkpoint, made
    with this configuration), as the line its grid's record gets."""
    start = time.perf_counter()
    resume = (Path(config.out) / "checkpoint.npz").exists()
    if resume:
        _check_checkpoint_config(config)
    result = train(config, resume=resume, overwrite=not resume, progress=False, log=None)
    return {
        "name": run,
        "tags": tags,
        "fast": fast,
        "config": asdict(config),
        "final": result["metrics"][-1],
        "evaluation": result["evaluation"],
        "seconds": time.perf_counter() - start,
    }


# The fields a checkpoint may differ in from its grid's configuration and still be resumed.
RESUMABLE_DIFFERENCES = ("out", "backend")


def _check_checkpoint_config(config):
    """Refuse to resume a run folder whose checkpoint was made with another configuration (an
    edited grid, another --cifar or --shapes-dir): its result would not be this run's. A
    field the checkpoint lacks (one added to Config since) has its default there, as
    resuming gives it."""
    checkpoint = Path(config.out) / "checkpoint.npz"
    wanted = asdict(config)
    stored = load_checkpoint(checkpoint)[2].get("config", {})
    known = {key: value for key, value in stored.items() if key in wanted}
    saved = asdict(stored_config({**asdict(Config()), **known}))  # as resuming reads it
    differences = [
        f"{key} {saved.get(key)!r} there, {wanted[key]!r} here"
        for key in wanted
        if key not in RESUMABLE_DIFFERENCES and saved.get(key) != wanted[key]
    ]
    if differences:
        raise TinyBTError(
            f"not resumed: {checkpoint} was made with another configuration "
            f"({'; '.join(differences)}); delete {config.out} to train the run afresh"
        )


def _summary(line):
    learned, random_init = line["evaluation"]["learned"], line["evaluation"]["random_init"]
    return (
        f"linear {learned['linear']:.1%} (random encoder {random_init['linear']:.1%}), "
        f"kNN {learned['knn']:.1%}, {line['seconds']:.0f} s"
    )
