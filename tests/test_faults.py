"""The run folder's faults: a run's relative paths are resolved from its folder, not from the
current one, a run's files that are symbolic links are refused before any work, and a full
disk leaves each file a run writes as it was, or absent, and a tampered checkpoint is refused
naming the field."""

import errno
import json
import os
import shutil
from dataclasses import replace

import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from tests.test_train import tiny_config
from tinybt import run as run_module
from tinybt import viz
from tinybt.build import stored_data_dir
from tinybt.checkpoint import atomic_savez, read_npz
from tinybt.config import Config
from tinybt.errors import TinyBTError
from tinybt.evaluate import evaluate_checkpoint
from tinybt.run import train
from tinybt.runfolder import LOCK, RUN_FILES, prepare_folder
from tinybt.train import config_from_args, parse_args
from tinybt.train import main as train_main


def run_started_in(project, out="runs/a", data_dir="data"):
    """A run's configuration and folder, as if started in `project` with these paths."""
    folder = project / out
    folder.mkdir(parents=True)
    return Config.preset("tiny", out=out, data_dir=data_dir), folder


def test_a_relative_data_dir_is_found_from_the_run_folder(tmp_path, monkeypatch):
    config, folder = run_started_in(tmp_path / "project")
    (tmp_path / "project" / "data").mkdir()
    (tmp_path / "elsewhere" / "data").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert stored_data_dir(config, folder) == str(tmp_path / "project" / "data")


def test_data_missing_beside_the_run_is_refused_not_taken_from_here(tmp_path, monkeypatch):
    config, folder = run_started_in(tmp_path / "project")
    (tmp_path / "elsewhere" / "data").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "elsewhere")
    with pytest.raises(TinyBTError, match="give the dataset's folder with --data-dir") as error:
        stored_data_dir(config, folder)
    assert "\n" not in str(error.value)


def test_a_relative_data_dir_of_a_run_with_an_absolute_out_is_refused(tmp_path, monkeypatch):
    config, folder = run_started_in(tmp_path / "project")
    config = Config.preset("tiny", out=str(folder), data_dir="data")
    (tmp_path / "data").mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TinyBTError, match="--data-dir"):
        stored_data_dir(config, folder)


@pytest.mark.parametrize("name", [*RUN_FILES[1:], LOCK])
def test_resume_refuses_a_run_file_that_is_a_symlink(name, tmp_path, capsys):
    run, outside = tmp_path / "run", tmp_path / "outside.txt"
    run.mkdir()
    (run / "checkpoint.npz").write_bytes(b"not read")
    outside.write_text("keep me")
    (run / name).symlink_to(outside)
    assert train_main(["--resume", "--out", str(run)]) == 2
    message = capsys.readouterr().err
    assert f"{run / name} is a symbolic link" in message and message.count("\n") == 1
    with pytest.raises(TinyBTError, match="symbolic link"):
        prepare_folder(run, resume=True, overwrite=False)
    assert outside.read_text() == "keep me"


def test_a_new_run_refuses_a_symlinked_checkpoint(tmp_path):
    run, outside = tmp_path / "run", tmp_path / "outside.npz"
    run.mkdir()
    (run / "checkpoint.npz").symlink_to(outside)  # dangling: it exists() as nothing
    with pytest.raises(TinyBTError, match="checkpoint.npz is a symbolic link"):
        prepare_folder(run, resume=False, overwrite=True)


def full_disk():
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def half_then_full(target, **options):
    """A figure writer that writes a few bytes to `target` (a path or a file) and then finds
    the disk full."""
    if isinstance(target, (str, os.PathLike)):
        with open(target, "wb") as file:
            file.write(b"GIF89a")
    else:
        target.write(b"GIF89a")
    raise full_disk()


def assert_kept(path, before, error):
    assert path.read_bytes() == before
    assert "\n" not in str(error.value) and "free some disk space" in str(error.value)
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_a_full_disk_leaves_the_old_gif(tmp_path, monkeypatch):
    path = tmp_path / "cross_correlation.gif"
    path.write_bytes(b"the old figure")
    monkeypatch.setattr(Image.Image, "save", lambda self, target, **o: half_then_full(target))
    with pytest.raises(TinyBTError) as error:
        viz.save_cross_correlation_gif([1, 2], np.zeros((2, 4, 4)), path)
    assert_kept(path, b"the old figure", error)


def test_a_full_disk_leaves_the_old_png(tmp_path, monkeypatch):
    path = tmp_path / "training.png"
    path.write_bytes(b"the old figure")
    monkeypatch.setattr(Figure, "savefig", lambda self, target, **o: half_then_full(target))
    with pytest.raises(TinyBTError) as error:
        viz.save_training_curves([{"epoch": 1, "loss": 1.0, "knn_monitor": 0.5}], path)
    assert_kept(path, b"the old figure", error)


def fill_the_disk_on(monkeypatch, name):
    """os.fsync that finds the disk full when it flushes a file whose name holds `name`."""
    real_fsync = os.fsync

    def fsync(handle):
        if name in os.readlink(f"/proc/self/fd/{handle}"):
            raise full_disk()
        real_fsync(handle)

    monkeypatch.setattr(os, "fsync", fsync)


