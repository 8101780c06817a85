"""`mpiexec -n 2 python -m tinybt.train` trains the one-process run: the same losses epoch by
epoch and the same final weights, for every method, within float32 summation error; it resumes
exactly after its launcher is killed and after Ctrl-C; its failures are one line.

The tolerance. Two processes add the same numbers in another order (each sums its half of the
batch, then the halves are added), so every float32 step differs from the one-process step by
rounding, about 1e-7 of each value, and eight Adam steps at lr 1e-2 carry that along:
measured, the losses agree to 3e-7 of their size and the weights to 4e-6; the checks allow
LOSS_RTOL and WEIGHT_ATOL. Runs of two processes compared with each other agree bit for bit.
"""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tinybt.checkpoint import load_checkpoint
from tinybt.config import Config, has_target
from tinybt.run import train
from tinybt.runfolder import LOCK, held_by_another

from .test_distributed import MPIEXEC, ROOT, launched_env, needs_mpi, without_launcher

pytestmark = pytest.mark.host

LOSS_RTOL = 1e-5  # relative, per epoch's mean loss
WEIGHT_ATOL = 2e-5  # absolute, for weights of size up to about 1

# (name, Config changes): every method, Barlow Twins against a target through a predictor, and
# Barlow Twins with SGD: Adam and LARS are blind to a constant scale of the gradient (Adam
# divides it by its own size, LARS by its norm), so gradients averaged over the processes
# instead of summed would train their run; SGD steps by the gradient itself (at a learning rate
# whose steps keep the rounding of the sums, taken in another order, within LOSS_RTOL).
VARIANTS = [
    ("barlow", {}),
    ("vicreg", {"method": "vicreg"}),
    ("simclr", {"method": "simclr"}),
    ("byol", {"method": "byol"}),
    ("simsiam", {"method": "simsiam"}),
    ("barlow --ema --predictor", {"ema": True, "predictor": True}),
    ("barlow --optimizer sgd", {"optimizer": "sgd", "lr": 0.002}),
]
# A standardised loss (Barlow Twins) cannot see a shift of every embedding, so the bias of
# the predictor's last layer, which only shifts them, has a gradient of exactly 0 in exact
# arithmetic. Computed, it is rounding noise of about 1e-9, different in each summation
# order, and Adam divides it by its own size: the bias takes steps of about lr in directions
# the noise picks. It is left out of the comparison; the loss cannot tell its values apart.
ZERO_GRADIENT = {"barlow --ema --predictor": ("predictor.3.bias",)}

# The tiny preset cut to 4 steps an epoch, with a learning rate and EMA rate (as the method
# tests use; τ_base 0.9 where there is a target) that move every method's weights in so few
# steps.
TINY = dict(
    train_size=128, epochs=2, lr=0.01, warmup_epochs=0.5, snapshot_size=8,
    evaluate=False,
)  # fmt: skip


def as_flags(options):
    """Config options {name: value} as the command line gives them."""
    flags = []
    for name, value in options.items():
        flag = name.replace("_", "-")
        if isinstance(value, bool):
            flags.append(f"--{flag}" if value else f"--no-{flag}")
        else:
            flags += [f"--{flag}", str(value)]
    return flags


def run_options(data_dir, out, **changes):
    """The tiny run's options with `changes`, its data in `data_dir`, its folder `out`."""
    options = {**TINY, "data_dir": str(data_dir), "out": str(out), **changes}
    return {**options, "tau_base": 0.9} if has_target(Config(**options)) else options


