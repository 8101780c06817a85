"""Your own photographs: a folder with one subfolder of images per class.

    root/cat/0001.jpg          root/train/cat/0001.jpg
    root/cat/0002.png    or    root/train/dog/...
    root/dog/...               root/test/cat/...

A class's images may sit in subfolders of its folder, at any depth; hidden files and folders
(.git, .ipynb_checkpoints, macOS's ._ files) are left out. With the layout on the right the
split is yours. With the one on the left, tinybt splits each class itself, deterministically:
its files sorted by path, every `test_every`-th goes to the test split (the 5th, 10th, ...
with the default 5, so a fifth of each class), the rest to train.

Each image is read with pillow, converted to RGB, cropped to the centred square and resized to
`size` x `size`: cropping first keeps the proportions, where a plain resize would squash a
landscape photograph. 16-bit images are scaled to 8 bits by their depth, never clipped.
"""

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from tinybt.data.dataset import Dataset, channel_stats
from tinybt.errors import TinyBTError

# torchvision's ImageFolder reads the same
EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp"}
# How pillow opens a 16-bit grey PNG: "I;16" (or "I;16B"), or "I" in older versions; PNG, the only
# format here with more than 8 bits, has no 32-bit greys. 16-bit colour PNGs arrive as "RGB" or
# "RGBA", already reduced to 8 bits by pillow, and need nothing.
SIXTEEN_BIT_GREYS = {"I", "I;16", "I;16B", "I;16L", "I;16N"}


def load(split, data_dir, size=32, test_every=5):
    """The `split` ("train" or "test") of the image folder `data_dir`, as a Dataset.

    Both splits are read, since the mean and std always come from the training images.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise TinyBTError(f"no image folder at {root}: pass the folder of class folders")
    if (root / "train").is_dir() and (root / "test").is_dir():
        classes = _class_names(root / "train")
        test_classes = _class_names(root / "test")
        if test_classes != classes:
            raise TinyBTError(
                f"the class folders of {root / 'test'} ({', '.join(test_classes)}) differ from "
                f"those of {root / 'train'} ({', '.join(classes)}): give both the same classes"
            )
        files = {
            "train": _list_images(root / "train", classes),
            "test": _list_images(root / "test", classes),
        }
    else:
        classes = _class_names(root)
        files = _split_every(_list_images(root, classes), test_every)
    train_images = _read_images([path for path, _ in files["train"]], size)
    mean, std = channel_stats(train_images)
    images = train_images if split == "train" else _read_images([p for p, _ in files[split]], size)
    return Dataset(
        images=images,
        labels=np.array([label for _, label in files[split]], dtype=np.int64),
        classes=classes,
        mean=mean,
        std=std,
        name=f"folder {root}",
        split=split,
    )


def _class_names(root):
    """The sorted names of the subfolders of `root`: one class each. Hidden folders (.git,
    .ipynb_checkpoints) are no classes."""
    classes = sorted(path.name for path in root.iterdir() if path.is_dir() and not hidden(path))
    if not classes:
        raise TinyBTError(f"{root} has no class subfolders: put each class's images in root/name/")
    # One class makes every prediction right: both encoders would report 100% and mean nothing.
    if len(classes) < 2:
        raise TinyBTError(
            f"{root} has one class subfolder ({classes[0]}): a classifier needs at least 2, "
            "so put each class's images in its own subfolder"
        )
    return classes


def _list_images(root, classes):
    """[(path, label)] for the images of every class folder, sorted by class, then path.

    As torchvision's ImageFolder does, a class's images may sit in subfolders at any depth of
    its folder; hidden files and folders (.git, .ipynb_checkpoints, macOS's ._ files) are
    left out.
    """
    files = []
    for label, name in enumerate(classes):
        folder = root / name
        paths = sorted(
            path
            for path in folder.rglob("*")
            if path.suffix.lower() in EXTENSIONS
            and path.is_file()
            and not any(hidden(part) for part in path.relative_to(folder).parents[:-1])
            and not hidden(path)
        )
        if not paths:
            raise TinyBTError(
                f"class folder {folder} has no images ({', '.join(sorted(EXTENSIONS))}): "
                "add some or remove the folder"
            )
        files += [(path, label) for path in paths]
    return files


def hidden(path):
    """Whether a file or folder is hidden: its name starts with a dot."""
    return path.name.startswith(".")


def _split_every(files, test_every):
    """{"train": [...], "test": [...]}: every `test_every`-th file of each class to test.

    The first file of each class goes to train (test_every >= 2), so train is never empty.
    """
    split = {"train": [], "test": []}
    position = {}  # how many files of each class have been seen
    for path, label in files:
        position[label] = position.get(label, 0) + 1
        split["test" if position[label] % test_every == 0 else "train"].append((path, label))
    if not split["test"]:
        raise TinyBTError(
            f"the image folder has no test images: give each class at least {test_every} images, "
            "or a smaller test_every"
        )
    return split


def _read_images(paths, size):
    """uint8 (len(paths), size, size, 3): each image centre-cropped to a square and resized."""
    images = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    for index, path in enumerate(paths):
        try:
            with Image.open(path) as image:
                square = ImageOps.fit(to_rgb(image), (size, size), Image.BICUBIC)
        except (OSError, Image.DecompressionBombError) as error:
            raise TinyBTError(f"cannot read image {path} ({error}): remove or replace it") from None
        images[index] = np.asarray(square)
    return images


def to_rgb(image):
    """The pillow image `image` in mode "RGB", 8 bits per channel.

    pillow's own convert("RGB") clips a 16-bit grey at 255, which turns almost every pixel
    white; so 16-bit greys are first scaled to 8 bits: 0..65535 -> 0..255 is a division by 257.
    """
    if image.mode in SIXTEEN_BIT_GREYS:
        grey = np.asarray(image).astype(np.float64) / 257
        image = Image.fromarray(np.round(grey).clip(0, 255).astype(np.uint8))  # mode "L"
    return image.convert("RGB")
