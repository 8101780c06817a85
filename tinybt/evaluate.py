"""Evaluate a run's encoder:  python -m tinybt.evaluate runs/NAME

Reads the run's checkpoint, rebuilds its network from the configuration stored there, and
reports kNN and linear-probe accuracy of the learned encoder beside the same encoder at its
random initialisation (see tinybt/probe.py for what the two measure).
"""

import json
import os
import sys
from dataclasses import replace
from pathlib import Path

from tinybt import backend
from tinybt.checkpoint import load_checkpoint
from tinybt.distributed import refuse_launcher
from tinybt.errors import OneLineArgumentParser, TinyBTError, run_program
from tinybt.evaluation import evaluate_run
from tinybt.recipe import Config, build_model, load_split, stored_data_dir, validate


def evaluate_checkpoint(path, backend_name=None, data_dir=None, probe_epochs=100, log=print):
    """evaluate_run on the run whose folder (or checkpoint.npz) is `path`; `backend_name`
    and `data_dir`, if given, replace the stored ones (another machine, a moved dataset). The
    backend is, in order: `backend_name`, TINYBT_BACKEND, the run's own."""
    if probe_epochs < 1:
        raise TinyBTError(f"--probe-epochs must be at least 1, got {probe_epochs}")
    path = Path(path)
    checkpoint = path / "checkpoint.npz" if path.is_dir() else path
    model_state, _, meta = load_checkpoint(checkpoint)
    try:
        config = Config(**meta["config"])
    except (KeyError, TypeError):  # no configuration, or one with other fields
        raise TinyBTError(
            f"{checkpoint} was written by another version of tinybt: evaluate it with that one"
        ) from None
    epochs_done = meta.get("epoch", config.epochs)
    if type(epochs_done) is not int or not 0 <= epochs_done <= config.epochs:
        raise TinyBTError(
            f"{checkpoint} has epoch {str(epochs_done)[:60]} in its meta, not a count from 0 to "
            f"{config.epochs}: it was damaged or written by hand; evaluate an earlier checkpoint"
        )
    backend_name = backend_name or os.environ.get("TINYBT_BACKEND") or config.backend
    data_dir = stored_data_dir(config, checkpoint.parent) if data_dir is None else data_dir
    config = replace(config, backend=backend_name, data_dir=data_dir)
    validate(config)
    backend.set_backend(config.backend)
    backend.reuse_freed_memory()
    model = build_model(config)
    model.load_state_dict(model_state)
    try:
        train_set, test_set = load_split(config, "train"), load_split(config, "test")
    except TinyBTError as error:  # a --data-dir of another dataset: say which one the run needs
        raise TinyBTError(f"the run trained on {config.dataset}: {error}") from None
    result = evaluate_run(
        model, config, train_set, test_set, probe_epochs, log, epochs_done=epochs_done
    )
    if epochs_done < config.epochs:
        result["unfinished"] = (
            f"the run stopped in epoch {epochs_done + 1} of {config.epochs} ({epochs_done} "
            f"finished): this is its encoder so far; continue it with "
            f"`python -m tinybt.train --resume --out {checkpoint.parent}`"
        )
        if log:
            log(result["unfinished"])
    return result


def main(argv=None):
    refuse_launcher(
        "tinybt.evaluate", "every copy would evaluate the whole encoder, each printing the same"
    )
    parser = OneLineArgumentParser(
        prog="python -m tinybt.evaluate",
        description="kNN and linear-probe accuracy of a run's encoder, beside a random one.",
    )
    parser.add_argument("run", help="a run folder (runs/NAME) or its checkpoint.npz")
    parser.add_argument(
        "--backend",
        choices=backend.BACKENDS,
        default=None,
        help="array library for the evaluation (default: the run's own)",
    )
    parser.add_argument(
        "--data-dir", default=None, help="where the dataset is, if it moved (default: the run's)"
    )
    parser.add_argument(
        "--probe-epochs",
        type=int,
        default=100,
        help="epochs of logistic regression for the linear probe (default: 100)",
    )
    args = parser.parse_args(argv)
    try:
        result = evaluate_checkpoint(args.run, args.backend, args.data_dir, args.probe_epochs)
    except TinyBTError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    run_program(main)
