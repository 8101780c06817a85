"""Judging a trained run: its encoder beside the same encoder at its random start.

The probes themselves (kNN and a linear probe on frozen features) are in tinybt/probe.py; this
module rebuilds the run's starting network from its configuration, which the probes know
nothing of. `python -m tinybt.evaluate` and the end of every run (tinybt/run.py) call it.
"""

import os
from dataclasses import replace
from pathlib import Path

from tinybt import backend
from tinybt.build import build_model, stored_data_dir
from tinybt.checkpoint import load_checkpoint
from tinybt.config import stored_config, validate
from tinybt.errors import TinyBTError
from tinybt.probe import evaluate_encoder, format_table

TOO_CLOSE = 0.02  # a learned encoder this close to its random start has not learnt yet


def evaluate_run(model, config, train_set, test_set, probe_epochs=100, log=print, epochs_done=None):
    """Accuracies of the trained encoder and of the same encoder at its initialisation (the
    run's own starting point, rebuilt from its seed); a note when the run is too short.
    epochs_done: the epochs the model has trained, if fewer than config.epochs (a run that
    was stopped)."""
    epochs_done = config.epochs if epochs_done is None else epochs_done
    learned = evaluate_encoder(model.encoder, train_set, test_set, probe_epochs)
    random_init = evaluate_encoder(build_model(config).encoder, train_set, test_set, probe_epochs)
    result = {
        "learned": learned,
        "random_init": random_init,
        "train_images": len(train_set),
        "test_images": len(test_set),
    }
    if learned["linear"] < random_init["linear"] + TOO_CLOSE:
        result["note"] = (
            f"after {epochs_done} epoch{'' if epochs_done == 1 else 's'} the learned encoder "
            "is not yet better than its random initialisation: the run is too short to judge; "
            "train longer (--epochs; the README's shapes run takes 50 epochs, the CIFAR-10 run 100)"
        )
    if log:
        log(format_table(result))
    return result


def load_trained(path, backend_name=None, data_dir=None, data_flag="--data-dir"):
    """(model, config, meta, checkpoint) of the run whose folder (or checkpoint.npz) is `path`:
    its network rebuilt from the configuration stored in the checkpoint, with the trained
    weights. The backend is, in order: `backend_name`, TINYBT_BACKEND, the run's own; the data
    folder `data_dir` if given (a moved dataset), else the run's own, found from its folder;
    `data_flag` is the program's option that gives it, for the message when it is not found."""
    path = Path(path)
    checkpoint = path / "checkpoint.npz" if path.is_dir() else path
    model_state, _, meta = load_checkpoint(checkpoint)
    try:
        config = stored_config(meta["config"])
    except (KeyError, TypeError):  # no configuration, or one with other fields
        raise TinyBTError(
            f"{checkpoint} was written by another version of tinybt: use it with that one"
        ) from None
    epochs_done = meta.get("epoch", config.epochs)
    if type(epochs_done) is not int or not 0 <= epochs_done <= config.epochs:
        raise TinyBTError(
            f"{checkpoint} has epoch {str(epochs_done)[:60]} in its meta, not a count from 0 to "
            f"{config.epochs}: it was damaged or written by hand; use an earlier checkpoint"
        )
    backend_name = backend_name or os.environ.get("TINYBT_BACKEND") or config.backend
    if data_dir is None:
        data_dir = stored_data_dir(config, checkpoint.parent, data_flag)
    config = replace(config, backend=backend_name, data_dir=data_dir)
    validate(config)
    backend.set_backend(config.backend)
    model = build_model(config)
    model.load_state_dict(model_state)
    return model, config, meta, checkpoint
