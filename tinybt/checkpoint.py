"""Checkpoints: everything a training run needs to continue exactly where it stopped, in one
`.npz` file written atomically.

A checkpoint holds the model's parameters and running statistics ("model/..."), the optimiser's
moments ("optim/..."), and a JSON record ("meta") with the configuration, the epoch and batch
reached, the random generator's state and the running sums of the epoch in progress.

Atomic: the file is written under a temporary name `.<name>.<random>.tmp` in the same folder,
flushed to disk, and renamed over the old one (`os.replace` is atomic on POSIX and Windows);
then the folder itself is flushed, so the rename survives a power cut. A crash, Ctrl-C or full
disk while saving leaves the previous checkpoint intact, never half a file. Only SIGKILL or a
power cut during the write leaves the temporary file: `remove_stale_temporaries` clears it at
the next start.

Finite: a checkpoint is only written, and only read, when every array in it is finite. NaN or
inf anywhere (a weight, a running variance, an Adam moment) means the run diverged, and a
checkpoint that holds them would resume into NaN or evaluate to chance without a word.
"""

import contextlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from tinybt import backend
from tinybt.errors import TinyBTError

TEMPORARIES = ".*.*.tmp"  # the names atomic_savez writes before its rename, as a glob


class NonFiniteError(TinyBTError):
    """A checkpoint would hold, or holds, NaN or inf: the run diverged. `name` is the first
    array that does."""

    def __init__(self, message, name):
        super().__init__(message)
        self.name = name


def first_non_finite(arrays):
    """The name of the first array of {name: array} holding NaN or inf, or None if all are finite.

    Arrays may be on the host or the device; entries without a float dtype (step counts, the
    JSON record) are skipped.
    """
    for name, value in arrays.items():
        xp = backend.get_array_module(value)
        value = xp.asarray(value)
        if value.dtype.kind in "fc" and not bool(xp.isfinite(value).all()):
            return name
    return None


def atomic_savez(path, arrays):
    """Write {name: array} to the .npz file `path` so that it is either complete or absent."""
    atomic_write(path, lambda file: np.savez(file, **arrays))


def atomic_write(path, write):
    """Write the file `path` by calling `write(file)` on a binary file, so that it is either
    complete or absent.

    Rule: every file a run writes (checkpoints, snapshots, figures, metrics.jsonl,
    evaluation.json) goes through here: into a temporary file in the same folder, renamed over
    `path` once whole, so a full disk leaves the old file or nothing. The file gets the
    permissions of any file the user creates (0666 less the umask), not the 0600 of a temporary
    file. A failure to write (full disk, read-only folder) raises a one-line TinyBTError and
    leaves the folder as it was.
    """
    path = Path(path)
    if path.is_dir():
        raise TinyBTError(f"cannot write {path}: a folder has that name; move it or give another")
    temporary = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
        )
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except OSError as error:
        kept = "the previous file is intact" if path.is_file() else "nothing was written"
        raise TinyBTError(
            f"cannot write {path} ({error.strerror or error}): {kept}; free some disk space, "
            "or save to a writable folder (--out for train)"
        ) from None
    finally:
        # After os.replace the temporary name is gone; after a failure it must go too, even
        # where the folder has become unwritable (then nothing more can be done about it).
        if temporary is not None:
            with contextlib.suppress(OSError):
                Path(temporary).unlink(missing_ok=True)
    _sync_folder(path.parent)


def atomic_write_text(path, text):
    """atomic_write of the string `text`, as UTF-8."""
    atomic_write(path, lambda file: file.write(text.encode()))


