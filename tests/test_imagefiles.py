"""Image folders and their archives, read in place, and the cache of their decoded images."""

import multiprocessing
import os
import tarfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tinybt.data import cache, load_dataset
from tinybt.data.imagefiles import ImageFiles
from tinybt.errors import TinyBTError

pytestmark = pytest.mark.host

SHARED_JPEG = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "cifar-10-jpeg.tar.gz"


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """Each test caches into a folder of its own."""
    monkeypatch.setenv("TINYBT_CACHE", str(tmp_path / "cache"))


def make_folder(root, layout="split"):
    """A small image folder of two classes with distinct noise images; returns root."""
    rng = np.random.default_rng(0)
    splits = ("train", "test") if layout == "split" else ("",)
    for split in splits:
        for name in ("cat", "dog"):
            for index in range(6):
                pixels = rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)
                path = root / split / name / f"{index}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(pixels).save(path)
    return root


def pack(folder, archive):
    """`folder` packed as `archive` (.tar, .tar.gz, .tgz or .zip), wrapped in its own name."""
    if archive.suffix == ".zip":
        with zipfile.ZipFile(archive, "w") as packed:
            for path in sorted(folder.rglob("*")):
                packed.write(path, Path(folder.name) / path.relative_to(folder))
    else:
        with tarfile.open(archive, "w:gz" if archive.name.endswith("gz") else "w") as packed:
            packed.add(folder, arcname=folder.name)
    return archive


def both_splits(data_dir, **options):
    return [
        load_dataset("folder", split, data_dir, size=8, **options) for split in ("train", "test")
    ]


@pytest.mark.parametrize("layout", ["split", "classes"])
@pytest.mark.parametrize("suffix", [".tar", ".tar.gz", ".tgz", ".zip"])
def test_every_archive_gives_the_folders_images(tmp_path, layout, suffix):
    folder = make_folder(tmp_path / "photos", layout)
    expected = both_splits(folder)
    archive = pack(folder, tmp_path / f"photos{suffix}")
    for wanted, got in zip(expected, both_splits(archive), strict=True):
        np.testing.assert_array_equal(got.images, wanted.images)
        np.testing.assert_array_equal(got.labels, wanted.labels)
        assert got.classes == wanted.classes == ["cat", "dog"]
        np.testing.assert_array_equal(got.mean, wanted.mean)


def count_decodes(monkeypatch):
    """A list that gains one entry per image decoded from here on."""
    decoded, decode = [], cache.decode
    monkeypatch.setattr(cache, "decode", lambda item: decoded.append(item[0]) or decode(item))
    return decoded


def test_a_second_load_reads_the_cache(tmp_path, monkeypatch):
    folder = make_folder(tmp_path / "photos")
    first = both_splits(folder)
    decoded = count_decodes(monkeypatch)
    second = both_splits(folder)
    assert decoded == []
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a.images, b.images)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1  # one file per source and size
    load_dataset("folder", "train", folder, size=16)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2


@pytest.mark.parametrize("change", ["add", "change", "remove"])
def test_a_changed_folder_is_decoded_again(tmp_path, monkeypatch, capsys, change):
    folder = make_folder(tmp_path / "photos")
    both_splits(folder)
    image = folder / "train" / "cat" / "0.png"
    if change == "add":
        Image.new("RGB", (9, 9), (1, 2, 3)).save(folder / "train" / "cat" / "new.png")
    elif change == "change":
        Image.new("RGB", (9, 9), (200, 2, 3)).save(image)
        os.utime(image, ns=(time.time_ns(), time.time_ns() + 10**9))
    else:
        image.unlink()
    decoded = count_decodes(monkeypatch)
    train = load_dataset("folder", "train", folder, size=8)
    assert len(decoded) == 24 - (change == "remove") + (change == "add")
    assert len(train) == 12 - (change == "remove") + (change == "add")
    assert "changed since they were cached: decoding again" in capsys.readouterr().err
    if change == "change":
        assert (train.images[0][..., 0] > 150).all()


