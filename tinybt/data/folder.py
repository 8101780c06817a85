"""Your own photographs: a folder (or an archive of one) with one subfolder of images per class.

    root/cat/0001.jpg          root/train/cat/0001.jpg
    root/cat/0002.png    or    root/train/dog/...
    root/dog/...               root/test/cat/...

A class's images may sit in subfolders of its folder, at any depth; hidden files and folders
(.git, .ipynb_checkpoints, macOS's ._ files) are left out. With the layout on the right the
split is yours. With the one on the left, tinybt splits each class itself, deterministically:
its files sorted by path, every `test_every`-th goes to the test split (the 5th, 10th, ...
with the default 5, so a fifth of each class), the rest to train.

The folder may be given as a .tar, .tar.gz, .tgz or .zip archive of it, read in place
(tinybt/data/imagefiles.py). Each image is read with pillow, converted to RGB, cropped to the
centred square and resized to `size` x `size`; 16-bit images are scaled to 8 bits by their
depth, never clipped. The decoded images are cached (tinybt/data/cache.py), so only the first
load of a folder pays for decoding.
"""

import numpy as np

from tinybt.data.cache import decoded_images
from tinybt.data.dataset import Dataset, channel_stats
from tinybt.data.imagefiles import EXTENSIONS, ImageFiles
from tinybt.errors import TinyBTError


def load(split, data_dir, size=32, test_every=5):
    """The `split` ("train" or "test") of the image folder or archive `data_dir`, as a Dataset.

    Both splits are known, since the mean and std always come from the training images.
    """
    files = ImageFiles(data_dir)
    names, folders, images = decoded_images(files, size)
    row = {name: index for index, name in enumerate(names)}
    if "train" in folders and "test" in folders:
        classes = _class_names(files, folders, "train")
        test_classes = _class_names(files, folders, "test")
        if test_classes != classes:
            raise TinyBTError(
                f"the class folders of {files.describe('test')} ({', '.join(test_classes)}) "
                f"differ from those of {files.describe('train')} ({', '.join(classes)}): "
                "give both the same classes"
            )
        chosen = {
            "train": _list_images(files, names, classes, "train"),
            "test": _list_images(files, names, classes, "test"),
        }
    else:
        classes = _class_names(files, folders, "")
        chosen = _split_every(_list_images(files, names, classes, ""), test_every)
    train_images = images[[row[name] for name, _ in chosen["train"]]]
    mean, std = channel_stats(train_images)
    if split == "test":
        images = images[[row[name] for name, _ in chosen["test"]]]
    return Dataset(
        images=train_images if split == "train" else images,
        labels=np.array([label for _, label in chosen[split]], dtype=np.int64),
        classes=classes,
        mean=mean,
        std=std,
        name=f"folder {files.describe()}",
        split=split,
    )


def _class_names(files, folders, parent):
    """The sorted names of the folders directly in `parent` ("" for the top): one class each."""
    depth = parent.count("/") + 1 if parent else 0
    inside = parent + "/" if parent else ""
    classes = sorted(
        f[len(inside) :] for f in folders if f.startswith(inside) and f.count("/") == depth
    )
    where = files.describe(parent)
    if not classes:
        # an archive of one class folder reads as that folder, which has none
        inside = f" (read inside its folder {files.prefix})" if files.prefix and not parent else ""
        raise TinyBTError(
            f"{where}{inside} has no class subfolders: put each class's images in root/name/"
        )
    # One class makes every prediction right: both encoders would report 100% and mean nothing.
    if len(classes) < 2:
        raise TinyBTError(
            f"{where} has one class subfolder ({classes[0]}): a classifier needs at least 2, "
            "so put each class's images in its own subfolder"
        )
    return classes


def _list_images(files, names, classes, parent):
    """[(name, label)] for the images of every class folder in `parent`, sorted by class, then
    name. As torchvision's ImageFolder does, a class's images may sit in subfolders at any
    depth of its folder."""
    inside = parent + "/" if parent else ""
    chosen = []
    for label, name in enumerate(classes):
        folder = inside + name
        images = [n for n in names if n.startswith(folder + "/")]
        if not images:
            raise TinyBTError(
                f"class folder {files.describe(folder)} has no images "
                f"({', '.join(sorted(EXTENSIONS))}): add some or remove the folder"
            )
        chosen += [(image, label) for image in images]
    return chosen


def _split_every(files, test_every):
    """{"train": [...], "test": [...]}: every `test_every`-th file of each class to test.

    The first file of each class goes to train (test_every >= 2), so train is never empty.
    """
    split = {"train": [], "test": []}
    position = {}  # how many files of each class have been seen
    for name, label in files:
        position[label] = position.get(label, 0) + 1
        split["test" if position[label] % test_every == 0 else "train"].append((name, label))
    if not split["test"]:
        raise TinyBTError(
            f"the image folder has no test images: give each class at least {test_every} images, "
            "or a smaller test_every"
        )
    return split


def read_all(data_dir, size=32):
    """Every image of the folder or archive `data_dir`, whatever its layout, in sorted order of
    its name: (names, uint8 images (N, size, size, 3), labels (N,) or None, classes or None).

    Labels are given where every image sits in a class folder (root/class/... or
    root/train|test/class/...), numbered in sorted order of the class names.
    """
    files = ImageFiles(data_dir)
    names, folders, images = decoded_images(files, size)
    if not names:
        raise TinyBTError(
            f"{files.describe()} holds no images ({', '.join(sorted(EXTENSIONS))}): "
            "give a folder of images or an archive of one"
        )
    split = "train" in folders and "test" in folders
    depth = 2 if split else 1  # where the class folder is in an image's path
    parts = [name.split("/") for name in names]
    if any(len(p) <= depth for p in parts):  # an image outside any class folder
        return names, images, None, None
    classes = sorted({p[depth - 1] for p in parts})
    labels = np.array([classes.index(p[depth - 1]) for p in parts], dtype=np.int64)
    return names, images, labels, classes
