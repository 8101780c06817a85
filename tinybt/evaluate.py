"""Evaluate a run's encoder:  python -m tinybt.evaluate runs/NAME

Reads the run's checkpoint, rebuilds its network from the configuration stored there, and
reports kNN and linear-probe accuracy of the learned encoder beside the same encoder at its
random initialisation (see tinybt/probe.py for what the two measure).
"""

import json
import sys

from tinybt import backend
from tinybt.build import load_split
from tinybt.distributed import refuse_launcher
from tinybt.errors import OneLineArgumentParser, TinyBTError, run_program
from tinybt.evaluation import evaluate_run, load_trained


def evaluate_checkpoint(path, backend_name=None, data_dir=None, probe_epochs=100, log=print):
    """evaluate_run on the run whose folder (or checkpoint.npz) is `path`; `backend_name`
    and `data_dir`, if given, replace the stored ones (another machine, a moved dataset). The
    backend is, in order: `backend_name`, TINYBT_BACKEND, the run's own."""
    if probe_epochs < 1:
        raise TinyBTError(f"--probe-epochs must be at least 1, got {probe_epochs}")
    model, config, meta, checkpoint = load_trained(path, backend_name, data_dir)
    epochs_done = meta.get("epoch", config.epochs)
    backend.reuse_freed_memory()
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