@pytest.mark.parametrize("name", ["evaluation.json", "metrics.jsonl"])
def test_a_full_disk_leaves_no_empty_or_torn_run_file(name, tmp_path, monkeypatch):
    monkeypatch.setattr(run_module, "evaluate_run", lambda *args, **kwargs: {"knn": 0.5})
    config = replace(tiny_config(tmp_path), evaluate=True)
    path = tmp_path / "run" / name
    fill_the_disk_on(monkeypatch, name)
    with pytest.raises(TinyBTError, match=f"cannot write {path} .*nothing was written"):
        train(config, progress=False, log=None)
    assert not path.exists()
    assert not list(path.parent.glob(".*.tmp"))


def test_metrics_lines_are_appended_whole(tmp_path):
    result = train(tiny_config(tmp_path), progress=False, log=None)
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == result["metrics"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A tiny run of one epoch, trained once for all the tampering tests."""
    tmp_path = tmp_path_factory.mktemp("finished")
    config = tiny_config(tmp_path, epochs=1)
    train(config, progress=False, log=None)
    return config


def tampered(finished_run, tmp_path, change):
    """A copy of the finished run whose checkpoint's arrays went through change(arrays, meta)."""
    out = tmp_path / "run"
    shutil.copytree(finished_run.out, out)
    arrays = read_npz(out / "checkpoint.npz", "")
    meta = json.loads(str(arrays.pop("meta")))
    change(arrays, meta)
    atomic_savez(out / "checkpoint.npz", {**arrays, "meta": np.array(json.dumps(meta))})
    return replace(finished_run, out=str(out))


def set_meta(name, value):
    return lambda arrays, meta: meta.update({name: value})


def first_weight(arrays):
    return next(key for key in arrays if key.startswith("model/"))


def string_weights(arrays, meta):
    key = first_weight(arrays)
    arrays[key] = np.full(arrays[key].shape, "x")


def wrong_shape_moment(arrays, meta):
    arrays["optim/m.0"] = np.zeros(3)


def missing_moment(arrays, meta):
    del arrays["optim/m.0"]


def steps_off_by_one(arrays, meta):  # Adam then overshoots: it looked like divergence
    arrays["optim/steps"] = np.asarray(arrays["optim/steps"] + 1)


def no_optimiser_state(arrays, meta):
    for key in [key for key in arrays if key.startswith("optim/")]:
        del arrays[key]


TAMPERINGS = {
    "string weights": (string_weights, "holds <U1 values"),
    "string epoch": (set_meta("epoch", "1"), "has epoch 1 in its meta"),
    "negative epoch": (set_meta("epoch", -1), "has epoch -1 in its meta"),
    "bad generator": (set_meta("rng", {"bit_generator": "Nope"}), "has rng"),
    "short order": (set_meta("order", [0, 1, 2]), "has order list"),
    "moment of the wrong shape": (wrong_shape_moment, "'m.0' is a float64 array of shape (3,)"),
    "missing moment": (missing_moment, "has no 'm.0'"),
    "optimiser steps off": (steps_off_by_one, "has optimiser steps"),
    "no optimiser state": (no_optimiser_state, "optimiser state 'steps' is None"),
}


@pytest.mark.parametrize("case", TAMPERINGS)
def test_a_tampered_checkpoint_is_refused_naming_its_field(case, finished_run, tmp_path):
    change, expected = TAMPERINGS[case]
    config = tampered(finished_run, tmp_path, change)
    with pytest.raises(TinyBTError) as error:
        train(config, resume=True, progress=False, log=None)
    assert expected in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("epoch", ["1", -1, True])
def test_evaluate_refuses_a_tampered_epoch(epoch, finished_run, tmp_path):
    config = tampered(finished_run, tmp_path, set_meta("epoch", epoch))
    with pytest.raises(TinyBTError, match=f"has epoch {epoch} in its meta"):
        evaluate_checkpoint(config.out, probe_epochs=1, log=None)


def test_resume_and_evaluate_from_elsewhere_use_the_runs_own_data(tmp_path, monkeypatch, capsys):
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir()
    (elsewhere / "data").mkdir(parents=True)  # another dataset's folder, of the same name
    monkeypatch.chdir(project)
    train(replace(tiny_config(tmp_path, epochs=1), out="runs/a", data_dir="data"), log=None)
    monkeypatch.chdir(elsewhere)
    run = project / "runs" / "a"
    config = config_from_args(parse_args(["--resume", "--out", str(run)]))
    assert config.data_dir == str(project / "data")
    shutil.rmtree(project / "data")
    assert train_main(["--resume", "--out", str(run)]) == 2
    message = capsys.readouterr().err
    assert "give the dataset's folder with --data-dir" in message and message.count("\n") == 1
    with pytest.raises(TinyBTError, match="--data-dir"):
        evaluate_checkpoint(run, probe_epochs=1, log=None)
