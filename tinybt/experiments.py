"""Run the experiments of the review's claims:  python -m tinybt.experiments run GRID

GRID is one of budget, methods, augmentations, dimension, shuffle, shuffle-cifar, sweeps-cifar,
methods-cifar60, shuffle-cifar60, or all (tinybt/study/grids.py defines them; docs/CLAIMS.md
states their budget). Finished runs are skipped, so the same command resumes a grid; several
processes may run one grid together, each taking runs no other has started:

    OPENBLAS_NUM_THREADS=1 python -m tinybt.experiments run all &
    OPENBLAS_NUM_THREADS=1 python -m tinybt.experiments run all &

(started so, side by side, not by mpiexec: its copies would sum gradients across different
runs, so the program refuses a launcher).

Results: one JSON line per finished, evaluated run in <root>/<grid>.jsonl (default root
results/experiments), read by notebook 10 and by

    python -m tinybt.experiments verdicts

which prints each claim's verdict, the runs it used, its numbers, and the runs still missing;
then claims 1, 3 and 6 as the 15-epoch grids judge them, claims 2, 4 and 5 as the shapes grids
judge them, the verdicts a third seed turns, and those that counting the runs under the bar
would turn. `verdicts --markdown` prints instead the claims table's numbers and verdicts as
docs/CLAIMS.md holds them, and the README's line.
Exit status: 0; 1 when runs failed (each is reported, none recorded) or, for verdicts, when
runs any reading needs are missing (a claim waiting for them is inconclusive and names them);
2 for bad input (a record's line that breaks the schema of
tinybt.study.records.check_record included, named by its file and line).
"""

import os
import sys
from pathlib import Path

from tinybt.distributed import refuse_launcher
from tinybt.errors import OneLineArgumentParser, TinyBTError, run_program
from tinybt.study.comparison import (
    every_run_verdicts,
    fifteen_epoch_verdicts,
    shapes_verdicts,
    summary,
    table,
    turned,
    two_seed_verdicts,
    verdicts,
)
from tinybt.study.grids import CIFAR_SUBSET, GRIDS
from tinybt.study.records import read_results, results_path
from tinybt.study.runner import RunsFailed, check_root, run_grid


def parse_args(argv=None):
    parser = OneLineArgumentParser(
        prog="python -m tinybt.experiments",
        description="Run a named grid of training runs (finished runs are skipped), or print "
        "the verdicts on the review's claims.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run (or continue) a grid")
    run.add_argument("grid", choices=(*GRIDS, "all"), help="which grid: all runs every one")
    run.add_argument("--dry-run", action="store_true", help="list the runs still to do, run none")
    run.add_argument("--only", nargs="+", metavar="NAME", help="run only these runs of the grid")
    judge = commands.add_parser("verdicts", help="print the claims' verdicts from the results")
    run.add_argument(
        "--fast",
        action="store_true",
        help="tiny runs of a few seconds on the shapes data (tests, notebook 10), recorded "
        "apart from the real grids'",
    )
    judge.add_argument("--fast", action="store_true", help="judge from the --fast grids' records")
    judge.add_argument(
        "--markdown",
        action="store_true",
        help="print docs/CLAIMS.md's table of the numbers and verdicts, and the README's line",
    )
    for command in (run, judge):
        command.add_argument(
            "--root",
            default=None,
            help="folder of the runs and results (default: results/experiments, "
            "runs/experiments-fast with --fast)",
        )
    run.add_argument(
        "--shapes-dir", default="data", help="where the shapes images are cached (default: data)"
    )
    run.add_argument(
        "--cifar",
        default=None,
        help=f"the CIFAR-10 archive or folder of the CIFAR grids (default: {CIFAR_SUBSET}); "
        "not with --fast, which trains on the shapes data only",
    )
    return parser.parse_args(argv)


def main(argv=None):
    refuse_launcher(
        "tinybt.experiments",
        "each run of a grid trains as one process; several copies would train different runs "
        "while summing their gradients, and record wrong results",
    )
    args = parse_args(argv)
    root = args.root or ("runs/experiments-fast" if args.fast else "results/experiments")
    try:
        if args.command == "verdicts":
            status = print_verdicts(root, args.fast, args.markdown)
        else:
            status = run_grids(args, root)
        sys.stdout.flush()  # here, where a reader that stopped early is caught below
        return status
    except TinyBTError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the output's reader stopped early (`| head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def run_grids(args, root):
    """Run the grids that `args` names; 1 if runs failed (after trying every other run)."""
    grids = GRIDS if args.grid == "all" else (args.grid,)
    if args.only and len(grids) > 1:
        raise TinyBTError("--only names runs of one grid: name that grid, not all")
    if args.fast and args.cifar is not None:
        raise TinyBTError("--fast trains every grid on the shapes data: drop --cifar, or --fast")
    failures = []
    for name in grids:
        try:
            run_grid(
                name,
                root,
                args.fast,
                args.only,
                args.dry_run,
                shapes_dir=args.shapes_dir,
                cifar=args.cifar or CIFAR_SUBSET,
            )
        except RunsFailed as error:
            failures.append(str(error))
    for failure in failures:
        print(f"error: {failure}", file=sys.stderr)
    return 1 if failures else 0


def print_verdicts(root, fast, markdown=False):
    """Print the claims from the records under `root`: each claim's verdict, then the second
    readings (claims 1, 3 and 6 at 15 epochs, claims 2, 4 and 5 on shapes); or, with
    `markdown`, docs/CLAIMS.md's table of the numbers and verdicts and the README's line. 0, or
    1 if runs are missing."""
    if not Path(root).exists():
        raise TinyBTError(
            f"no folder {root} holds the grids' records: give --root their folder (the default "
            "is relative to the repository's folder: run the command there)"
        )
    results = {}
    for name in GRIDS:
        path = results_path(root, name, fast)
        check_root(root, path, write=False)
        results[name] = read_results(path, fast)
    judged = verdicts(results, fast)
    at_15, on_shapes = fifteen_epoch_verdicts(results, fast), shapes_verdicts(results, fast)
    if markdown:
        print("\n".join(table(results, fast)))
        print(f"\n{summary(results, fast)}")
    else:
        print_table(judged)
        print("At 15 epochs (the methods and shuffle-cifar grids):")
        print_table(at_15)
        print("On the shapes data:")
        print_table(on_shapes)
        by_third_seed = [
            f"claim {claim} ({verdict} from seeds 0 and 1 alone)"
            for claim, verdict in turned(results, two_seed_verdicts, fast).items()
        ]
        print(f"turned by a third seed: {', '.join(by_third_seed) or 'none'}")
        by_the_bar = [
            f"claim {claim} ({verdict} with them counted)"
            for claim, verdict in turned(results, every_run_verdicts, fast).items()
        ]
        print(f"turned by the runs under the bar: {', '.join(by_the_bar) or 'none'}")
    missing = [run for v in judged + at_15 + on_shapes for run in v.missing]
    if missing:
        if not markdown:
            print(f"missing runs: {', '.join(sorted(set(missing)))}")
        return 1
    if not markdown:
        print("missing runs: none")
    return 0


def print_table(judged):
    """Each Verdict as four lines: the claim, the runs used, the numbers, the verdict."""
    for v in judged:
        print(f"claim {v.claim}: {v.statement}")
        print(f"  runs used: {len(v.used)} of {len(v.runs)}")
        print(f"  numbers: {v.evidence}")
        print(f"  verdict: {v.verdict}")


if __name__ == "__main__":
    run_program(main)
