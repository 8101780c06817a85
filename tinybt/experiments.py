"""Run the experiments of the review's claims:  python -m tinybt.experiments run GRID

GRID is one of budget, methods, augmentations, dimension, shuffle, shuffle-cifar, or all
(tinybt/grids.py defines them and states their budget). Finished runs are skipped, so the same
command resumes a grid; several processes may run one grid together, each taking runs no other
has started:

    OPENBLAS_NUM_THREADS=1 python -m tinybt.experiments run all &
    OPENBLAS_NUM_THREADS=1 python -m tinybt.experiments run all &

Results: one JSON line per run in <root>/<grid>.jsonl (default root results/experiments), read by
notebook 10.
"""

import sys

from tinybt.errors import OneLineArgumentParser, TinyBTError, run_program
from tinybt.grids import CIFAR_SUBSET, GRIDS, run_grid


def parse_args(argv=None):
    parser = OneLineArgumentParser(
        prog="python -m tinybt.experiments",
        description="Run a named grid of training runs; finished runs are skipped.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run (or continue) a grid")
    run.add_argument("grid", choices=(*GRIDS, "all"), help="which grid: all runs every one")
    run.add_argument("--dry-run", action="store_true", help="list the runs still to do, run none")
    run.add_argument("--only", nargs="+", metavar="NAME", help="run only these runs of the grid")
    run.add_argument(
        "--fast", action="store_true", help="tiny runs of a few seconds (tests, notebook 10)"
    )
    run.add_argument(
        "--root", default=None, help="folder of the runs and results (default: results/experiments)"
    )
    run.add_argument(
        "--shapes-dir", default="data", help="where the shapes images are cached (default: data)"
    )
    run.add_argument(
        "--cifar",
        default=CIFAR_SUBSET,
        help=f"the CIFAR-10 archive or folder of the CIFAR grids (default: {CIFAR_SUBSET})",
    )
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    root = args.root or ("runs/experiments-fast" if args.fast else "results/experiments")
    grids = GRIDS if args.grid == "all" else (args.grid,)
    if args.only and len(grids) > 1:
        print("error: --only names runs of one grid: name that grid, not all", file=sys.stderr)
        return 2
    try:
        for name in grids:
            run_grid(
                name,
                root,
                args.fast,
                args.only,
                args.dry_run,
                shapes_dir=args.shapes_dir,
                cifar=args.cifar,
            )
    except TinyBTError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    run_program(main)
