"""Checkpoints: atomic, finite, with the user's permissions, and one-line errors when the disk
or the file is at fault. Faults (a full disk, SIGKILL mid-write) are provoked, not waited for."""

import errno
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinybt import backend, checkpoint, nn, optim
from tinybt.checkpoint import (
    NonFiniteError,
    atomic_savez,
    first_non_finite,
    load_checkpoint,
    read_npz,
    remove_stale_temporaries,
    save_checkpoint,
)
from tinybt.errors import TinyBTError
from tinybt.evaluate import evaluate_checkpoint

POSIX = os.name == "posix"


def model_and_optimizer():
    """A linear layer and a batch norm after one Adam step, so every state array exists."""
    model = nn.Sequential(nn.Linear(3, 4, rng=backend.rng(0)), nn.BatchNorm1d(4))
    optimizer = optim.Adam(model.parameters(), lr=0.1)
    for parameter in model.parameters():
        parameter.grad = backend.xp().ones_like(parameter.data)
    optimizer.step()
    return model, optimizer


def one_line(error):
    message = str(error.value)
    assert "\n" not in message, message
    return message


def test_save_and_load_round_trip(tmp_path):
    model, optimizer = model_and_optimizer()
    save_checkpoint(tmp_path / "checkpoint.npz", model, optimizer, {"epoch": 3})
    model_state, optim_state, meta = load_checkpoint(tmp_path / "checkpoint.npz")
    assert meta == {"epoch": 3} and int(optim_state["steps"]) == 1
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(model_state[name], value)
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.npz"]


@pytest.mark.skipif(not POSIX, reason="Windows has no permission bits to speak of")
@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_files_get_the_users_umask_not_mkstemps_0600(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        atomic_savez(tmp_path / "snapshots.npz", {"x": np.zeros(2)})
        assert os.umask(umask) == umask, "the umask is left as it was"
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "snapshots.npz").stat().st_mode) == mode


@pytest.mark.skipif(not POSIX, reason="only POSIX can sync a folder")
def test_the_folder_is_synced_after_the_rename(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync

    def recording_fsync(handle):
        synced.append(stat.S_ISDIR(os.fstat(handle).st_mode))
        real_fsync(handle)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    atomic_savez(tmp_path / "checkpoint.npz", {"x": np.zeros(2)})
    assert synced == [False, True], "the file, then its folder"


def fill_the_disk(monkeypatch):
    """Make np.savez write a few bytes and then fail as a full disk does."""

    def savez(file, **arrays):
        file.write(b"PK\x03\x04 half a file")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(np, "savez", savez)


def test_a_full_disk_keeps_the_previous_checkpoint_and_says_what_to_do(tmp_path, monkeypatch):
    model, optimizer = model_and_optimizer()
    path = tmp_path / "checkpoint.npz"
    save_checkpoint(path, model, optimizer, {"epoch": 1})
    before = path.read_bytes()
    fill_the_disk(monkeypatch)
    with pytest.raises(TinyBTError) as error:
        save_checkpoint(path, model, optimizer, {"epoch": 2})
    assert one_line(error) == (
        f"cannot write {path} (No space left on device): the previous file is intact; "
        "free some disk space, or save to a writable folder (--out for train)"
    )
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.npz"], "no temporary left"


def test_a_full_disk_on_the_first_save_leaves_nothing(tmp_path, monkeypatch):
    fill_the_disk(monkeypatch)
    with pytest.raises(TinyBTError, match="No space left on device.*nothing was written") as error:
        atomic_savez(tmp_path / "checkpoint.npz", {"x": np.zeros(2)})
    one_line(error)
    assert list(tmp_path.iterdir()) == []


def test_a_folder_that_cannot_be_made_says_so_in_one_line(tmp_path):
    # A path under a file fails for every user; chmod would not stop root.
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(TinyBTError, match="writable folder") as error:
        atomic_savez(tmp_path / "file" / "run" / "checkpoint.npz", {"x": np.zeros(2)})
    assert "Not a directory" in one_line(error)


def test_first_non_finite_names_the_first_bad_float_array():
    finite = {"a": np.ones(3), "steps": 7, "meta": np.array("{}"), "count": np.arange(3)}
    assert first_non_finite(finite) is None
    assert first_non_finite({**finite, "b": np.array([1.0, np.inf]), "c": np.nan}) == "b"
    assert first_non_finite({"z": np.array([np.nan], np.float16)}) == "z"
    assert first_non_finite({}) is None


@pytest.mark.parametrize("where", ["model/1.running_var", "model/0.weight", "optim/m.0"])
def test_a_non_finite_state_is_never_saved(tmp_path, where):
    # Two ways a run diverges: inf in a running variance (adam, lr 1e9) and in the weights (sgd).
    model, optimizer = model_and_optimizer()
    path = tmp_path / "checkpoint.npz"
    save_checkpoint(path, model, optimizer, {"epoch": 1})
    before = path.read_bytes()
    kind, name = where.split("/")
    if kind == "model":
        getattr(model[int(name[0])], name[2:]).data[0] = np.inf
    else:
        optimizer.state["m"][0][0] = np.nan
    with pytest.raises(NonFiniteError) as error:
        save_checkpoint(path, model, optimizer, {"epoch": 2})
    assert one_line(error) == (
        f"not saving {path}: {where} holds NaN or inf, so the run diverged; "
        "the previous checkpoint is kept; train again with a lower learning rate"
    )
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.npz"]


def test_a_non_finite_checkpoint_written_before_is_refused(tmp_path):
    model, optimizer = model_and_optimizer()
    state = {f"model/{k}": v for k, v in model.state_dict().items()}
    state["model/1.running_var"][2] = np.inf
    path = tmp_path / "checkpoint.npz"
    atomic_savez(path, {**state, "optim/steps": np.asarray(1), "meta": np.array("{}")})
    with pytest.raises(NonFiniteError) as error:
        load_checkpoint(path)
    assert one_line(error) == (
        f"{path} holds NaN or inf in model/1.running_var: the run diverged before it was "
        "saved; train again with a lower learning rate"
    )


def test_stale_temporaries_are_removed_and_nothing_else(tmp_path):
    atomic_savez(tmp_path / "checkpoint.npz", {"x": np.zeros(2)})
    keep = [".hidden", "notes.tmp", ".notes.tmp", "checkpoint.npz"]
    for name in keep[:-1]:
        (tmp_path / name).write_text("mine")
    (tmp_path / ".folder.x.tmp").mkdir()
    stale = [tmp_path / ".checkpoint.npz.a1b2c3.tmp", tmp_path / ".snapshots.npz.zz_9.tmp"]
    for path in stale:
        path.write_bytes(b"PK half")
    assert remove_stale_temporaries(tmp_path) == sorted(stale)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(keep + [".folder.x.tmp"])
    assert remove_stale_temporaries(tmp_path) == []
    assert remove_stale_temporaries(tmp_path / "no run yet") == []


KILLED_MID_WRITE = """
import os, signal, sys
import numpy as np
from tinybt.checkpoint import atomic_savez
os.replace = lambda *args: os.kill(os.getpid(), signal.SIGKILL)  # die just before the rename
atomic_savez(sys.argv[1], {"x": np.zeros(1000)})
"""


@pytest.mark.skipif(not POSIX, reason="SIGKILL is POSIX")
def test_a_sigkill_mid_write_leaves_a_temporary_that_the_next_start_removes(tmp_path):
    path = tmp_path / "checkpoint.npz"
    root = Path(checkpoint.__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "-c", KILLED_MID_WRITE, str(path)], cwd=root, capture_output=True
    )
    assert result.returncode == -signal.SIGKILL, result.stderr
    left = list(tmp_path.iterdir())
    assert len(left) == 1 and left[0].name.startswith(".checkpoint.npz.")
    assert remove_stale_temporaries(tmp_path) == left
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "content, cause",
    [
        ("text", "not an .npz archive"),
        ("npy", "not an .npz archive"),
        ("truncated", "not a zip file|truncated|EOF|CRC"),
        ("missing", "No such file"),
    ],
)
def test_read_npz_says_what_was_wrong_and_what_to_do_in_one_line(tmp_path, content, cause):
    path = tmp_path / "weights.npz"
    if content == "text":
        path.write_text("not an archive")
    elif content == "npy":
        with open(path, "wb") as file:
            np.save(file, np.zeros(3))
    elif content == "truncated":
        atomic_savez(path, {"x": np.zeros(1000)})
        path.write_bytes(path.read_bytes()[:3000])
    with pytest.raises(TinyBTError, match=cause) as error:
        read_npz(path, "do this instead")
    message = one_line(error)
    assert message.startswith(f"cannot read {path} (") and message.endswith("): do this instead")