def _umask():
    """The process's umask. POSIX can only read it by setting it, so it is set straight back."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _sync_folder(folder):
    """Flush `folder`'s entries to disk, so a rename in it survives a power cut.

    POSIX only: Windows cannot open a folder as a file (NTFS journals renames itself), and
    some file systems refuse to sync a folder; either way the file itself is already safe.
    """
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        handle = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)


def remove_stale_temporaries(folder):
    """Delete the temporary files (`.<name>.<random>.tmp`) that a killed `atomic_savez` left in
    `folder`; returns the paths removed (sorted), so the caller can say so.

    A SIGKILL or power cut while a checkpoint is written leaves its temporary file behind, and
    nothing else would ever remove it. Call this when a run starts, before anything is saved,
    and only in a folder no other process is writing to: another writer's file in progress
    looks the same.
    """
    removed = []
    for path in sorted(Path(folder).glob(TEMPORARIES)):
        # One that cannot be removed (a read-only folder) is harmless, and the run's own
        # check that it can write says what to do about the folder.
        if path.is_file():
            with contextlib.suppress(OSError):
                path.unlink()
                removed.append(path)
    return removed


def save_checkpoint(path, model, optimizer, meta):
    """Save model, optimiser and the JSON-serialisable dict `meta` to `path` atomically.

    Raises NonFiniteError, and writes nothing, when any array holds NaN or inf.
    """
    arrays = {f"model/{name}": value for name, value in model.state_dict().items()}
    arrays.update({f"optim/{name}": np.asarray(v) for name, v in optimizer.state_dict().items()})
    bad = first_non_finite(arrays)
    if bad is not None:
        raise NonFiniteError(
            f"not saving {path}: {bad} holds NaN or inf, so the run diverged; "
            "the previous checkpoint is kept; train again with a lower learning rate",
            bad,
        )
    arrays["meta"] = np.array(json.dumps(meta))
    atomic_savez(path, arrays)


def read_npz(path, what):
    """{name: array} of the .npz file `path`, read whole; a file that cannot be read raises a
    one-line TinyBTError ending with `what`, which says what to do instead."""
    try:
        with open(path, "rb") as file:
            # Every .npz is a zip archive. np.load would also read a .npy file or a pickle, and
            # for any other file suggest loading it as an unsafe pickle.
            if file.read(4) != b"PK\x03\x04":
                raise ValueError("not an .npz archive: it does not start as a zip file does")
            file.seek(0)
            with np.load(file) as archive:
                return {name: archive[name] for name in archive.files}
    except Exception as error:
        # Corrupt bytes can fail anywhere in zipfile or in numpy's header parser, and each
        # raises its own type (OSError, BadZipFile, ValueError, EOFError, NotImplementedError,
        # tokenize's TokenError, MemoryError for a huge shape): all mean the same to the user.
        reason = str(error).split("\n")[0] or type(error).__name__
        raise TinyBTError(f"cannot read {path} ({reason}): {what}") from None


def load_checkpoint(path):
    """(model state, optimiser state, meta) from a checkpoint written by `save_checkpoint`.

    Raises NonFiniteError when an array holds NaN or inf (written before checkpoints were
    checked): evaluating or resuming it would only give chance or NaN.
    """
    path = Path(path)
    if not path.is_file():
        raise TinyBTError(f"no checkpoint at {path}: give the .npz file or the run folder")
    arrays = read_npz(path, "it is not a checkpoint, or a truncated one; use an earlier one")
    if "meta" not in arrays:
        raise TinyBTError(f"{path} is an .npz file but not a tinybt checkpoint (no 'meta')")
    bad = first_non_finite(arrays)
    if bad is not None:
        raise NonFiniteError(
            f"{path} holds NaN or inf in {bad}: the run diverged before it was saved; "
            "train again with a lower learning rate",
            bad,
        )
    try:
        meta = json.loads(str(arrays["meta"]))
    except ValueError:  # JSONDecodeError, and a meta that is not text
        meta = None
    if not isinstance(meta, dict):
        raise TinyBTError(f"{path} has a 'meta' that is not tinybt's: give a tinybt checkpoint")
    model = {k.removeprefix("model/"): v for k, v in arrays.items() if k.startswith("model/")}
    optim = {k.removeprefix("optim/"): v for k, v in arrays.items() if k.startswith("optim/")}
    return model, optim, meta


def generator_state(rng):
    """A NumPy Generator's state as JSON-friendly data (its bit generator's dict)."""
    return rng.bit_generator.state


def restore_generator(state):
    """A NumPy Generator that continues exactly from `state`."""
    rng = np.random.Generator(getattr(np.random, state["bit_generator"])())
    rng.bit_generator.state = state
    return rng
