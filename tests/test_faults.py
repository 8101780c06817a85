"""The run folder's faults: a run's relative paths are resolved from its folder, not from the
current one, and a run's files that are symbolic links are refused before any work."""

import pytest

from tinybt.errors import TinyBTError
from tinybt.recipe import Config, stored_data_dir
from tinybt.runfolder import LOCK, RUN_FILES, prepare_folder
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
