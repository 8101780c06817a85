"""CIFAR-10 (Krizhevsky, 2009) from the official "python version" archive.

The archive `cifar-10-python.tar.gz` holds a folder `cifar-10-batches-py/` with `data_batch_1`
... `data_batch_5` (50,000 training images), `test_batch` (10,000) and `batches.meta` (the
class names). Each is a dict pickled by Python 2, so its keys are bytes: b"data" is uint8
(n, 3072), one image per row stored channel by channel (1024 red, 1024 green, 1024 blue
values, each a 32x32 image row by row), and b"labels" a list of n integers.

The reader takes the folder, the folder that contains it, or the .tar.gz itself (read in
place with `tarfile`, nothing extracted), and downloads the archive only when asked.
"""

import pickle
import tarfile
import zlib
from pathlib import Path

import numpy as np

from tinybt.data.dataset import Dataset
from tinybt.data.download import download
from tinybt.errors import TinyBTError

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
MD5 = "c58f30108f718f92721af3b95e74349a"
ARCHIVE = "cifar-10-python.tar.gz"
FOLDER = "cifar-10-batches-py"
BATCHES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
FILES = BATCHES["train"] + BATCHES["test"] + ["batches.meta"]

# The mean and std of the 50,000 official training images, per channel. They are used for
# every copy of CIFAR-10, a subset included, so that all runs normalise alike.
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)


def load(split, data_dir, download_missing=False):
    """The `split` ("train" or "test") of CIFAR-10 found at `data_dir`, as a Dataset.

    `data_dir` may be the folder cifar-10-batches-py, a folder holding it or the .tar.gz, or
    the path of a .tar.gz. When none is there and `download_missing`, the official archive is
    downloaded into `data_dir` (163 MB, checked against its MD5).
    """
    source = find(Path(data_dir))
    if source is None:
        if not download_missing:
            raise TinyBTError(
                f"no CIFAR-10 at {data_dir}: point the data directory at {FOLDER}/ or "
                f"{ARCHIVE}, or fetch it (python -m tinybt.train --download; download=True)"
            )
        source = download(URL, Path(data_dir) / ARCHIVE, MD5, desc=f"downloading {ARCHIVE}")
    read = _read_from_archive if source.is_file() else _read_from_folder
    batches = read(source, BATCHES[split] + ["batches.meta"])
    classes = _class_names(batches.pop(), source)
    images = np.concatenate([_images(batch, source) for batch in batches])
    labels = np.concatenate([_labels(batch, source) for batch in batches])
    return Dataset(
        images=images,
        labels=labels,
        classes=classes,
        mean=MEAN,
        std=STD,
        name="cifar10",
        split=split,
    )


def find(data_dir):
    """The folder or archive of CIFAR-10 at or inside `data_dir`, or None if there is none."""
    if data_dir.is_file():
        return data_dir
    for folder in (data_dir / FOLDER, data_dir):
        if any((folder / name).is_file() for name in FILES):
            return folder
    if (data_dir / ARCHIVE).is_file():
        return data_dir / ARCHIVE
    return None


def _read_from_folder(folder, names):
    """The unpickled dicts of the files `names` in `folder`."""
    batches = []
    for name in names:
        path = folder / name
        if not path.is_file():
            raise TinyBTError(
                f"{path} is missing: {folder} is not a complete CIFAR-10 folder; "
                "download the archive again"
            )
        with open(path, "rb") as file:
            batches.append(_unpickle(file, path))
    return batches


def _read_from_archive(archive, names):
    """The unpickled dicts of the files `names` inside the .tar.gz `archive`.

    One pass over the archive in its stored order: a .tar.gz can only be read from the start,
    so looking files up by name would decompress it again for each file.
    """
    try:
        tar = tarfile.open(archive, "r:*")
    except (tarfile.TarError, OSError):
        # tarfile's message lists every compression method it tried, one line each.
        raise TinyBTError(
            f"{archive} is empty, truncated or not a .tar.gz archive: "
            "delete it and download it again"
        ) from None
    found = {}
    try:
        with tar:
            for member in tar:
                name = Path(member.name).name
                if name in names and member.isfile():
                    found[name] = _unpickle(tar.extractfile(member), f"{archive}:{name}")
    except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
        raise TinyBTError(
            f"{archive} is truncated or corrupt ({_first_line(error)}): "
            "delete it and download it again"
        ) from None
    missing = [name for name in names if name not in found]
    if missing:
        raise TinyBTError(
            f"{archive} has no {FOLDER}/{missing[0]}: it is not the CIFAR-10 python archive; "
            "download it again"
        )
    return [found[name] for name in names]


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles only dicts, lists, bytes, numbers and NumPy arrays.

    A pickle can name any Python function to call while it loads, so a tampered file could run
    code; CIFAR-10 needs nothing beyond NumPy's array reconstructors, so nothing else loads.
    """

    ALLOWED = {
        ("_codecs", "encode"),  # how Python 3 writes bytes into a protocol-2 pickle
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _unpickle(file, where):
    """The dict in one CIFAR-10 batch file, keys as bytes (it was pickled by Python 2)."""
    try:
        return _ArrayUnpickler(file, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as error:
        raise TinyBTError(
            f"{where} is truncated or corrupt ({_first_line(error)}): "
            "delete it and download CIFAR-10 again"
        ) from None


def _first_line(error):
    """The first line of an exception's message, so the error stays one line."""
    return (str(error).splitlines() or [type(error).__name__])[0]


def _class_names(meta, source):
    """The class names in batches.meta: its b"label_names", a list of bytes."""
    names = meta.get(b"label_names") if isinstance(meta, dict) else None
    if not isinstance(names, list) or not all(isinstance(name, bytes) for name in names):
        raise TinyBTError(
            f"batches.meta in {source} has no list of class names: download CIFAR-10 again"
        )
    return [name.decode(errors="replace") for name in names]


def _images(batch, source):
    """uint8 (n, 32, 32, 3) from the channel-major rows (n, 3072) of one batch."""
    data = np.asarray(batch.get(b"data")) if isinstance(batch, dict) else None
    if data is None or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise TinyBTError(
            f"a batch in {source} does not hold CIFAR-10 images (uint8 rows of 3072 values): "
            "download CIFAR-10 again"
        )
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


def _labels(batch, source):
    """int64 (n,): one whole-number label per image of a batch that `_images` accepted."""
    labels = np.asarray(batch.get(b"labels", []))
    count = len(batch[b"data"])
    if labels.shape != (count,) or (count and labels.dtype.kind not in "iu"):
        raise TinyBTError(
            f"a batch in {source} does not hold one whole-number label for each of its {count} "
            "images: download CIFAR-10 again"
        )
    return labels.astype(np.int64)
