"""Datasets: every source becomes a `Dataset` of uint8 images (N, H, W, 3) and int64 labels.

    from tinybt.data import load_dataset
    train = load_dataset("shapes", split="train", data_dir="data", seed=0)
    for images, labels in train.batches(256, rng):
        ...

"shapes"   generated offline from `seed` in a few seconds (tinybt/data/shapes.py), the default
"cifar10"  the official python archive or its folder (tinybt/data/cifar10.py)
"folder"   your own images, one subfolder per class, at `data_dir`: a folder or an archive of one
           (tinybt/data/folder.py; decoded once and cached, tinybt/data/cache.py)

data/README.md says where each dataset's files go.
"""

from numbers import Integral

from tinybt.data import cifar10, folder, shapes
from tinybt.data.dataset import Dataset, channel_stats
from tinybt.errors import TinyBTError

DATASETS = ("shapes", "cifar10", "folder")
SPLITS = ("train", "test")
# The smallest value of each whole-number argument. A shape of radius 0.42 * size must fit
# inside the image with half a pixel to spare, so shapes needs size >= 7; 8 keeps a stride-2
# network's feature maps meaningful for every dataset.
SMALLEST = {"seed": 0, "size": 8, "num_train": 1, "num_test": 1, "test_every": 2}

__all__ = ["DATASETS", "Dataset", "channel_stats", "load_dataset"]


def load_dataset(name, split="train", data_dir="data", seed=0, size=32, download=False, **options):
    """The `split` ("train" or "test") of dataset `name`, loaded into host memory.

    seed      shapes: the seed its images are generated from (the others are fixed files)
    size      shapes and folder: the side of the square images; CIFAR-10 is always 32
    download  cifar10: fetch the official archive into `data_dir` when none is there
    options   shapes: num_train=5000, num_test=1000; folder: test_every=5
    """
    if name not in DATASETS:
        raise TinyBTError(f"unknown dataset {name!r}: choose one of {', '.join(DATASETS)}")
    if split not in SPLITS:
        raise TinyBTError(f"unknown split {split!r}: choose one of {', '.join(SPLITS)}")
    allowed = {"shapes": {"num_train", "num_test"}, "folder": {"test_every"}}.get(name, set())
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise TinyBTError(
            f"dataset {name!r} takes no option {unknown[0]!r}: "
            f"its options are {', '.join(sorted(allowed)) or 'none'}"
        )
    for option, value in {"seed": seed, "size": size, **options}.items():
        if isinstance(value, bool) or not isinstance(value, Integral) or value < SMALLEST[option]:
            raise TinyBTError(
                f"{option} must be a whole number >= {SMALLEST[option]}, got {value!r}"
            )
    if name == "shapes":
        return shapes.load(split, data_dir, seed=seed, size=size, **options)
    if name == "folder":
        return folder.load(split, data_dir, size=size, **options)
    if size != 32:
        raise TinyBTError(f"CIFAR-10 images are 32x32, not {size}x{size}: use size=32")
    return cifar10.load(split, data_dir, download_missing=download)
