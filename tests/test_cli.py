"""Bad input to the programs, as a new user types it: exit status 2, one line, no traceback.

Each case runs `python -m tinybt.train` or `python -m tinybt.evaluate` in a subprocess, as a
user would. The subprocesses start together (a module-scoped fixture) so the whole table costs
a few seconds; each case is then its own test. Every case fails in validation or on its first
file, before any training.
"""

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields

import numpy as np
import pytest

from tinybt.config import Config

pytestmark = pytest.mark.host

TRAIN = [sys.executable, "-m", "tinybt.train"]
EVALUATE = [sys.executable, "-m", "tinybt.evaluate"]

# (name, command after TRAIN or EVALUATE, a phrase the message must hold). {tmp} is a fresh
# folder per case; {file} a file in it; {run} a folder holding a finished one-epoch run;
# {diverged} a copy of its checkpoint with an inf in it.
TRAIN_CASES = [
    ("zero epochs", "--epochs 0", "--epochs must be at least 1"),
    ("negative epochs", "--epochs -1", "--epochs must be at least 1"),
    ("epochs not a number", "--epochs abc", "invalid int value"),
    ("fractional epochs", "--epochs 1.5", "invalid int value"),
    ("zero batch", "--batch-size 0", "--batch-size must be at least 2"),
    ("batch of one", "--batch-size 1", "batch statistics need two images"),
    ("batch above the data", "--batch-size 300", "larger than the 256 training images"),
    ("zero projector", "--projector 0-0", "positive widths"),
    ("projector not numbers", "--projector abc", "widths like 512-512-512"),
    ("zero strides", "--strides 0-0", "positive widths"),
    ("strides not one per width", "--widths 8-16-32", "give one stride per stage"),
    ("zero snapshot", "--snapshot-size 0", "--snapshot-size must be at least 2"),
    ("zero blocks", "--blocks 0", "--blocks must be at least 1"),
    ("negative seed", "--seed -1", "--seed must be at least 0"),
    ("negative train size", "--train-size -5", "--train-size must be at least 0"),
    ("zero lr", "--lr 0", "--lr must be a finite, positive number"),
    ("negative lr", "--lr -1", "--lr must be a finite, positive number"),
    ("nan lr", "--lr nan", "--lr must be a finite"),
    ("infinite lr", "--lr inf", "--lr must be a finite"),
    ("negative weight decay", "--weight-decay -1", "--weight-decay must be a finite"),
    ("negative lambda", "--lambd -0.1", "--lambd must be a finite"),
    ("warm-up past the end", "--warmup-epochs 5", "warm up for at most the whole run"),
    ("unknown optimizer", "--optimizer adagrad", "--optimizer 'adagrad' is not one of"),
    ("unknown dataset", "--dataset mnist", "--dataset 'mnist' is not one of"),
    ("unknown backend", "--backend torch", "--backend 'torch' is not one of"),
    ("unknown augment", "--augment strong", "--augment 'strong' is not one of"),
    ("unknown preset", "--preset huge", "invalid choice"),
    ("unknown method", "--method moco", "--method 'moco' is not one of"),
    ("ema with simclr", "--method simclr --ema", "--ema is for barlow and vicreg"),
    ("predictor with simclr", "--method simclr --predictor", "--predictor is for barlow"),
    ("predictor without a target", "--predictor", "add --ema"),
    ("zero temperature", "--method simclr --temperature 0", "--temperature must be a finite, pos"),
    ("negative temperature", "--method simclr --temperature -0.5", "--temperature must be a fin"),
    ("temperature with barlow", "--temperature 0.2", "--temperature is an option of simclr, wh"),
    ("lambda with vicreg", "--method vicreg --lambd 0.1", "--lambd is an option of barlow, which"),
    ("no-standardize with vicreg", "--method vicreg --no-standardize", "--standardize is an opt"),
    ("vicreg weights with byol", "--method byol --cov-coeff 2", "--cov-coeff is an option of vicr"),
    (
        "all vicreg weights zero",
        "--method vicreg --sim-coeff 0 --std-coeff 0 --cov-coeff 0",
        "are all 0, so the loss is 0 and nothing is learnt",
    ),
    # Overflow: what overflowed first, at which step of which epoch, and the options feeding it
    (
        "lambda overflows the loss",
        "--lambd 1e300",
        "the loss became inf at step 0 (epoch 1 of 2): training diverged; this is before any "
        "update, so it comes from the loss's options (barlow: --lambd 1e+300",
    ),
    (
        "weight decay overflows the first update",
        "--weight-decay 1e300",
        "at step 0 (epoch 1 of 2): training diverged; it holds the first gradients, from the "
        "loss's options (barlow: --lambd 0.0051, --standardize True), with --weight-decay 1e+300",
    ),
    (
        "temperature overflows the gradients",
        "--method simclr --temperature 1e-30",
        "at step 0 (epoch 1 of 2): training diverged; it holds the first gradients, from the "
        "loss's options (simclr: --temperature 1e-30)",
    ),
    (
        "learning rate grows the weights",
        "--epochs 1 --optimizer sgd --lr 1e12 --warmup-epochs 0",
        "(epoch 1 of 1): training diverged; it comes from the loss's options (barlow: --lambd "
        "0.0051, --standardize True), or from weights grown by --lr 1e+12",
    ),
    ("tau base above 1", "--method byol --tau-base 1.5", "--tau-base must be in [0, 1]"),
    ("negative tau base", "--ema --tau-base -0.1", "--tau-base must be in [0, 1]"),
    (
        "tau base without a target",
        "--method simclr --tau-base 0.99",
        "--tau-base is an EMA target's rate, and --method simclr has no target: drop it",
    ),
    (
        "tau base without --ema",
        "--tau-base 0.99",
        "--tau-base is an EMA target's rate, and --method barlow has no target without --ema",
    ),
    ("negative vicreg weight", "--method vicreg --std-coeff -1", "--std-coeff must be a finite"),
    ("resume changing method", "--resume --method byol --out {run}", "contradicts the run"),
    ("unknown flag", "--epoch 3", "unrecognized arguments"),
    ("empty out", "--out ''", "must name a folder"),
    ("out is a file", "--out {file}", "is a file, not a folder"),
    ("out under a file", "--out {file}/run", "cannot write to --out"),
    ("cifar10 nowhere", "--dataset cifar10 --data-dir {tmp}/nowhere", "nowhere"),
    ("folder nowhere", "--dataset folder --data-dir {tmp}/nowhere", "nowhere"),
    ("run already there", "--out {run}", "continue it with --resume"),
    ("resume nothing", "--resume --out {tmp}/none", "nothing to resume"),
    ("resume with a preset", "--resume --preset tiny --out {run}", "drop --preset"),
    ("resume changing lr", "--resume --lr 0.5 --out {run}", "--lr 0.5 contradicts the run"),
    ("resume changing widths", "--resume --widths 4-8 --out {run}", "contradicts the run"),
]
EVALUATE_CASES = [
    ("no run given", "", "the following arguments are required"),
    ("run nowhere", "{tmp}/nowhere", "no checkpoint at"),
    ("not a checkpoint", "{file}", "it is not a checkpoint"),
    ("zero probe epochs", "{run} --probe-epochs 0", "--probe-epochs must be at least 1"),
    ("diverged run", "{diverged}", "holds NaN or inf in model/"),
    ("unknown backend", "{run} --backend torch", "invalid choice"),
]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A real one-epoch tiny run, for the cases that need one."""
    folder = tmp_path_factory.mktemp("cli") / "run"
    data = tmp_path_factory.getbasetemp() / "tinybt-data"
    subprocess.run(
        [
            *TRAIN,
            "--preset",
            "tiny",
            "--epochs",
            "1",
            "--data-dir",
            str(data),
            "--out",
            str(folder),
        ],
        check=True,
        capture_output=True,
        env=quiet_env(),
    )
    return folder


def quiet_env():
    return {**os.environ, "OPENBLAS_NUM_THREADS": "1", "TINYBT_BACKEND": "numpy"}


def command(program, arguments, tmp, run):
    """The case's command line. Training cases start from the tiny preset (but --resume, which
    takes the stored run's options) and write to a fresh folder unless they say otherwise."""
    file = tmp / "a-file.txt"
    file.write_text("not a folder, not a checkpoint")
    diverged = tmp / "diverged.npz"  # the run's checkpoint with an inf, as old runs could save
    with np.load(run / "checkpoint.npz") as checkpoint:
        arrays = dict(checkpoint)
    arrays["model/encoder.layers.1.running_var"][0] = np.inf
    np.savez(diverged, **arrays)
    words = [w.format(tmp=tmp, file=file, run=run, diverged=diverged) for w in arguments.split()]
    words = ["" if w == "''" else w for w in words]
    if program == "evaluate":
        return [*EVALUATE, *words]
    preset = [] if "--resume" in words else ["--preset", "tiny", "--no-evaluate"]
    data = ["--data-dir", str(tmp.parent / "tinybt-data"), "--out", str(tmp / "out")]
    return [*TRAIN, *preset, *data, *words]


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory, finished_run):
    """{(program, case name): CompletedProcess}, all cases run at once."""
    jobs = {}
    for program, cases in (("train", TRAIN_CASES), ("evaluate", EVALUATE_CASES)):
        for name, arguments, _ in cases:
            tmp = tmp_path_factory.mktemp("case")
            jobs[program, name] = command(program, arguments, tmp, finished_run)
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {
            key: pool.submit(
                subprocess.run, argv, capture_output=True, text=True, env=quiet_env(), timeout=120
            )
            for key, argv in jobs.items()
        }
        return {key: future.result() for key, future in futures.items()}


