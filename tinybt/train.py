"""Train:  python -m tinybt.train --preset shapes [--method barlow|byol|simclr|vicreg]
   or, with P processes sharing every batch:  mpiexec -n P python -m tinybt.train ...

Parses the options into a `Config` (tinybt/config.py) and hands it to `tinybt.run.train`, which
trains (or resumes) the run in its folder and evaluates it; see tinybt/run.py for the files
a run writes, and tinybt/distributed.py for what P processes share.
"""

import argparse
import traceback
from dataclasses import fields, replace

from tinybt import distributed
from tinybt.build import stored_data_dir
from tinybt.config import Config, stored_config
from tinybt.errors import OneLineArgumentParser, TinyBTError, path_error_line, run_program
from tinybt.presets import PRESETS
from tinybt.run import load_run_checkpoint, train
from tinybt.runfolder import checkpoint_to_resume

# ----- command line -----
# What --resume lets a flag change: where the run is and runs, not what it computes.
RESUME_MAY_CHANGE = ("out", "backend", "data_dir", "download", "evaluate")


def parse_args(argv=None):
    shapes = Config.preset("shapes")
    parser = OneLineArgumentParser(
        prog="python -m tinybt.train",
        description="Train Barlow Twins (or --method byol, simclr, vicreg). A preset sets every "
        "option; flags given after it win. "
        "Defaults shown are the shapes preset's.",
    )
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=None,
        help="a named recipe: shapes (the default; offline, minutes), cifar10 (the README's "
        "CIFAR-10 run), tiny (seconds, for tests)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its checkpoint.npz, with its stored options",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="start afresh in an --out that holds another run, deleting that run's files",
    )
    for f in fields(Config):
        flag = "--" + f.name.replace("_", "-")
        help = f"{f.metadata['help']} (default: {getattr(shapes, f.name)})"
        if f.type is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, help=help)
        elif f.type in (int, float, str):
            parser.add_argument(flag, type=f.type, help=help, metavar=f.name.upper())
    return parser.parse_args(argv)


def given_options(args):
    """{field: value} of the Config options given on the command line."""
    given = {f.name: getattr(args, f.name, None) for f in fields(Config)}
    return {name: value for name, value in given.items() if value is not None}


def config_from_args(args):
    """Defaults, then the preset, then the flags given on the command line; with --resume,
    the configuration stored in the run's checkpoint, which flags may not contradict."""
    given = given_options(args)
    if args.resume and args.overwrite:
        raise TinyBTError(
            "--resume continues the run in --out and --overwrite deletes it: give one of them"
        )
    if not args.resume:
        return replace(Config.preset(args.preset or "shapes"), **given)
    if args.preset is not None:
        raise TinyBTError("--resume continues the stored run's options: drop --preset")
    out = given.get("out", Config.preset("shapes").out)
    stored = load_run_checkpoint(checkpoint_to_resume(out))[2]["config"]
    try:
        config = stored_config(stored)
    except TypeError:
        raise TinyBTError(
            f"the checkpoint in {out} was written by another version of tinybt: "
            "resume it with that version"
        ) from None
    for name, value in given.items():
        if name not in RESUME_MAY_CHANGE and value != getattr(config, name):
            raise TinyBTError(
                f"--{name.replace('_', '-')} {value} contradicts the run in {out}, which has "
                f"{getattr(config, name)}: drop the flag to resume, or start a new run "
                "in another --out"
            )
    if "data_dir" not in given:  # a relative one is relative to where the run was started
        config = replace(config, data_dir=stored_data_dir(config, out))
    return replace(config, **{**given, "out": out})


def main(argv=None):
    with distributed.only_first_process_prints():
        args = parse_args(argv)
    try:
        distributed.same_on_every_process(vars(args), "options")
        config = distributed.on_process_zero(config_from_args, args)
        result = train(config, resume=args.resume, overwrite=args.overwrite)
    except TinyBTError as error:
        return distributed.stop(f"error: {error}", 2)
    except OSError as error:  # a path the file system refuses: one line (see errors.py)
        if path_error_line(error) is None:
            raise
        return distributed.stop(f"error: {path_error_line(error)}", 2)
    except KeyboardInterrupt:
        return 130
    except Exception:  # a bug: its traceback once, not once per process
        if not distributed.is_active():
            raise
        return distributed.stop(traceback.format_exc().rstrip(), 1)
    if not result["run"].writer:
        return 0
    evaluation = result["evaluation"]
    curves = ", training.png" if (result["run"].out / "training.png").exists() else ""
    print(
        f"wrote {config.out}/ (checkpoint.npz, metrics.jsonl, snapshots.npz, "
        f"cross_correlation.png/.gif{curves}{', evaluation.json' if evaluation else ''})"
    )
    return 0


if __name__ == "__main__":
    run_program(main)
