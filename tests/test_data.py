"""Datasets, the downloader and the progress bar.

The CIFAR-10 reader is checked on the real subset in ../shared (skipped where it is absent) and
on small archives of the official layout built here; the downloader against a local HTTP server.
No test touches the internet.
"""

import hashlib
import io
import os
import pickle
import struct
import tarfile
import zlib

import numpy as np
import pytest
from PIL import Image

from tinybt.data import Dataset, channel_stats, cifar10, load_dataset, shapes
from tinybt.data.cache import to_rgb
from tinybt.data.download import download
from tinybt.errors import TinyBTError

from .conftest import local_server

pytestmark = pytest.mark.host

CIFAR_CLASSES = [
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"
]  # fmt: skip


# Shapes.


@pytest.fixture(scope="module")
def shapes_train(tmp_path_factory):
    """The default shapes training split, generated once for this module."""
    return load_dataset("shapes", split="train", data_dir=tmp_path_factory.mktemp("data"))


def test_shapes_default_split_is_balanced_uint8_with_shape_names(shapes_train):
    assert shapes_train.images.shape == (5000, 32, 32, 3)
    assert shapes_train.images.dtype == np.uint8
    assert shapes_train.labels.dtype == np.int64
    assert len(shapes_train.classes) >= 8
    assert {"disc", "ring", "square", "triangle", "cross", "star", "bar"} <= set(
        shapes_train.classes
    )
    counts = np.bincount(shapes_train.labels, minlength=len(shapes_train.classes))
    assert (counts == 5000 // len(shapes_train.classes)).all(), counts


def test_shapes_colour_says_nothing_about_the_class(shapes_train):
    # Per-image mean colours have a std of about 0.2 per channel, so the mean over one class's
    # 625 images has a standard error of about 0.008: 0.03 is almost 4 standard errors.
    colour = shapes_train.images.reshape(len(shapes_train), -1, 3).mean(axis=1) / 255
    overall = colour.mean(axis=0)
    for label, name in enumerate(shapes_train.classes):
        class_mean = colour[shapes_train.labels == label].mean(axis=0)
        assert np.abs(class_mean - overall).max() < 0.03, (name, class_mean, overall)


def test_shapes_statistics_are_those_of_the_training_images(shapes_train):
    mean, std = channel_stats(shapes_train.images)
    np.testing.assert_allclose(shapes_train.mean, mean)
    np.testing.assert_allclose(shapes_train.std, std)
    pixels = shapes_train.images.reshape(-1, 3) / 255
    np.testing.assert_allclose(mean, pixels.mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(std, pixels.std(axis=0), atol=1e-6)


def test_shapes_are_deterministic_and_splits_differ(tmp_path):
    first, second = np.random.default_rng(7), np.random.default_rng(7)
    images_a, labels_a = shapes.generate(64, 32, first)
    images_b, labels_b = shapes.generate(64, 32, second)
    np.testing.assert_array_equal(images_a, images_b)
    np.testing.assert_array_equal(labels_a, labels_b)
    other, _ = shapes.generate(64, 32, np.random.default_rng(8))
    assert not np.array_equal(images_a, other)

    train = load_dataset("shapes", "train", tmp_path, seed=3, num_train=80, num_test=40)
    test = load_dataset("shapes", "test", tmp_path, seed=3, num_train=80, num_test=40)
    assert not np.array_equal(train.images[:40], test.images)
    np.testing.assert_array_equal(train.mean, test.mean)  # the test split uses train statistics


def test_shapes_cache_is_keyed_by_parameters_and_survives_corruption(tmp_path):
    first = load_dataset("shapes", "train", tmp_path, seed=1, num_train=16, num_test=8)
    files = sorted(path.name for path in tmp_path.iterdir())
    assert len(files) == 1 and files[0].endswith(".npz"), files
    cached = load_dataset("shapes", "train", tmp_path, seed=1, num_train=16, num_test=8)
    np.testing.assert_array_equal(first.images, cached.images)

    load_dataset("shapes", "train", tmp_path, seed=1, num_train=24, num_test=8)
    assert len(list(tmp_path.iterdir())) == 2  # another count, another file

    (tmp_path / files[0]).write_bytes(b"not a zip file")
    again = load_dataset("shapes", "train", tmp_path, seed=1, num_train=16, num_test=8)
    np.testing.assert_array_equal(first.images, again.images)
    assert not list(tmp_path.glob("*.part"))


# Dataset and its batches.


def small_dataset(count=10):
    images = np.arange(count * 2 * 2 * 3, dtype=np.uint8).reshape(count, 2, 2, 3)
    classes = [f"image {index}" for index in range(count)]  # one class each, to track them
    return Dataset(images, np.arange(count), classes, (0.5,) * 3, (0.2,) * 3, "toy", "train")


def test_batches_cover_every_image_once_in_the_given_order():
    dataset = small_dataset(10)
    order = np.random.default_rng(0).permutation(10)
    batches = list(dataset.batches(4, order, drop_last=False))
    assert [len(labels) for _, labels in batches] == [4, 4, 2]
    seen = np.concatenate([labels for _, labels in batches])
    np.testing.assert_array_equal(seen, order)  # labels are the image indices here
    for images, labels in batches:
        np.testing.assert_array_equal(images, dataset.images[labels])
        assert images.dtype == np.uint8

    in_order = list(dataset.batches(4, drop_last=True))
    assert [list(labels) for _, labels in in_order] == [[0, 1, 2, 3], [4, 5, 6, 7]]


def test_batches_from_a_start_continue_the_same_pass():
    """What exact resume needs: the same order, from the batch a stopped run reached."""
    dataset = small_dataset(10)
    order = np.random.default_rng(1).permutation(10)
    whole = [list(labels) for _, labels in dataset.batches(3, order)]
    assert len(whole) == 3  # drop_last: 10 // 3
    assert [list(labels) for _, labels in dataset.batches(3, order, start=1)] == whole[1:]
    assert list(dataset.batches(3, order, start=3)) == []


def test_batches_reject_impossible_sizes():
    with pytest.raises(TinyBTError, match="smaller batch size"):
        next(small_dataset(10).batches(11))
    with pytest.raises(TinyBTError, match="at least 1"):
        next(small_dataset(10).batches(0))


def test_dataset_rejects_images_that_are_not_uint8_rgb():
    with pytest.raises(TinyBTError, match="uint8"):
        Dataset(np.zeros((2, 4, 4, 3)), np.zeros(2), ["a"], (0,) * 3, (1,) * 3)
    with pytest.raises(TinyBTError, match="one label each"):
        Dataset(np.zeros((2, 4, 4, 3), np.uint8), np.zeros(3), ["a"], (0,) * 3, (1,) * 3)


def test_dataset_rejects_labels_that_name_no_class():
    with pytest.raises(TinyBTError, match="labels run from 0 to 2 but there are 2 classes"):
        Dataset(np.zeros((2, 4, 4, 3), np.uint8), np.array([0, 2]), ["a", "b"], (0,) * 3, (1,) * 3)


def test_load_dataset_names_its_choices():
    with pytest.raises(TinyBTError, match="shapes, cifar10, folder"):
        load_dataset("mnist")
    with pytest.raises(TinyBTError, match="train, test"):
        load_dataset("shapes", split="valid")
    with pytest.raises(TinyBTError, match="test_every"):
        load_dataset("folder", data_dir=".", num_train=3)


@pytest.mark.parametrize(
    "name, options, message",
    [
        ("shapes", {"size": 0}, "size must be a whole number >= 8, got 0"),
        ("shapes", {"size": 4}, "size must be a whole number >= 8, got 4"),
        ("shapes", {"num_train": 0}, "num_train must be a whole number >= 1, got 0"),
        ("shapes", {"num_test": 1.5}, "num_test must be a whole number >= 1, got 1.5"),
        ("shapes", {"seed": -1}, "seed must be a whole number >= 0, got -1"),
        ("shapes", {"seed": "a"}, "seed must be a whole number >= 0, got 'a'"),
        ("folder", {"size": -1}, "size must be a whole number >= 8, got -1"),
        ("folder", {"test_every": 1}, "test_every must be a whole number >= 2, got 1"),
        ("folder", {"test_every": "a"}, "test_every must be a whole number >= 2, got 'a'"),
        ("folder", {"test_every": True}, "test_every must be a whole number >= 2, got True"),
    ],
)
def test_load_dataset_checks_its_numbers_before_any_work(tmp_path, name, options, message):
    with pytest.raises(TinyBTError) as error:
        load_dataset(name, data_dir=tmp_path, **options)
    assert str(error.value) == message
    assert list(tmp_path.iterdir()) == [], "nothing generated or written"


def test_shapes_data_dir_that_is_a_file_or_under_one_says_so_in_one_line(tmp_path):
    # A path under a file fails to be created whoever runs the test, root included, where
    # chmod would not make a folder read-only. Before, the clean-up in `finally` raised its own
    # NotADirectoryError and hid the message.
    file = tmp_path / "data"
    file.write_text("not a folder")
    for data_dir in (file, file / "shapes"):
        with pytest.raises(
            TinyBTError, match="pass a data directory that is a writable folder"
        ) as error:
            load_dataset("shapes", data_dir=data_dir, num_train=8, num_test=8)
        assert "\n" not in str(error.value) and str(data_dir) in str(error.value)
    assert [p.name for p in tmp_path.iterdir()] == ["data"], "no partial file left"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores chmod")
def test_shapes_read_only_data_dir_says_so_in_one_line(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(TinyBTError, match="writable folder") as error:
            load_dataset("shapes", data_dir=folder, num_train=8, num_test=8)
        assert "\n" not in str(error.value)
    finally:
        folder.chmod(0o755)


# CIFAR-10: the real subset.


def test_cifar_subset_from_archive_and_from_extracted_folder(cifar_subset_archive, tmp_path):
    train = load_dataset("cifar10", "train", cifar_subset_archive)
    test = load_dataset("cifar10", "test", cifar_subset_archive)
    assert train.images.shape == (5170, 32, 32, 3) and test.images.shape == (1017, 32, 32, 3)
    assert train.images.dtype == np.uint8 and train.labels.dtype == np.int64
    assert train.classes == CIFAR_CLASSES
    assert set(np.unique(train.labels)) == set(range(10))
    np.testing.assert_allclose(train.mean, [0.4914, 0.4822, 0.4465])

    with tarfile.open(cifar_subset_archive) as tar:
        tar.extractall(tmp_path, filter="data")
    for folder in (tmp_path, tmp_path / "cifar-10-batches-py"):
        extracted = load_dataset("cifar10", "test", folder)
        np.testing.assert_array_equal(extracted.images, test.images)
        np.testing.assert_array_equal(extracted.labels, test.labels)

    # Rows are channel-major: the first 1024 values of a row are the red 32x32 image.
    with open(tmp_path / "cifar-10-batches-py" / "test_batch", "rb") as file:
        raw = pickle.load(file, encoding="bytes")
    np.testing.assert_array_equal(test.images[5, :, :, 0], raw[b"data"][5, :1024].reshape(32, 32))
    np.testing.assert_array_equal(test.images[5, :, :, 2], raw[b"data"][5, 2048:].reshape(32, 32))
    assert test.labels[:20].tolist() == raw[b"labels"][:20]


# CIFAR-10: small archives of the official layout.


def batch_bytes(rng, count, name):
    """One batch file as Python 2 wrote it (protocol 2, bytes keys)."""
    batch = {
        b"batch_label": name.encode(),
        b"labels": rng.integers(0, 10, size=count).tolist(),
        b"data": rng.integers(0, 256, size=(count, 3072), dtype=np.uint8),
        b"filenames": [f"{name}_{i}.png".encode() for i in range(count)],
    }
    return pickle.dumps(batch, protocol=2)


def make_cifar_archive(path, per_batch=3, seed=0, leave_out=()):
    """A .tar.gz of cifar-10-batches-py/ with `per_batch` images in each batch file."""
    rng = np.random.default_rng(seed)
    files = {name: batch_bytes(rng, per_batch, name) for name in cifar10.FILES[:-1]}
    meta = {b"label_names": [name.encode() for name in CIFAR_CLASSES], b"num_vis": 3072}
    files["batches.meta"] = pickle.dumps(meta, protocol=2)
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            if name in leave_out:
                continue
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_small_archive_reads_every_split(tmp_path):
    archive = make_cifar_archive(tmp_path / "cifar-10-python.tar.gz", per_batch=3)
    train = load_dataset("cifar10", "train", tmp_path)  # finds the archive inside the folder
    test = load_dataset("cifar10", "test", archive)
    assert len(train) == 15 and len(test) == 3
    assert train.classes == CIFAR_CLASSES


def test_truncated_archive_is_reported_in_one_line(tmp_path):
    archive = make_cifar_archive(tmp_path / "full.tar.gz", per_batch=40)
    data = archive.read_bytes()
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(TinyBTError, match="truncated or corrupt") as error:
        load_dataset("cifar10", "test", truncated)
    assert str(truncated) in str(error.value) and "\n" not in str(error.value)

    garbage = tmp_path / "garbage.tar.gz"
    garbage.write_bytes(b"\x1f\x8b" + np.random.default_rng(0).bytes(200))
    with pytest.raises(TinyBTError, match="truncated") as error:
        load_dataset("cifar10", "train", garbage)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("content", [b"", b"hello, not an archive\n" * 20], ids=["empty", "text"])
def test_an_archive_tarfile_cannot_open_is_reported_in_one_line(tmp_path, content):
    # tarfile's own message lists each compression method it tried, one line each.
    archive = tmp_path / "cifar-10-python.tar.gz"
    archive.write_bytes(content)
    for data_dir in (archive, tmp_path):
        with pytest.raises(TinyBTError) as error:
            load_dataset("cifar10", "test", data_dir)
        assert str(error.value) == (
            f"{archive} is empty, truncated or not a .tar.gz archive: "
            "delete it and download it again"
        )


def cifar_folder(tmp_path, test_batch, meta=None):
    """A cifar-10-batches-py folder holding only `test_batch` and `meta`, pickled as given."""
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir(exist_ok=True)
    meta = {b"label_names": [name.encode() for name in CIFAR_CLASSES]} if meta is None else meta
    (folder / "test_batch").write_bytes(pickle.dumps(test_batch, protocol=2))
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return folder


IMAGES = np.zeros((2, 3072), np.uint8)


@pytest.mark.parametrize(
    "test_batch, meta, message",
    [
        ([1, 2], None, "does not hold CIFAR-10 images"),
        ({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, None, "does not hold CIFAR"),
        ({b"data": IMAGES}, None, "one whole-number label for each of its 2 images"),
        ({b"data": IMAGES, b"labels": 5}, None, "one whole-number label for each"),
        ({b"data": IMAGES, b"labels": [1, "cat"]}, None, "one whole-number label for each"),
        ({b"data": IMAGES, b"labels": [1]}, None, "one whole-number label for each"),
        ({b"data": IMAGES, b"labels": [1, 10]}, None, "labels run from 1 to 10 but there are 10"),
        ({b"data": IMAGES, b"labels": [0, 1]}, [b"cat"], "has no list of class names"),
        ({b"data": IMAGES, b"labels": [0, 1]}, {b"num_vis": 3072}, "has no list of class names"),
    ],
)
def test_batches_of_the_wrong_form_are_reported_in_one_line(tmp_path, test_batch, meta, message):
    folder = cifar_folder(tmp_path, test_batch, meta)
    with pytest.raises(TinyBTError, match=message) as error:
        load_dataset("cifar10", "test", folder)
    assert "\n" not in str(error.value)


def test_a_folder_without_batches_says_how_to_download(tmp_path):
    (tmp_path / "readme.txt").write_text("no batches here")
    with pytest.raises(TinyBTError, match="download=True") as error:
        load_dataset("cifar10", "test", tmp_path)
    assert "\n" not in str(error.value)


def test_missing_batch_files_are_named(tmp_path):
    archive = make_cifar_archive(tmp_path / "a.tar.gz", leave_out={"data_batch_3"})
    load_dataset("cifar10", "test", archive)  # the test split does not need it
    with pytest.raises(TinyBTError, match="data_batch_3") as error:
        load_dataset("cifar10", "train", archive)
    assert "\n" not in str(error.value)

    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "extracted", filter="data")
    (tmp_path / "extracted" / "cifar-10-batches-py" / "batches.meta").unlink()
    with pytest.raises(TinyBTError, match="batches.meta is missing"):
        load_dataset("cifar10", "test", tmp_path / "extracted")


def test_nothing_there_says_how_to_download(tmp_path):
    with pytest.raises(TinyBTError, match="download=True"):
        load_dataset("cifar10", "train", tmp_path / "empty")


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "test_batch").write_bytes(pickle.dumps(os.getcwd, protocol=2))
    with pytest.raises(TinyBTError, match="refusing to load"):
        load_dataset("cifar10", "test", tmp_path)


# Download, against a local server.


@pytest.fixture
def server():
    """A local HTTP server: /good serves PAYLOAD; /short promises more bytes than it sends."""
    payload = os.urandom(300_000)
    routes = {"/good": (payload, len(payload)), "/short": (payload[:1000], len(payload))}
    with local_server(routes) as url:
        yield url, payload


def test_download_writes_the_file_when_the_md5_matches(server, tmp_path):
    url, payload = server
    path = download(f"{url}/good", tmp_path / "sub" / "file.bin", hashlib.md5(payload).hexdigest())
    assert path.read_bytes() == payload
    assert [p.name for p in path.parent.iterdir()] == ["file.bin"]


def test_download_with_wrong_md5_leaves_nothing(server, tmp_path):
    url, _ = server
    with pytest.raises(TinyBTError, match="expected 0+: the file was deleted"):
        download(f"{url}/good", tmp_path / "file.bin", "0" * 32)
    assert list(tmp_path.iterdir()) == []


def test_short_or_failed_download_leaves_nothing(server, tmp_path):
    url, payload = server
    with pytest.raises(TinyBTError, match=f"of {len(payload)} bytes|failed after"):
        download(f"{url}/short", tmp_path / "file.bin", hashlib.md5(payload).hexdigest())
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(TinyBTError, match="HTTP 404"):
        download(f"{url}/missing", tmp_path / "file.bin", hashlib.md5(payload).hexdigest())
    assert list(tmp_path.iterdir()) == []


def test_cifar_downloads_when_asked(monkeypatch, tmp_path):
    archive = make_cifar_archive(tmp_path / "served.tar.gz").read_bytes()

    with local_server({"/cifar-10-python.tar.gz": (archive, len(archive))}) as url:
        monkeypatch.setattr(cifar10, "URL", f"{url}/cifar-10-python.tar.gz")
        monkeypatch.setattr(cifar10, "MD5", hashlib.md5(archive).hexdigest())
        test = load_dataset("cifar10", "test", tmp_path / "data", download=True)
    assert len(test) == 3
    assert (tmp_path / "data" / "cifar-10-python.tar.gz").read_bytes() == archive


# Image folders.


def write_image(path, colour, size=(40, 24)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


def test_folder_splits_each_class_every_kth_file(tmp_path):
    for index in range(6):
        write_image(tmp_path / "red" / f"{index}.png", (250, 0, 0))
        write_image(tmp_path / "blue" / f"{index}.JPG", (0, 0, 250), size=(20, 50))
    (tmp_path / "blue" / "notes.txt").write_text("not an image")
    train = load_dataset("folder", "train", tmp_path, size=16, test_every=3)
    test = load_dataset("folder", "test", tmp_path, size=16, test_every=3)
    assert train.classes == ["blue", "red"]
    assert train.images.shape == (8, 16, 16, 3) and test.images.shape == (4, 16, 16, 3)
    assert np.bincount(test.labels).tolist() == [2, 2]
    red = train.images[train.labels == 1]
    assert (red[..., 0] > 240).all() and (red[..., 2] < 10).all()
    blue = test.images[test.labels == 0]  # JPEG: close to, not exactly, the colour written
    assert (np.abs(blue.astype(int) - (0, 0, 250)) < 12).all()
    np.testing.assert_allclose(train.mean, [0.5 * 250 / 255, 0, 0.5 * 250 / 255], atol=0.02)


def test_folder_with_train_and_test_folders_uses_them(tmp_path):
    for split, count in (("train", 3), ("test", 2)):
        for name in ("cat", "dog"):
            for index in range(count):
                write_image(tmp_path / split / name / f"{index}.jpeg", (10, 200, 10))
    assert len(load_dataset("folder", "train", tmp_path)) == 6
    test = load_dataset("folder", "test", tmp_path)
    assert len(test) == 4 and test.classes == ["cat", "dog"]
    assert test.images.shape[1:] == (32, 32, 3)


def folder_error(data_dir, split="train", **options):
    """The one-line message of the TinyBTError that loading the image folder raises."""
    with pytest.raises(TinyBTError) as error:
        load_dataset("folder", split, data_dir, **options)
    message = str(error.value)
    assert "\n" not in message, message
    return message


def test_folder_errors_name_the_problem(tmp_path):
    assert "no image folder at" in folder_error(tmp_path / "nowhere")
    (tmp_path / "file").write_text("not a folder")
    assert "no image folder at" in folder_error(tmp_path / "file")
    (tmp_path / "file").unlink()
    assert "no class subfolders" in folder_error(tmp_path)
    for name in ("cat", "dog"):
        write_image(tmp_path / name / "1.png", (1, 2, 3))
    (tmp_path / "dog" / "1.png").unlink()
    (tmp_path / "dog" / "notes.txt").write_text("only non-images")
    assert folder_error(tmp_path).startswith(f"class folder {tmp_path / 'dog'} has no images (")
    write_image(tmp_path / "dog" / "1.png", (1, 2, 3))
    assert "give each class at least 5 images" in folder_error(tmp_path, split="test")
    for index in range(2, 6):
        write_image(tmp_path / "cat" / f"{index}.png", (1, 2, 3))
    assert len(load_dataset("folder", "test", tmp_path)) == 1  # cat's 5th image


def test_folder_with_one_class_is_refused(tmp_path):
    # Every prediction would be right: both encoders would report 100%.
    for index in range(6):
        write_image(tmp_path / "cat" / f"{index}.png", (1, 2, 3))
    assert folder_error(tmp_path) == (
        f"{tmp_path} has one class subfolder (cat): a classifier needs at least 2, "
        "so put each class's images in its own subfolder"
    )
    for split in ("train", "test"):
        write_image(tmp_path / split / "cat" / "0.png", (1, 2, 3))
    assert "has one class subfolder (cat)" in folder_error(tmp_path / "train")


def test_folder_test_classes_must_match_the_training_classes(tmp_path):
    for split, names in (("train", ("cat", "dog")), ("test", ("cat", "cow"))):
        for name in names:
            write_image(tmp_path / split / name / "0.png", (1, 2, 3))
    assert folder_error(tmp_path, split="test") == (
        f"the class folders of {tmp_path / 'test'} (cat, cow) differ from those of "
        f"{tmp_path / 'train'} (cat, dog): give both the same classes"
    )


@pytest.mark.parametrize(
    "name, content",
    [
        ("empty.png", b""),
        ("text.jpg", b"hello, not an image"),
        ("header-only.png", b"\x89PNG\r\n\x1a\n" + bytes(range(100))),
        ("truncated.png", "truncated"),
    ],
)
def test_folder_with_an_unreadable_image_names_it_in_one_line(tmp_path, name, content):
    for index in range(6):
        write_image(tmp_path / "cat" / f"{index}.png", (1, 2, 3))
        write_image(tmp_path / "dog" / f"{index}.png", (1, 2, 3))
    bad = tmp_path / "dog" / name
    if content == "truncated":
        noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
        Image.fromarray(noise).save(bad)
        bad.write_bytes(bad.read_bytes()[:300])
    else:
        bad.write_bytes(content)
    message = folder_error(tmp_path)
    assert message.startswith(f"cannot read image {bad} (") and message.endswith(
        "): remove or replace it"
    )


def png16(path, pixels):
    """Write uint16 pixels (H, W, C) as a 16-bit PNG, by hand: pillow cannot write 16-bit colour.

    A PNG is a signature and chunks (length, type, data, CRC-32); IHDR gives the size, bit depth
    16 and colour type (0 grey, 2 RGB), IDAT the zlib-compressed rows, each row after a 0 byte
    (no filter), each value big-endian.
    """
    height, width, channels = pixels.shape
    rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in pixels)

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 16, {1: 0, 3: 2}[channels], 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def test_16_bit_pngs_are_scaled_by_their_depth_not_clipped(tmp_path):
    # 60000 of 65535 is 233.5 of 255; pillow's convert("RGB") alone made every grey above 255
    # white. Pillow opens the grey as "I;16" and reduces 16-bit colour to 8 bits itself.
    grey, colour = (1000, 30000, 60000), (60000, 1000, 30000)
    for index, value in enumerate(grey):
        png16(tmp_path / "grey" / f"{index}.png", np.full((8, 8, 1), value, np.uint16))
        png16(tmp_path / "colour" / f"{index}.png", np.full((8, 8, 3), colour, np.uint16))
    assert Image.open(tmp_path / "grey" / "0.png").mode.startswith("I")
    train = load_dataset("folder", "train", tmp_path, size=8, test_every=3)
    expected = {1: [[round(v * 255 / 65535)] * 3 for v in grey[:2]], 0: [[234, 3, 117]] * 2}
    for label, pixels in expected.items():
        np.testing.assert_array_equal(train.images[train.labels == label][:, 4, 4], pixels)


@pytest.mark.parametrize("dtype, mode", [("<u2", "I;16"), (">u2", "I;16B"), ("<i4", "I")])
def test_every_16_bit_grey_mode_is_scaled(dtype, mode):
    # "I;16B" and "I" are how other pillow versions open a 16-bit grey PNG.
    image = Image.fromarray(np.array([[0, 257, 65535]], dtype=dtype))
    assert image.mode == mode
    np.testing.assert_array_equal(np.asarray(to_rgb(image))[0], [[0] * 3, [1] * 3, [255] * 3])


@pytest.mark.parametrize(
    "pixels, reason",
    [
        (np.full((8, 8), 0.5, np.float32), "32-bit floats"),  # read as black before
        (np.full((8, 8), 2**20, np.int32), "32-bit integers"),  # read as white before
    ],
)
def test_tiffs_of_32_bit_pixels_are_refused_naming_the_file(pixels, reason, tmp_path):
    for label in ("cat", "dog"):
        (tmp_path / label).mkdir()
        for index in range(3):
            Image.new("RGB", (8, 8)).save(tmp_path / label / f"{index}.png")
    Image.fromarray(pixels).save(tmp_path / "dog" / "odd.tif")
    with pytest.raises(TinyBTError) as error:
        load_dataset("folder", "train", tmp_path, size=8, test_every=3)
    message = str(error.value)
    assert "dog/odd.tif" in message and reason in message and "\n" not in message
