"""The run folder's lock: one winner however many processes claim at once, a killed run's
lock taken over, and a run stopped by bad input leaving its folder as it found it."""

import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tinybt import runfolder
from tinybt.config import Config
from tinybt.errors import TinyBTError
from tinybt.run import Run
from tinybt.runfolder import LOCK, claim, held_by_another, release

pytestmark = pytest.mark.host

CLAIMERS, TRIALS = 20, 60
DEAD = "999999999"  # over any system's largest process id: a process that has ended


def _claimer(lock, start, claimed, done, wins, trials):
    """One of the concurrent claimers: each trial, claim `lock` together with the others, count
    a win, and hold the lock until every claimer has tried."""
    for trial in range(trials):
        start.wait()
        won = claim(lock)
        if won:
            with wins.get_lock():
                wins[trial] += 1
        claimed.wait()
        if won:
            release(lock)
        done.wait()


@pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="needs fork (POSIX)"
)
@pytest.mark.parametrize("left_behind", [DEAD, "", None], ids=["stale", "empty", "none"])
def test_exactly_one_of_many_concurrent_claimers_wins(tmp_path, left_behind):
    """20 processes claim one lock at the same moment, 60 times; before each trial the lock is
    a killed run's (a process id that has ended), an empty file its creator never wrote, or no
    file at all. Every trial has exactly one winner."""
    context = multiprocessing.get_context("fork")
    lock = tmp_path / LOCK
    barriers = [context.Barrier(CLAIMERS + 1) for _ in range(3)]
    wins = context.Array("i", TRIALS)
    workers = [
        context.Process(target=_claimer, args=(lock, *barriers, wins, TRIALS))
        for _ in range(CLAIMERS)
    ]
    for worker in workers:
        worker.start()
    start, claimed, done = barriers
    try:
        for _ in range(TRIALS):
            if left_behind is not None:
                lock.write_text(left_behind)
            start.wait(timeout=60)
            claimed.wait(timeout=60)
            done.wait(timeout=60)
    finally:
        for worker in workers:
            worker.join(timeout=60)
    assert list(wins) == [1] * TRIALS
    assert not lock.exists(), "the last winner deleted its lock"


def test_a_lock_is_held_by_its_process_and_free_once_released(tmp_path):
    lock = tmp_path / LOCK
    assert claim(lock) and claim(lock), "a process may claim its own lock again"
    assert lock.read_text() == str(os.getpid()) and not held_by_another(lock)
    code = f"from tinybt.runfolder import claim; print(claim({str(lock)!r}))"
    other = [sys.executable, "-c", code]
    assert subprocess.run(other, capture_output=True, text=True).stdout.strip() == "False"
    release(lock)
    assert not lock.exists()
    assert subprocess.run(other, capture_output=True, text=True).stdout.strip() == "True"


@pytest.mark.parametrize(
    "text, held",
    [
        (str(os.getppid()), True),  # a live process, even one that holds no flock
        (DEAD, False),  # a killed run's
        ("not a process id", False),
        ("", False),  # its creator died before writing its id: no flock is held
    ],
)
def test_which_locks_count_as_held(tmp_path, text, held):
    lock = tmp_path / LOCK
    lock.write_text(text)
    assert held_by_another(lock) == held
    assert claim(lock) == (not held)
    if not held:
        assert lock.read_text() == str(os.getpid())
        release(lock)


def test_without_fcntl_a_lock_is_only_taken_by_creating_it(tmp_path, monkeypatch):
    monkeypatch.setattr(runfolder, "fcntl", None)
    lock = tmp_path / LOCK
    lock.write_text(DEAD)
    assert not claim(lock), "without flock a stale lock cannot be taken over safely"
    lock.unlink()
    assert claim(lock) and lock.read_text() == str(os.getpid())
    release(lock)
    assert not lock.exists()


def corrupt_cifar_config(tmp_path, out):
    archive = tmp_path / "cifar.tar.gz"
    archive.write_bytes(b"not a tar archive")
    return Config.preset("tiny", dataset="cifar10", data_dir=str(archive), out=str(out))


@pytest.mark.parametrize("existed", [False, True], ids=["new folder", "existing folder"])
def test_a_run_stopped_by_bad_input_frees_its_folder(tmp_path, existed):
    """The run claims its folder, then fails reading its data: no run.lock stays behind, and a
    folder the run created is removed again; one that existed is left as it was."""
    out = tmp_path / "run"
    if existed:
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    with pytest.raises(TinyBTError, match="not a .tar.gz archive"):
        Run(corrupt_cifar_config(tmp_path, out), progress=False, log=None)
    if existed:
        assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    else:
        assert not out.exists()


def test_the_program_stopped_by_bad_input_leaves_no_lock(tmp_path):
    out = tmp_path / "run"
    archive = tmp_path / "cifar.tar.gz"
    archive.write_bytes(b"not a tar archive")
    command = [sys.executable, "-m", "tinybt.train", "--preset", "tiny", "--dataset", "cifar10"]
    command += ["--data-dir", str(archive), "--out", str(out)]
    failed = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert failed.returncode == 2 and "not a .tar.gz archive" in failed.stderr
    assert not Path(out, LOCK).exists() and not out.exists()