def test_a_changed_archive_is_decoded_again(tmp_path, monkeypatch):
    folder = make_folder(tmp_path / "photos")
    archive = pack(folder, tmp_path / "photos.zip")
    both_splits(archive)
    (folder / "train" / "dog" / "5.png").unlink()
    archive.unlink()
    pack(folder, archive)
    os.utime(archive, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert len(load_dataset("folder", "train", archive, size=8)) == 11


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage"])
def test_a_damaged_cache_is_rebuilt_with_one_line(tmp_path, monkeypatch, capsys, damage):
    folder = make_folder(tmp_path / "photos")
    expected = load_dataset("folder", "train", folder, size=8)
    (path,) = (tmp_path / "cache").glob("*.npz")
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":
        data[len(data) // 2] ^= 0xFF  # inside the images: the zip's CRC notices
    else:
        data = b"not a cache at all"
    path.write_bytes(bytes(data))
    decoded = count_decodes(monkeypatch)
    again = load_dataset("folder", "train", folder, size=8)
    np.testing.assert_array_equal(again.images, expected.images)
    assert len(decoded) == 24
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "decoding the images again" in err[0]
    decoded.clear()
    load_dataset("folder", "train", folder, size=8)  # rebuilt whole: read again from the cache
    assert decoded == []


def _load_in_process(folder, results):
    results.put(load_dataset("folder", "train", folder, size=8).images.tobytes())


def test_two_processes_building_at_once_leave_one_valid_cache(tmp_path, monkeypatch):
    folder = make_folder(tmp_path / "photos")
    results = multiprocessing.get_context("fork").Queue()
    processes = [
        multiprocessing.get_context("fork").Process(target=_load_in_process, args=(folder, results))
        for _ in range(2)
    ]
    for process in processes:
        process.start()
    images = [results.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    assert images[0] == images[1]
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [
        next((tmp_path / "cache").glob("*.npz")).name
    ]  # no temporary file left
    decoded = count_decodes(monkeypatch)
    assert load_dataset("folder", "train", folder, size=8).images.tobytes() == images[0]
    assert decoded == []


def test_many_images_decode_in_a_pool_in_the_same_order(tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "POOL_FROM", 4)  # a pool of every core for these 24 images
    folder = make_folder(tmp_path / "photos")
    pooled = both_splits(folder)
    monkeypatch.setenv("TINYBT_CACHE", str(tmp_path / "other-cache"))
    monkeypatch.setattr(cache, "POOL_FROM", 10**6)
    for a, b in zip(pooled, both_splits(folder), strict=True):
        np.testing.assert_array_equal(a.images, b.images)


def test_an_unwritable_cache_folder_still_loads(tmp_path, monkeypatch, capsys):
    (tmp_path / "file").write_text("a file where the cache folder should be")
    monkeypatch.setenv("TINYBT_CACHE", str(tmp_path / "file" / "cache"))
    folder = make_folder(tmp_path / "photos")
    assert len(load_dataset("folder", "train", folder, size=8)) == 12
    assert "the decoded images are not cached" in capsys.readouterr().err


def folder_error(data_dir):
    with pytest.raises(TinyBTError) as error:
        load_dataset("folder", "train", data_dir, size=8)
    message = str(error.value)
    assert "\n" not in message, message
    return message


def test_bad_archives_say_what_is_wrong_in_one_line(tmp_path):
    loose = tmp_path / "loose"
    loose.mkdir()
    for index in range(3):
        Image.new("RGB", (9, 9), (index, 2, 3)).save(loose / f"{index}.png")
    archive = pack(loose, tmp_path / "loose.tar.gz")
    assert folder_error(archive) == (
        f"{archive} (read inside its folder loose/) has no class subfolders: put each class's "
        "images in root/name/"
    )
    assert folder_error(tmp_path / "missing.zip").startswith(f"no archive at {tmp_path}")
    torn = tmp_path / "torn.tar.gz"
    torn.write_bytes(pack(make_folder(tmp_path / "p"), tmp_path / "p.tar.gz").read_bytes()[:200])
    assert folder_error(torn).startswith(f"cannot read the archive {torn} (")
    (tmp_path / "text.zip").write_text("not a zip")
    assert "it is damaged or not a" in folder_error(tmp_path / "text.zip")


def test_a_corrupt_member_is_named(tmp_path):
    folder = make_folder(tmp_path / "photos")
    (folder / "train" / "dog" / "3.png").write_bytes(b"not an image")
    archive = pack(folder, tmp_path / "photos.tar")
    message = folder_error(archive)
    assert message.startswith(f"cannot read image train/dog/3.png in {archive} (cannot identify")
    assert message.endswith("): remove or replace it")


def test_hidden_files_and_macos_folders_are_left_out(tmp_path):
    folder = make_folder(tmp_path / "photos")
    (folder / "train" / "cat" / "._0.png").write_bytes(b"macOS resource fork")
    (folder / "__MACOSX").mkdir()
    (folder / "__MACOSX" / "x.png").write_bytes(b"junk")
    archive = pack(folder, tmp_path / "photos.zip")
    assert load_dataset("folder", "train", archive, size=8).classes == ["cat", "dog"]


@pytest.mark.slow
def test_all_of_cifar10_from_the_shared_archive(tmp_path):
    if not SHARED_JPEG.exists():
        pytest.skip(f"{SHARED_JPEG} not found (it lives in ../shared beside the checkout)")
    train = load_dataset("folder", "train", SHARED_JPEG)
    test = load_dataset("folder", "test", SHARED_JPEG)
    assert train.images.shape == (50000, 32, 32, 3) and test.images.shape == (10000, 32, 32, 3)
    assert np.bincount(train.labels).tolist() == [5000] * 10
    assert train.classes[:3] == ["airplane", "automobile", "bird"]


def test_an_unreadable_subfolder_stops_the_load_naming_it(tmp_path, monkeypatch):
    # As root every folder can be read, so the refusal is what listing it raises.
    for label in ("cat", "dog"):
        (tmp_path / label).mkdir()
        Image.new("RGB", (4, 4)).save(tmp_path / label / "0.png")
    locked, scandir = tmp_path / "dog", os.scandir

    def refusing(path):
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", refusing)
    with pytest.raises(TinyBTError, match=f"cannot read the folder {locked} .Permission denied"):
        ImageFiles(tmp_path).listing()
