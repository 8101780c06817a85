"""A run's folder: which files it holds, the lock that keeps two runs out of one folder, and
reading its metrics back.

Files a run writes to its folder (tinybt/run.py writes them):
    checkpoint.npz      networks, optimiser, generator state, epoch (see tinybt/checkpoint.py)
    metrics.jsonl       one JSON line per epoch: loss, the method's terms, diag of C, img/s, ...
    snapshots.npz       C on a fixed held-out batch at log-spaced steps (steps, matrices)
    cross_correlation.png / .gif   those snapshots, converging to the identity
    evaluation.json     kNN and linear-probe accuracy, learned vs random encoder
    training.png        the loss and the kNN monitor's accuracy against epochs
    run.lock            while a process trains there: its process id

The lock. A process holds a lock file by holding an exclusive `fcntl.flock` on it, from `claim`
until `release` (or until it ends: the system drops the flock of a process that dies, even by
SIGKILL). Only the process holding the flock may decide about the file, so taking over a lock
that a killed run left is one step that two processes cannot both win. The file also holds the
holder's process id, for the messages, and a lock whose id names another live process counts
as held even without its flock. Where there is no `fcntl` (Windows), a lock is only ever taken
by creating the file (`open(..., "x")`), never taken over: delete a killed run's lock by hand,
as the in-use message says.
"""

import json
import os
from pathlib import Path

from tinybt.checkpoint import remove_stale_temporaries
from tinybt.errors import TinyBTError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

RUN_FILES = (
    "checkpoint.npz",
    "metrics.jsonl",
    "snapshots.npz",
    "cross_correlation.png",
    "cross_correlation.gif",
    "evaluation.json",
    "training.png",
)
LOCK = "run.lock"  # while a process trains in the folder: its id

_held = {}  # lock path (resolved) -> the open file whose flock this process holds


def process_alive(pid):
    """Whether process `pid` is still running. On POSIX signal 0 checks and sends nothing; on
    Windows os.kill would stop the process, so there every lock counts as held."""
    if os.name == "nt":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it runs, as another user
        return True
    return True


def _names_another_live_process(text):
    """Whether a lock's text is the id of a running process other than this one. An empty
    lock was created a moment ago, its id not yet written, and counts as held."""
    if not text.strip():
        return True
    try:
        pid = int(text)
    except ValueError:  # not a lock of ours
        return False
    return pid != os.getpid() and process_alive(pid)


def held_by_another(lock):
    """Whether the lock file `lock` (a Path) names another process that is still running. A
    lock this process holds, or whose process has ended (a killed run left it), is not. Only a
    first check, which reads the file and takes no flock (one would make a claim made at that
    moment fail): `claim` decides."""
    lock = Path(lock)
    if str(lock.resolve()) in _held:
        return False
    try:
        text = lock.read_text()
    except OSError:  # no lock; or no folder, which creating it will report
        return False
    if not text.strip() and fcntl is not None:
        return _flocked(lock)
    return _names_another_live_process(text)