def launch(processes, *arguments):
    """`mpiexec -n processes python ARGUMENTS`, started (a Popen)."""
    return subprocess.Popen(
        [MPIEXEC, "-n", str(processes), sys.executable, *arguments], cwd=ROOT,
        env=launched_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def training(options):
    """The arguments of `python -m tinybt.train --preset tiny OPTIONS`."""
    return ["-m", "tinybt.train", "--preset", "tiny", *as_flags(options)]


def resuming(out):
    """The arguments of `python -m tinybt.train --resume --out OUT`."""
    return ["-m", "tinybt.train", "--resume", "--out", str(out)]


def finish(process, timeout=300):
    """Wait for a launched run to end: (exit status, stdout, stderr)."""
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def losses(out):
    return [json.loads(line)["loss"] for line in (Path(out) / "metrics.jsonl").open()]


def weights(out):
    return load_checkpoint(Path(out) / "checkpoint.npz")[0]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


@needs_mpi
@pytest.mark.slow
@pytest.mark.parametrize("name, changes", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_two_processes_train_the_one_process_run(tmp_path, data_dir, name, changes):
    one, two = tmp_path / "one", tmp_path / "two"
    train(Config.preset("tiny", **run_options(data_dir, one, **changes)), progress=False, log=None)
    status, _, err = finish(launch(2, *training(run_options(data_dir, two, **changes))))
    assert status == 0, err
    np.testing.assert_allclose(losses(two), losses(one), rtol=LOSS_RTOL)
    one_weights, two_weights = weights(one), weights(two)
    assert one_weights.keys() == two_weights.keys()
    for key in one_weights.keys() - set(ZERO_GRADIENT.get(name, ())):
        np.testing.assert_allclose(
            two_weights[key], one_weights[key], rtol=0, atol=WEIGHT_ATOL, err_msg=key
        )


@needs_mpi
@pytest.mark.slow
def test_per_process_statistics_train_another_run(tmp_path, data_dir):
    """--statistics per-process: each process standardises and correlates its own share, and
    the run leaves the one-process run's from its first epoch."""
    one, two = tmp_path / "one", tmp_path / "two"
    train(Config.preset("tiny", **run_options(data_dir, one)), progress=False, log=None)
    options = run_options(data_dir, two, statistics="per-process")
    status, _, err = finish(launch(2, *training(options)))
    assert status == 0, err
    first_one, first_two = losses(one)[0], losses(two)[0]
    assert abs(first_two - first_one) > 1000 * LOSS_RTOL * abs(first_one), (first_one, first_two)


# Long enough that a run is still training a moment after its first checkpoint, on a fast
# machine too (an epoch of the tiny run takes a few tenths of a second there).
INTERRUPTED_EPOCHS = 8


def wait_for_checkpoint(out, timeout=240):
    """Wait until the run in `out` has saved its first checkpoint (after its first epoch), and
    a tenth of a second more, into its second epoch."""
    deadline = time.monotonic() + timeout
    while not (Path(out) / "checkpoint.npz").exists():
        assert time.monotonic() < deadline, f"{out} saved no checkpoint in {timeout} s"
        time.sleep(0.05)
    time.sleep(0.1)


def wait_until_free(out, timeout=30):
    """Wait until no live process holds the run folder `out`."""
    deadline = time.monotonic() + timeout
    while held_by_another(Path(out) / LOCK):
        assert time.monotonic() < deadline, f"a process of the stopped run still holds {out}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def whole_run(tmp_path_factory, data_dir):
    """The run in two processes, never interrupted: what a resumed run must equal."""
    out = tmp_path_factory.mktemp("whole")
    options = run_options(data_dir, out, epochs=INTERRUPTED_EPOCHS)
    status, _, err = finish(launch(2, *training(options)))
    assert status == 0, err
    return out


def assert_same_run(out, whole):
    """The run in `out` ended exactly where `whole` did: losses and weights bit for bit."""
    assert losses(out) == losses(whole)
    expected = weights(whole)
    for key, value in weights(out).items():
        assert np.array_equal(value, expected[key]), key


@needs_mpi
@pytest.mark.slow
def test_a_run_whose_launcher_is_killed_mid_epoch_resumes_exactly(tmp_path, data_dir, whole_run):
    process = launch(2, *training(run_options(data_dir, tmp_path, epochs=INTERRUPTED_EPOCHS)))
    wait_for_checkpoint(tmp_path)
    process.kill()  # SIGKILL: nothing is saved, the launcher's processes end with it
    process.communicate()
    wait_until_free(tmp_path)
    assert len(losses(tmp_path)) < INTERRUPTED_EPOCHS, "the run ended before it was killed"
    status, _, err = finish(launch(2, *resuming(tmp_path)))
    assert status == 0, err
    assert_same_run(tmp_path, whole_run)


@needs_mpi
@pytest.mark.slow
def test_ctrl_c_saves_once_and_the_run_resumes_exactly(tmp_path, data_dir, whole_run):
    process = launch(2, *training(run_options(data_dir, tmp_path, epochs=INTERRUPTED_EPOCHS)))
    wait_for_checkpoint(tmp_path)
    process.send_signal(signal.SIGINT)  # Ctrl-C: the launcher passes it to every process
    status, out, err = finish(process)
    assert (out + err).count("interrupted: saved") == 1, out + err
    assert len(losses(tmp_path)) < INTERRUPTED_EPOCHS, "the run ended before Ctrl-C"
    status, _, err = finish(launch(2, *resuming(tmp_path)))
    assert status == 0, err
    assert_same_run(tmp_path, whole_run)


@needs_mpi
def test_a_batch_that_does_not_split_is_refused_once_in_one_line(tmp_path, data_dir):
    status, out, err = finish(launch(2, *training(run_options(data_dir, tmp_path, batch_size=31))))
    assert status == 2
    assert err.splitlines() == [
        "error: --batch-size 31 does not split into 2 equal shares: use a multiple of 2 "
        "(--batch-size is the whole batch, over all processes)"
    ], err


@needs_mpi
def test_a_process_that_fails_alone_stops_the_others_in_one_line():
    """Process 1 fails while process 0 waits for it in a sum: process 1 says so, naming
    itself, and its end stops process 0 instead of leaving it waiting for ever."""
    code = (
        "import sys\n"
        "from tinybt import distributed\n"
        "if distributed.rank() == 1:\n"
        "    sys.exit(distributed.stop('error: process 1 cannot read its data', 2))\n"
        "distributed.any_process(False)\n"
    )
    started = time.monotonic()
    status, _, err = finish(launch(2, "-c", code), timeout=60)
    assert status == 2
    assert err.splitlines() == ["process 1 of 2: error: process 1 cannot read its data"], err
    assert time.monotonic() - started < 30


def test_launched_without_mpi4py_the_run_says_what_to_install_once():
    """Each of the launcher's processes knows its number from the launcher alone; the first
    says what to install, the others keep quiet."""
    code = (
        "import sys; sys.modules['mpi4py'] = None\n"  # as if it were not installed
        "from tinybt.train import main\n"
        "sys.exit(main(['--preset', 'tiny']))\n"
    )
    for rank, lines in ((0, 1), (1, 0)):
        env = {**without_launcher(), "PMI_SIZE": "2", "PMI_RANK": str(rank)}
        result = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 2
        assert len(result.stderr.splitlines()) == lines, result.stderr
        assert "pip install -e" in result.stderr or lines == 0


def test_a_mistake_on_the_command_line_is_printed_once():
    """Every process reads the same command line; process 0 alone says what is wrong with it
    (or prints --help), before any process joins MPI."""
    code = "import sys\nfrom tinybt.train import main\nsys.exit(main(sys.argv[1:]))\n"
    for argv, status in ((["--epoch", "3"], 2), (["--help"], 0)):
        printed = []
        for rank in (0, 1):
            env = {**without_launcher(), "PMI_SIZE": "2", "PMI_RANK": str(rank)}
            result = subprocess.run(
                [sys.executable, "-c", code, *argv], env=env, capture_output=True, text=True,
                timeout=60,
            )  # fmt: skip
            assert result.returncode == status, result.stderr
            printed.append(result.stdout + result.stderr)
        assert printed[0] and not printed[1], printed
    assert printed[0].startswith("usage: python -m tinybt.train")


@needs_mpi
@pytest.mark.slow
def test_two_processes_train_on_an_archive_decoded_once(tmp_path, monkeypatch):
    """Process 0 decodes the archive (one cache file) and sends the images to the other, and
    the two processes train the one-process run on them."""
    from PIL import Image

    rng = np.random.default_rng(0)
    folder = tmp_path / "photos"
    for name in ("cat", "dog"):
        (folder / name).mkdir(parents=True)
        for index in range(90):
            pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / name / f"{index}.png")
    archive = tmp_path / "photos.tar.gz"
    subprocess.run(["tar", "czf", str(archive), "-C", str(tmp_path), "photos"], check=True)
    options = {"dataset": "folder", "snapshot_size": 8}
    monkeypatch.setenv("TINYBT_CACHE", str(tmp_path / "one-cache"))
    one, two = tmp_path / "one", tmp_path / "two"
    train(Config.preset("tiny", **run_options(archive, one, **options)), progress=False, log=None)
    monkeypatch.setenv("TINYBT_CACHE", str(tmp_path / "two-cache"))
    status, _, err = finish(launch(2, *training(run_options(archive, two, **options))))
    assert status == 0, err
    assert len(list((tmp_path / "two-cache").iterdir())) == 1
    np.testing.assert_allclose(losses(two), losses(one), rtol=LOSS_RTOL)


@needs_mpi
def test_processes_given_different_options_stop_together_in_one_line(tmp_path, data_dir):
    """One job whose first process alone is told to --resume: every process stops at once,
    before the first step, instead of the others waiting for it in a sum for ever."""
    first = training(run_options(data_dir, tmp_path, epochs=2))
    status, out, err = finish(launch(1, *first), timeout=120)
    assert status == 0, err
    job = subprocess.Popen(
        [MPIEXEC, "-n", "1", sys.executable, *resuming(tmp_path), ":",
         "-n", "1", sys.executable, *training(run_options(data_dir, tmp_path, epochs=2))],
        cwd=ROOT, env=launched_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    status, _, err = finish(job, timeout=60)
    assert status == 2
    assert err.splitlines() == [
        "error: the 2 processes of this job were given different options: start every "
        "process with the same command line"
    ], err


@needs_mpi
def test_a_run_resumed_as_processes_that_do_not_split_its_batch_is_told_the_counts(
    tmp_path, data_dir
):
    status, _, err = finish(launch(1, *training(run_options(data_dir, tmp_path, epochs=1))))
    assert status == 0, err
    status, _, err = finish(launch(3, *resuming(tmp_path)), timeout=120)
    assert status == 2
    batch = Config.preset("tiny").batch_size  # 32
    assert err.splitlines() == [
        f"error: this run's batch of {batch} does not split into 3 equal shares: resume it as "
        f"a number of processes that divides {batch} (mpiexec -n 1, 2, 4, 8 or 16)"
    ], err
