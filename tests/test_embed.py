"""python -m tinybt.embed: the features of a folder's or an archive's images under a run's
encoder, as tinybt's own evaluation computes them, with the images' paths in the loader's
order."""

import tarfile

import numpy as np
import pytest
from PIL import Image

from tinybt.build import load_split
from tinybt.config import Config
from tinybt.data import load_dataset
from tinybt.embed import embed, main
from tinybt.evaluation import load_trained
from tinybt.probe import extract_features, nearest_neighbours
from tinybt.run import train

pytestmark = pytest.mark.host


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A trained tiny run's folder."""
    root = tmp_path_factory.mktemp("embed")
    config = Config.preset(
        "tiny", evaluate=False, data_dir=str(root / "data"), out=str(root / "run")
    )
    train(config, progress=False, log=None)
    return root / "run"


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYBT_CACHE", str(tmp_path / "cache"))


def photos(root, classes=("cat", "dog")):
    rng = np.random.default_rng(1)
    for name in classes:
        for index in range(5):
            path = root / name / f"{index}.png" if name else root / f"{index}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(path)
    return root


def test_embed_gives_the_evaluation_features_in_the_loaders_order(run, tmp_path):
    folder = photos(tmp_path / "photos")
    saved = embed(run, folder, tmp_path / "features.npz", log=None)
    assert saved["paths"].tolist() == [f"{c}/{i}.png" for c in ("cat", "dog") for i in range(5)]
    assert saved["labels"].tolist() == [0] * 5 + [1] * 5
    model, config, _, _ = load_trained(run)
    trained_on = load_split(config, "train")
    # the folder loader's training split (every 5th image is a test image) holds 8 of them
    expected_set = load_dataset("folder", "train", folder)
    expected_set.mean, expected_set.std = trained_on.mean, trained_on.std
    expected = extract_features(model.encoder, expected_set)
    rows = [i for i in range(10) if (i % 5) != 4]
    np.testing.assert_allclose(saved["features"][rows], expected, rtol=1e-5, atol=1e-6)
    with np.load(tmp_path / "features.npz") as file:
        np.testing.assert_array_equal(file["features"], saved["features"])


def test_embed_reads_an_archive_without_class_folders(run, tmp_path):
    folder = photos(tmp_path / "loose", classes=("",))
    archive = tmp_path / "loose.tar.gz"
    with tarfile.open(archive, "w:gz") as packed:
        packed.add(folder, arcname="loose")
    from_archive = embed(run, archive, tmp_path / "a.npz", log=None)
    from_folder = embed(run, folder, tmp_path / "b.npz", log=None)
    assert "labels" not in from_archive and from_archive["paths"].tolist() == [
        f"{i}.png" for i in range(5)
    ]
    np.testing.assert_array_equal(from_archive["features"], from_folder["features"])


def test_neighbours_are_drawn_and_are_the_most_similar(run, tmp_path):
    folder = photos(tmp_path / "photos")
    saved = embed(run, folder, tmp_path / "features.npz", neighbours=3, log=None)
    with Image.open(tmp_path / "features.png") as image:
        assert image.size[0] > image.size[1] / 6 * 3  # 6 rows of 4 images
    features = saved["features"]
    nearest = nearest_neighbours(features, np.array([0]), 3)[0]
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    similarity = unit[1:] @ unit[0]
    assert nearest.tolist() == (1 + np.argsort(-similarity)[:3]).tolist()


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--out", "features.txt"], "must end in .npz"),
        (["--neighbours", "-1"], "--neighbours must be 0 or more"),
        (["--neighbours", "10"], "--neighbours 10 needs more than 10 images"),
    ],
)
def test_bad_options_are_one_line(run, tmp_path, capsys, arguments, message):
    folder = photos(tmp_path / "photos")
    options = {"--out": str(tmp_path / "f.npz")}
    for flag, value in zip(arguments[::2], arguments[1::2], strict=True):
        options[flag] = value if flag != "--out" else str(tmp_path / value)
    flags = [part for pair in options.items() for part in pair]
    assert main([str(run), "--data-dir", str(folder), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err


def test_a_folder_that_is_not_a_run_is_one_line(tmp_path, capsys):
    photos(tmp_path / "photos")
    code = main([str(tmp_path), "--data-dir", str(tmp_path / "photos"), "--out", "x.npz"])
    assert code == 2 and "\n" not in capsys.readouterr().err.strip()