def _flocked(lock):
    """Whether a process holds the flock of the lock file `lock`: an empty lock is being
    written by a live claimer, or was left by one that died before writing its id."""
    try:
        with open(lock) as file:
            fcntl.flock(file, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    return False


def claim(lock):
    """Take the lock file `lock` (a Path) for this process, writing its id there. True if this
    process now holds it (or already did); False if another live process does. A lock that a
    process which has ended left behind is taken over, race-free (see the module docstring).
    Hold it until `release(lock)`."""
    lock = Path(lock)
    key = str(lock.resolve())
    if key in _held:
        return True
    if fcntl is None:
        return _create(lock, key)
    while True:
        file = open(lock, "a+")  # kept open while the lock is held
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.close()
            return False
        # The holder before us may have deleted the file between our open and our flock: then
        # we hold a file no longer at `lock`, and try again with the one there now.
        try:
            current = os.stat(lock).st_ino
        except FileNotFoundError:
            current = None
        if current != os.fstat(file.fileno()).st_ino:
            file.close()
            continue
        file.seek(0)
        text = file.read()
        if text.strip() and _names_another_live_process(text):
            file.close()
            return False
        file.seek(0)
        file.truncate()
        file.write(str(os.getpid()))
        file.flush()
        _held[key] = file
        return True


def _create(lock, key):
    """claim without fcntl: only creating the file takes the lock."""
    try:
        with open(lock, "x") as file:  # "x": fails if the file exists, in one system call
            file.write(str(os.getpid()))
    except FileExistsError:
        return False
    _held[key] = None
    return True


def release(lock):
    """Give up the lock file `lock` that this process holds: delete it, then drop its flock
    (in that order, so that no other process can take a file that is about to vanish)."""
    lock = Path(lock)
    key = str(lock.resolve())
    if key not in _held:  # another process's, or nobody's: not ours to delete
        return
    file = _held.pop(key)
    lock.unlink(missing_ok=True)
    if file is not None:
        file.close()


def wait_to_hold(file):
    """Wait until this process holds the flock of the open `file`, which closing it gives up:
    for files several processes append to (a grid's record). Without fcntl (Windows) it
    returns at once."""
    if fcntl is not None:
        fcntl.flock(file, fcntl.LOCK_EX)


def in_use(out):
    """The error for a run folder that another run is training in."""
    return TinyBTError(
        f"{out} is in use by another run (its process id is in {out / LOCK}): wait for it to "
        "stop, or choose another --out; delete that file if no tinybt run is using the folder"
    )


def refuse_symlinks(out):
    """Rule: a run's files (RUN_FILES and run.lock) that are symbolic links are refused, before
    any work: writing through one would replace a file outside the run folder."""
    for name in (*RUN_FILES, LOCK):
        if (Path(out) / name).is_symlink():
            raise TinyBTError(
                f"{Path(out) / name} is a symbolic link: a run writes only its own files; "
                "replace the link with the file itself, or choose another --out"
            )


def prepare_folder(out, resume, overwrite):
    """Check that the run folder `out` can be used, before any work; create it if needed.

    A new run refuses a folder that holds another run's files, unless `overwrite` (then those
    files are deleted); `resume` needs the folder's checkpoint. The folder must be writable:
    finding that out after an epoch of training would lose the epoch. The folder is claimed
    for this process (its lock, run.lock, which `free_folder` gives up) before anything in it
    is deleted: with --overwrite, the old run's files, and temporary files that a killed run
    left while saving. A second run started before the first has saved anything would
    otherwise find none of its files and write over them.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise TinyBTError(f"--out {out} is a file, not a folder: give a folder for the run")
    refuse_symlinks(out)
    if held_by_another(out / LOCK):  # first: its files are a live run's, to leave alone
        raise in_use(out)
    existing = [name for name in RUN_FILES if (out / name).exists()]
    if resume:
        checkpoint_to_resume(out)
    if existing and not resume and not overwrite:
        raise TinyBTError(
            f"{out} already holds a run ({', '.join(existing)}): continue it with --resume, "
            "choose another --out, or replace it with --overwrite"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
        if not claim(out / LOCK):  # before deleting anything: a run may have started since
            raise in_use(out)
        if overwrite and not resume:
            for name in existing:
                (out / name).unlink()
        remove_stale_temporaries(out)
    except OSError as error:
        raise TinyBTError(
            f"cannot write to --out {out} ({error.strerror}): choose a folder you can write to"
        ) from None
    return out


def free_folder(out, created=False):
    """Give up the run folder `out` that `prepare_folder` claimed. created: the folder did not
    exist before this run, so if nothing but the lock was written there (the run stopped on
    bad input before saving), it is removed too, leaving things as they were."""
    out = Path(out)
    release(out / LOCK)
    if created and out.is_dir() and not any(out.iterdir()):
        out.rmdir()


def checkpoint_to_resume(out):
    """The checkpoint of the run in folder `out`, which --resume continues."""
    refuse_symlinks(out)
    path = Path(out) / "checkpoint.npz"
    if not path.is_file():
        raise TinyBTError(
            f"nothing to resume: {out} holds no checkpoint.npz; give the run's folder as --out"
        )
    return path


def read_metrics(path):
    """The per-epoch records of metrics.jsonl. A torn last line (the process was killed while
    writing it) is dropped: the checkpoint, written after it, knows where the run stands."""
    return [record for _, record in numbered_lines(path)]


def numbered_lines(path):
    """(line number in the file, record) for each JSON line of `path` ([] if it does not
    exist), as `read_metrics` reads them: blank lines skipped, a torn last line dropped."""
    path = Path(path)
    if not path.exists():
        return []
    lines = [(n, line) for n, line in enumerate(path.read_text().splitlines(), 1) if line.strip()]
    records = []
    for index, (number, line) in enumerate(lines, 1):
        try:
            records.append((number, json.loads(line)))
        except json.JSONDecodeError:
            if index < len(lines):
                raise TinyBTError(
                    f"line {number} of {path} is not JSON: repair or delete that line"
                ) from None
    return records