def test_checkpoint_and_module_share_the_reader(tmp_path):
    path = tmp_path / "checkpoint.npz"
    path.write_text("not an archive")
    with pytest.raises(TinyBTError, match="not a checkpoint, or a truncated one") as error:
        load_checkpoint(path)
    one_line(error)
    with pytest.raises(TinyBTError, match="give an .npz file written by save") as error:
        nn.Linear(2, 3).load(path)
    one_line(error)


@pytest.mark.parametrize("meta", ["{not json", "[1, 2]", "3"])
def test_a_checkpoint_whose_meta_is_not_tinybts_is_refused_in_one_line(tmp_path, meta):
    model, _ = model_and_optimizer()
    path = tmp_path / "checkpoint.npz"
    state = {f"model/{k}": v for k, v in model.state_dict().items()}
    atomic_savez(path, {**state, "meta": np.array(meta)})
    with pytest.raises(TinyBTError, match="has a 'meta' that is not tinybt's") as error:
        load_checkpoint(path)
    one_line(error)


def test_module_load_refuses_a_non_finite_file(tmp_path):
    layer = nn.Linear(2, 3, rng=backend.rng(0))
    state = layer.state_dict()
    state["weight"][0, 1] = np.nan
    atomic_savez(tmp_path / "layer.npz", state)
    before = backend.to_host(layer.weight.data).copy()
    with pytest.raises(NonFiniteError, match="holds NaN or inf in weight") as error:
        layer.load(tmp_path / "layer.npz")
    one_line(error)
    np.testing.assert_array_equal(backend.to_host(layer.weight.data), before)


@pytest.mark.parametrize("meta", [{}, {"config": {"no_such_option": 1}}])
def test_evaluating_a_checkpoint_of_another_version_says_so_in_one_line(tmp_path, meta):
    model, optimizer = model_and_optimizer()
    save_checkpoint(tmp_path / "checkpoint.npz", model, optimizer, meta)
    with pytest.raises(TinyBTError, match="written by another version of tinybt") as error:
        evaluate_checkpoint(tmp_path)
    one_line(error)
