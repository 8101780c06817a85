"""The run folder's faults: a run's relative paths are resolved from its folder, not from the
current one."""

import pytest

from tinybt.errors import TinyBTError
from tinybt.recipe import Config, stored_data_dir


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
