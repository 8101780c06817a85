"""Export a run's encoder for use outside tinybt: an ONNX graph or a .safetensors file.

`export_run` restores the run's network from its checkpoint, as tinybt.evaluate does, reads
the training split's mean and std and image size (what evaluation normalises with), and
writes the file its suffix names: tinybt/onnx_export.py and tinybt/safetensors_export.py
say what each holds. `python -m tinybt.export` drives it.
"""

import importlib
import os
import tempfile
from importlib import metadata
from pathlib import Path

from tinybt.build import load_split
from tinybt.errors import TinyBTError
from tinybt.evaluation import load_trained
from tinybt.methods.predictor import WithPredictor
from tinybt.methods.target import WithTarget

HEADS = ("none", "projector")
EXTRA = 'install the export extra: pip install -e ".[export]"'


def export_run(run, to, head="none", unfinished=False, data_dir=None):
    """Write the encoder of the run in folder (or checkpoint.npz) `run` to `to` (.onnx or
    .safetensors); head="projector" adds the projector. An unfinished run (fewer epochs done
    than configured) is refused unless `unfinished`. Returns the path written."""
    to = Path(to)
    if to.suffix not in WRITERS:
        raise TinyBTError(f"--to {to} has an unknown suffix: give a .onnx or .safetensors file")
    if head not in HEADS:
        raise TinyBTError(f"--head {head} is not one of {', '.join(HEADS)}")
    write, package = WRITERS[to.suffix]
    _require(package, to)  # before the run is read: a missing package is answered at once
    model, config, meta, checkpoint = load_trained(run, "numpy", data_dir)
    epochs_done = meta.get("epoch", config.epochs)
    if epochs_done < config.epochs and not unfinished:
        raise TinyBTError(
            f"the run is unfinished ({epochs_done} of {config.epochs} epochs): continue it with "
            f"`python -m tinybt.train --resume --out {checkpoint.parent}`, or export its encoder "
            "so far with --unfinished"
        )
    try:
        train_set = load_split(config, "train")
    except TinyBTError as error:
        raise TinyBTError(f"the run trained on {config.dataset}: {error}") from None
    network = model.online if isinstance(model, (WithTarget, WithPredictor)) else model
    projector = network.projector if head == "projector" else None
    image_size = train_set.images.shape[1:3]
    write(to, network.encoder, config, train_set.mean, train_set.std, image_size, projector)
    return to


def tinybt_version():
    """The installed tinybt's version, as pip knows it."""
    try:
        return metadata.version("tinybt")
    except metadata.PackageNotFoundError:
        return "unknown"


def write_onnx(path, encoder, config, mean, std, image_size, projector=None):
    """The ONNX graph of `encoder` (and `projector`) into `path`: tinybt/onnx_export.py."""
    onnx = _require("onnx", path)
    from tinybt.onnx_export import onnx_model

    model = onnx_model(encoder, config, mean, std, image_size, projector, tinybt_version())
    onnx.checker.check_model(model)
    _write_atomically(path, model.SerializeToString())


def write_safetensors(path, encoder, config, mean, std, image_size, projector=None):
    """The arrays of `encoder` (and `projector`) into `path`: tinybt/safetensors_export.py."""
    save = _require("safetensors.numpy", path).save
    from tinybt.safetensors_export import safetensors_metadata, torch_state

    state = torch_state(encoder, "encoder")
    if projector is not None:
        state.update(torch_state(projector, "projector"))
    info = safetensors_metadata(config, mean, std, image_size, tinybt_version())
    _write_atomically(path, save(state, metadata=info))


WRITERS = {".onnx": (write_onnx, "onnx"), ".safetensors": (write_safetensors, "safetensors.numpy")}


def _require(package, path):
    """The module `package`, or a one-line error naming the extra that brings it."""
    try:
        return importlib.import_module(package)
    except ImportError:
        raise TinyBTError(
            f"writing {Path(path).name} needs the {package.partition('.')[0]} package: {EXTRA}"
        ) from None


def _write_atomically(path, data):
    """`data` (bytes) into `path` through a temporary file beside it, so a failed write leaves
    no half file; a folder that is missing or read-only is a one-line error."""
    folder = path.parent
    try:
        descriptor, temporary = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.")
    except OSError as error:
        raise TinyBTError(
            f"cannot write --to {path} ({error.strerror}): give a writable path"
        ) from None
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
        mask = os.umask(0)  # mkstemp makes the file 0600: give it the mode open() would
        os.umask(mask)
        os.chmod(temporary, 0o666 & ~mask)
        os.replace(temporary, path)
    except OSError as error:
        os.unlink(temporary)
        raise TinyBTError(
            f"cannot write --to {path} ({error.strerror}): give a writable path"
        ) from None
