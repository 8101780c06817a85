"""Training end to end, kept to seconds: the loss falls, checkpoints resume exactly, Ctrl-C
saves, NaN stops with a message, and the command line speaks in one-line errors."""

import json
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tinybt import backend
from tinybt import run as run_module
from tinybt.build import build_model, first_images, load_split
from tinybt.checkpoint import atomic_savez, load_checkpoint
from tinybt.config import Config
from tinybt.errors import TinyBTError
from tinybt.evaluation import evaluate_run
from tinybt.methods.common import cross_correlation
from tinybt.run import Run, read_metrics, snapshot_steps, train
from tinybt.runfolder import free_folder
from tinybt.tensor import Tensor, no_grad
from tinybt.train import config_from_args, main, parse_args


def tiny_config(tmp_path, **changes):
    """Two short epochs on 256 generated shapes; data cached in a shared test folder."""
    data_dir = tmp_path.parent / "tinybt-data"
    return Config.preset(
        "tiny", evaluate=False, data_dir=str(data_dir), out=str(tmp_path / "run"), **changes
    )


def losses(result):
    return [record["loss"] for record in result["metrics"]]


def test_short_run_lowers_the_loss_and_writes_its_files(tmp_path):
    config = tiny_config(tmp_path, epochs=4, lr=3e-3)
    result = train(config, progress=False, log=lambda *_: None)
    history = losses(result)
    assert len(history) == 4
    assert history[-1] < 0.9 * history[0], f"loss did not fall: {history}"
    record = result["metrics"][-1]
    for key in ("on_diag", "off_diag", "diag_mean", "off_diag_rms", "images_per_second"):
        assert np.isfinite(record[key])
    out = tmp_path / "run"
    for name in (
        "checkpoint.npz",
        "metrics.jsonl",
        "snapshots.npz",
        "cross_correlation.png",
        "cross_correlation.gif",
    ):
        assert (out / name).exists(), name
    with np.load(out / "snapshots.npz") as snapshots:
        steps, matrices = snapshots["steps"], snapshots["matrices"]
    assert steps[0] == 0 and steps[-1] == 4 * (256 // 32)
    assert matrices.shape == (len(steps), 32, 32)
    # C on the held-out views moves towards the identity: the diagonal rises.
    assert np.diagonal(matrices[-1], axis1=0, axis2=1).mean() > np.diagonal(matrices[0]).mean()


def test_snapshot_is_c_as_the_loss_sees_it_and_leaves_the_running_statistics(tmp_path):
    """Snapshots use batch statistics, as the loss does. At step 0 the running statistics are
    still (0, 1): through four random stages the embeddings would shrink to a spread of about
    1e-3, the eps of the standardisation would swamp it and C would read near 0."""
    config = tiny_config(tmp_path, widths="8-16-16-16", strides="2-2-2-2")
    run = Run(config, progress=False, log=lambda *_: None)
    before = {name: b.numpy().copy() for name, b in run.model.named_buffers().items()}
    run._take_snapshot(0)
    for name, buffer in run.model.named_buffers().items():
        assert np.array_equal(buffer.numpy(), before[name]), f"snapshot changed {name}"

    with no_grad():  # training mode, as the loss sees the views
        z_a, z_b = (run.model(Tensor(views)).data for views in run.snapshot_views)
    expected = backend.to_host(cross_correlation(z_a, z_b))
    assert np.allclose(run.snapshots[0], expected, atol=2e-3)  # stored as float16
    assert np.diagonal(expected).mean() > 0.1
    free_folder(run.out)  # the run was made, not trained: give up its lock


def test_same_seed_same_run(tmp_path):
    first = train(tiny_config(tmp_path / "a"), progress=False, log=lambda *_: None)
    second = train(tiny_config(tmp_path / "b"), progress=False, log=lambda *_: None)
    assert losses(first) == losses(second)


def test_interrupted_run_resumes_to_the_same_losses(tmp_path, monkeypatch):
    reference = losses(train(tiny_config(tmp_path / "whole"), progress=False, log=lambda *_: None))

    # Ctrl-C in the middle of the first epoch (step 3 of 8): a real SIGINT to this process.
    real_step, calls = run_module.train_step, []

    def step_then_interrupt(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            signal.raise_signal(signal.SIGINT)
        return real_step(*args, **kwargs)

    monkeypatch.setattr(run_module, "train_step", step_then_interrupt)
    config = tiny_config(tmp_path / "split")
    with pytest.raises(KeyboardInterrupt):
        train(config, progress=False, log=lambda *_: None)
    monkeypatch.setattr(run_module, "train_step", real_step)
    meta = load_checkpoint(tmp_path / "split" / "run" / "checkpoint.npz")[2]
    assert (meta["epoch"], meta["batch"]) == (0, 3), "the step in progress finishes, then saves"

    resumed = train(config, resume=True, progress=False, log=lambda *_: None)
    assert losses(resumed) == reference


def test_nan_loss_stops_with_a_message_and_keeps_the_checkpoint(tmp_path):
    config = tiny_config(tmp_path, optimizer="sgd", lr=1e12, warmup_epochs=0.0, epochs=3)
    with pytest.raises(TinyBTError, match=r"at step \d+ .*--lr 1e\+12.*change them"):
        train(config, progress=False, log=lambda *_: None)


def test_load_split_cuts_the_training_images_only_when_asked(tmp_path):
    config = tiny_config(tmp_path)  # train_size 256 of the 5,000 generated
    assert len(load_split(config, "train")) == 256
    assert len(load_split(replace(config, train_size=0), "train")) == 5000  # 0: all
    assert len(load_split(config, "test")) == 1000  # the test split is never cut


def test_run_trains_on_the_training_set_it_is_given(tmp_path):
    config = tiny_config(tmp_path)
    given = first_images(load_split(replace(config, train_size=0), "train"), 96)
    run = Run(config, train_set=given, progress=False, log=lambda *_: None)
    assert run.train_set is given and run.steps_per_epoch == 96 // config.batch_size
    assert len(run.train()) == config.epochs


def test_batch_larger_than_dataset_is_refused(tmp_path):
    with pytest.raises(TinyBTError, match="larger than the 256 training images"):
        Run(tiny_config(tmp_path, batch_size=512), progress=False)


def test_command_line_errors_are_one_line(tmp_path, capsys):
    status = main(
        [
            "--preset",
            "tiny",
            "--dataset",
            "cifar10",
            "--data-dir",
            str(tmp_path / "nowhere"),
            "--out",
            str(tmp_path / "run"),
        ]
    )
    assert status == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ") and "\n" not in error
    assert main(["--resume", "--out", str(tmp_path / "none")]) == 2


def test_command_line_run_and_resume(tmp_path, capsys):
    args = [
        "--preset",
        "tiny",
        "--no-evaluate",
        "--epochs",
        "1",
        "--out",
        str(tmp_path / "run"),
        "--data-dir",
        str(tmp_path.parent / "tinybt-data"),
    ]
    assert main(args) == 0
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1]


# ----- no run is lost -----
def test_a_new_run_refuses_a_folder_holding_a_run_unless_told_to_overwrite(tmp_path):
    config = tiny_config(tmp_path, epochs=1)
    train(config, progress=False, log=None)
    checkpoint = (tmp_path / "run" / "checkpoint.npz").read_bytes()
    with pytest.raises(TinyBTError, match="--resume, choose another --out, or replace it"):
        train(config, progress=False, log=None)
    assert (tmp_path / "run" / "checkpoint.npz").read_bytes() == checkpoint
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 1

    again = train(replace(config, epochs=2), overwrite=True, progress=False, log=None)
    assert [record["epoch"] for record in again["metrics"]] == [1, 2]  # afresh, not appended


def test_a_second_process_refuses_a_folder_that_a_run_is_using(tmp_path):
    """Two runs started in one folder, the second before the first has saved anything: the
    second refuses in one line, --overwrite or not, and deletes nothing."""
    config = tiny_config(tmp_path, epochs=1)
    out = Path(config.out)
    run = Run(config, progress=False, log=None)  # holds the folder from here until it stops
    (out / "checkpoint.npz").write_bytes(b"the first run's")
    command = [sys.executable, "-m", "tinybt.train", "--preset", "tiny", "--out", config.out]
    for extra in ([], ["--overwrite"]):
        second = subprocess.run(command + extra, capture_output=True, text=True, timeout=120)
        assert second.returncode == 2
        assert second.stderr.startswith(
            f"error: {out} is in use by another run (its process id is in {out / 'run.lock'})"
        )
        assert "\n" not in second.stderr.strip()
    assert (out / "checkpoint.npz").read_bytes() == b"the first run's"
    run.train()
    assert not (out / "run.lock").exists(), "a run that stops frees its folder"


def test_a_lock_left_by_a_process_that_has_ended_is_taken_over(tmp_path):
    config = tiny_config(tmp_path, epochs=1)
    out = Path(config.out)
    out.mkdir(parents=True)
    ended = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    (out / "run.lock").write_text(ended.stdout.strip())  # as a killed run leaves it
    Run(config, progress=False, log=None)
    assert (out / "run.lock").read_text() == str(os.getpid())
    free_folder(out)


def interrupt_at(monkeypatch, step_number):
    """Make the training step number `step_number` (from 1) send this process a real SIGINT."""
    real_step, calls = run_module.train_step, []

    def step_then_interrupt(*args, **kwargs):
        calls.append(1)
        if len(calls) == step_number:
            signal.raise_signal(signal.SIGINT)
        return real_step(*args, **kwargs)

    monkeypatch.setattr(run_module, "train_step", step_then_interrupt)
    return real_step


def test_resume_reads_and_writes_the_folder_it_is_given(tmp_path, monkeypatch):
    """A run copied elsewhere resumes there, from its own files, and leaves the original."""
    reference = losses(train(tiny_config(tmp_path / "whole"), progress=False, log=None))
    config = tiny_config(tmp_path / "first")
    real_step = interrupt_at(monkeypatch, 11)  # in the second epoch
    with pytest.raises(KeyboardInterrupt):
        train(config, progress=False, log=None)
    monkeypatch.setattr(run_module, "train_step", real_step)
    original, moved = tmp_path / "first" / "run", tmp_path / "moved"
    shutil.copytree(original, moved)
    before = {path.name: path.read_bytes() for path in original.iterdir()}

    data_dir = str(tmp_path.parent / "tinybt-data")
    assert main(["--resume", "--out", str(moved), "--data-dir", data_dir]) == 0
    assert {path.name: path.read_bytes() for path in original.iterdir()} == before
    metrics = (moved / "metrics.jsonl").read_text().splitlines()
    resumed = [json.loads(line)["loss"] for line in metrics]
    assert resumed == reference
    stored = load_checkpoint(moved / "checkpoint.npz")[2]["config"]
    assert stored["out"] == str(moved)


def test_resume_refuses_flags_that_contradict_the_stored_run(tmp_path):
    config = tiny_config(tmp_path, epochs=1)
    train(config, progress=False, log=None)
    with pytest.raises(TinyBTError, match="--projector 64-64 contradicts the run in"):
        config_from_args(parse_args(["--resume", "--out", config.out, "--projector", "64-64"]))
    same = config_from_args(parse_args(["--resume", "--out", config.out, "--seed", "0"]))
    assert same == config  # a flag that agrees with the stored run is fine


@pytest.mark.parametrize("missing", ["config", "rng"])
def test_resuming_a_checkpoint_without_the_run_state_says_so_in_one_line(tmp_path, capsys, missing):
    """A checkpoint of another version (here: one key of the meta taken out) is refused by
    name, before and after the stored configuration is read."""
    config = tiny_config(tmp_path, epochs=1)
    train(config, progress=False, log=None)
    path = tmp_path / "run" / "checkpoint.npz"
    with np.load(path) as saved:
        arrays = dict(saved)
    meta = json.loads(str(arrays["meta"]))
    del meta[missing]
    atomic_savez(path, {**arrays, "meta": np.array(json.dumps(meta))})
    assert main(["--resume", "--out", config.out]) == 2
    error = capsys.readouterr().err.strip()
    assert f"has no {missing} in its meta" in error and "\n" not in error


def test_ctrl_c_keeps_the_snapshots_of_the_interrupted_epoch(tmp_path, monkeypatch):
    config = tiny_config(tmp_path)
    real_step = interrupt_at(monkeypatch, 4)
    with pytest.raises(KeyboardInterrupt):
        train(config, progress=False, log=None)
    monkeypatch.setattr(run_module, "train_step", real_step)
    with np.load(tmp_path / "run" / "snapshots.npz") as saved:
        steps = list(saved["steps"])
    assert steps == [s for s in snapshot_steps(config.epochs * 8) if s < 4]


def test_a_torn_last_metrics_line_does_not_block_resume(tmp_path, monkeypatch):
    reference = losses(train(tiny_config(tmp_path / "whole"), progress=False, log=None))
    config = tiny_config(tmp_path / "torn")
    real_step = interrupt_at(monkeypatch, 11)
    with pytest.raises(KeyboardInterrupt):
        train(config, progress=False, log=None)
    monkeypatch.setattr(run_module, "train_step", real_step)
    metrics = tmp_path / "torn" / "run" / "metrics.jsonl"
    with open(metrics, "a") as file:
        file.write('{"epoch": 2, "step": 16, "lo')  # killed while writing epoch 2's line
    assert losses(train(config, resume=True, progress=False, log=None)) == reference

    metrics.write_text('{"epoch": 1, "lo\n{"epoch": 2}\n')  # a torn line in the middle
    with pytest.raises(TinyBTError, match="line 1 of .* is not JSON"):
        read_metrics(metrics)


def test_a_terminal_closed_as_an_epoch_ends_loses_nothing_of_that_epoch(tmp_path):
    """The epoch's line is printed after its checkpoint is saved: a closed pipe (the terminal
    or `| head` gone) stops the run at that line with the epoch already on disk."""

    def closed_pipe(line):
        if line.startswith("epoch 1:"):
            raise BrokenPipeError(32, "Broken pipe")

    config = tiny_config(tmp_path)
    with pytest.raises(BrokenPipeError):
        train(config, progress=False, log=closed_pipe)
    meta = load_checkpoint(tmp_path / "run" / "checkpoint.npz")[2]
    assert (meta["epoch"], meta["batch"]) == (1, 0)
    assert [r["epoch"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl")] == [1]


def test_the_table_says_when_a_run_is_too_short_to_judge(tmp_path):
    """An encoder no better than its random start (here: the random start itself)."""
    config = tiny_config(tmp_path, epochs=3)
    train_set, test_set = load_split(config, "train"), first_images(load_split(config, "test"), 200)
    lines = []
    result = evaluate_run(build_model(config), config, train_set, test_set, 5, log=lines.append)
    assert "after 3 epochs" in result["note"] and "too short to judge" in lines[0]


def test_a_state_gone_non_finite_stops_the_run_and_keeps_the_last_good_checkpoint(
    tmp_path, monkeypatch
):
    """The loss can stay finite while a running variance overflows (adam at lr 1e9 did): the
    check is on every array a checkpoint holds, and the one on disk stays finite."""
    real_step, calls = run_module.train_step, []

    def step_then_overflow(model, *args, **kwargs):
        calls.append(1)
        if len(calls) == 12:  # in the second epoch
            model.named_buffers()["encoder.layers.1.running_var"].data[0] = np.inf
        return real_step(model, *args, **kwargs)

    monkeypatch.setattr(run_module, "train_step", step_then_overflow)
    config = tiny_config(tmp_path)
    message = "running_var became NaN or inf at step 15 \\(epoch 2 of 2\\).* --lr"
    with pytest.raises(TinyBTError, match=message):
        train(config, progress=False, log=None)
    meta = load_checkpoint(tmp_path / "run" / "checkpoint.npz")[2]  # finite, else it raises
    assert meta["epoch"] == 1
