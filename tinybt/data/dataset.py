"""A labelled image dataset held in host memory, and its shuffled batches.

Every dataset in tinybt, whatever its source, ends up as one `Dataset`: uint8 images
`(N, H, W, 3)`, integer labels `(N,)`, class names, and the per-channel mean and std of the
training images, which the augmentation pipeline uses to normalise what the model sees. The
images stay uint8 on the host (a quarter of the memory of float32) and become float on the
array backend one batch at a time, inside `tinybt.augment`.
"""

from dataclasses import dataclass

import numpy as np

from tinybt.errors import TinyBTError

STATS_CHUNK = 4096  # images converted to float at once when computing the mean and std


@dataclass(repr=False)
class Dataset:
    """Images, labels and what is needed to normalise them.

    images  uint8 (N, H, W, 3), on the host
    labels  int64 (N,), each in range(len(classes))
    classes class names, `classes[label]`
    mean, std  float32 (3,), per channel in [0, 1] units, from the *training* split, so the
            test split of a dataset is normalised exactly as its training split is
    """

    images: np.ndarray
    labels: np.ndarray
    classes: list
    mean: np.ndarray
    std: np.ndarray
    name: str = ""
    split: str = ""

    def __post_init__(self):
        images, labels = self.images, self.labels
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise TinyBTError(
                f"dataset images must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}"
            )
        if labels.shape != images.shape[:1]:
            raise TinyBTError(f"{len(labels)} labels for {len(images)} images: one label each")
        if len(labels) and not (0 <= labels.min() and labels.max() < len(self.classes)):
            raise TinyBTError(
                f"labels run from {labels.min()} to {labels.max()} but there are "
                f"{len(self.classes)} classes: each label must index the class names"
            )
        self.labels = labels.astype(np.int64, copy=False)
        self.mean = np.asarray(self.mean, dtype=np.float32)
        self.std = np.asarray(self.std, dtype=np.float32)

    def __len__(self):
        return len(self.images)

    def __repr__(self):
        n, height, width, _ = self.images.shape
        return (
            f"Dataset({self.name!r}, split={self.split!r}: {n} images {height}x{width}, "
            f"{len(self.classes)} classes)"
        )

    def batches(self, batch_size, order=None, start=0, drop_last=True):
        """Yield (images uint8 (B, H, W, 3), labels int64 (B,)) on the host, batch `start`
        to the end of one pass over the data.

        `order` is the sequence of image indices to go through: a training epoch passes
        `rng.permutation(len(dataset))`; None keeps the stored order (for evaluation). A run
        that stopped mid-epoch resumes exactly by passing the same order and the batch it
        reached as `start`. `drop_last` leaves out the final short batch, so every batch has
        the same size: Barlow Twins standardises each feature over the batch, and a batch of
        3 would give a noisy, lopsided step.
        """
        if batch_size < 1:
            raise TinyBTError(f"batch size must be at least 1, got {batch_size}")
        if drop_last and batch_size > len(self):
            raise TinyBTError(
                f"batch size {batch_size} is larger than the {len(self)} images of "
                f"{self.name} {self.split}: use a smaller batch size"
            )
        order = np.arange(len(self)) if order is None else order
        stop = len(self) - len(self) % batch_size if drop_last else len(self)
        for first in range(start * batch_size, stop, batch_size):
            chosen = order[first : first + batch_size]
            yield self.images[chosen], self.labels[chosen]


def channel_stats(images):
    """Per-channel mean and std (float32 (3,), in [0, 1] units) of uint8 images (N, H, W, 3).

    Sums run in float64 over chunks, so 50,000 images need neither 600 MB of floats at once
    nor suffer float32 round-off; std = sqrt(E[x^2] - E[x]^2) over every pixel of the channel.
    """
    total = np.zeros(3)
    total_squares = np.zeros(3)
    for start in range(0, len(images), STATS_CHUNK):
        chunk = images[start : start + STATS_CHUNK].reshape(-1, 3).astype(np.float64) / 255
        total += chunk.sum(axis=0)
        total_squares += (chunk**2).sum(axis=0)
    count = images[..., 0].size
    mean = total / count
    std = np.sqrt(np.maximum(total_squares / count - mean**2, 0))
    return mean.astype(np.float32), std.astype(np.float32)