def check_one_line_error(completed, phrase):
    message = completed.stderr.strip()
    assert completed.returncode == 2, f"exit {completed.returncode}: {completed.stderr}"
    assert "Traceback" not in completed.stderr, completed.stderr
    assert "\n" not in message, f"more than one line:\n{message}"
    assert message.startswith("error: "), message
    assert phrase in message, f"{phrase!r} not in {message!r}"


@pytest.mark.parametrize("name, arguments, phrase", TRAIN_CASES, ids=[c[0] for c in TRAIN_CASES])
def test_train_refuses_bad_input_in_one_line(outcomes, name, arguments, phrase):
    check_one_line_error(outcomes["train", name], phrase)


@pytest.mark.parametrize(
    "name, arguments, phrase", EVALUATE_CASES, ids=[c[0] for c in EVALUATE_CASES]
)
def test_evaluate_refuses_bad_input_in_one_line(outcomes, name, arguments, phrase):
    check_one_line_error(outcomes["evaluate", name], phrase)


@pytest.mark.parametrize(
    "name",
    [
        "lambda overflows the loss",
        "weight decay overflows the first update",
        "temperature overflows the gradients",
    ],
)
def test_an_overflow_before_any_update_does_not_blame_the_learning_rate(outcomes, name):
    assert "--lr" not in outcomes["train", name].stderr


def test_refused_runs_leave_the_existing_run_untouched(outcomes, finished_run):
    """The cases above aimed at the finished run changed none of its files."""
    lines = (finished_run / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 1
    with np.load(finished_run / "checkpoint.npz") as checkpoint:
        assert "meta" in checkpoint.files


def test_every_option_has_a_line_of_help():
    completed = subprocess.run(
        [sys.executable, "-m", "tinybt.train", "--help"], capture_output=True, text=True
    )
    help_text = " ".join(completed.stdout.split())
    options = [f.name for f in fields(Config) if f.type is not dict]  # dicts: Python only
    for name in options:
        assert f"--{name.replace('_', '-')} " in help_text, name
    assert help_text.count("(default: ") == len(options)
