"""Checkpoints: everything a training run needs to continue exactly where it stopped, in one
`.npz` file written atomically.

A checkpoint holds the model's parameters and running statistics ("model/..."), the optimiser's
moments ("optim/..."), and a JSON record ("meta") with the configuration, the epoch and batch
reached, the random generator's state and the running sums of the epoch in progress.

Atomic: the file is written under a temporary name in the same folder and then renamed over
the old one (`os.replace` is atomic on POSIX and Windows), so a crash or Ctrl-C while saving
leaves the previous checkpoint intact, never half a file.
"""

import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from tinybt.errors import TinyBTError


def atomic_savez(path, arrays):
    """Write {name: array} to the .npz file `path` so that it is either complete or absent."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            np.savez(file, **arrays)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def save_checkpoint(path, model, optimizer, meta):
    """Save model, optimiser and the JSON-serialisable dict `meta` to `path` atomically."""
    arrays = {f"model/{name}": value for name, value in model.state_dict().items()}
    arrays.update({f"optim/{name}": np.asarray(v) for name, v in optimizer.state_dict().items()})
    arrays["meta"] = np.array(json.dumps(meta))
    atomic_savez(path, arrays)


def load_checkpoint(path):
    """(model state, optimiser state, meta) from a checkpoint written by `save_checkpoint`."""
    path = Path(path)
    if not path.is_file():
        raise TinyBTError(f"no checkpoint at {path}: give the .npz file or the run folder")
    try:
        with np.load(path) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise TinyBTError(
            f"{path} is not a readable checkpoint ({error}): "
            "it may be truncated; use an earlier one or start afresh"
        ) from None
    if "meta" not in arrays:
        raise TinyBTError(f"{path} is an .npz file but not a tinybt checkpoint (no 'meta')")
    model = {k.removeprefix("model/"): v for k, v in arrays.items() if k.startswith("model/")}
    optim = {k.removeprefix("optim/"): v for k, v in arrays.items() if k.startswith("optim/")}
    return model, optim, json.loads(str(arrays["meta"]))


def generator_state(rng):
    """A NumPy Generator's state as JSON-friendly data (its bit generator's dict)."""
    return rng.bit_generator.state


def restore_generator(state):
    """A NumPy Generator that continues exactly from `state`."""
    rng = np.random.Generator(getattr(np.random, state["bit_generator"])())
    rng.bit_generator.state = state
    return rng
