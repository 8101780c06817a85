"""Shapes: an offline dataset of coloured shapes, generated from a seed in a few seconds.

Each 32x32 RGB image shows one shape on a textured background; the label is the shape. The
colour of the shape and of the background, its size, position and rotation, and the background
gradient and noise are all drawn independently of the label, so colour carries no information
about the class. A network can only classify these images by learning shape, which is exactly
what the colour jitter and grayscale of Barlow Twins are there to force: without them, the two
views of an image share a colour histogram, and matching histograms is an easy way to make the
views agree that says nothing about the shape.

Drawing is vectorised over a coordinate grid. Each shape is a signed distance function in its
own unit frame (negative inside, the shape fits in the unit circle); a pixel's coverage
clip(0.5 - distance_in_pixels, 0, 1) anti-aliases the edge at the cost of one subtraction.
"""

import contextlib
import os
import sys
from pathlib import Path

import numpy as np

from tinybt.data.dataset import Dataset, channel_stats
from tinybt.errors import TinyBTError

CLASSES = ("disc", "ring", "square", "triangle", "cross", "star", "bar", "crescent")
VERSION = 1  # part of the cache file name: bump it when the drawing changes
CACHED = ("train_images", "train_labels", "test_images", "test_labels", "mean", "std")

RADIUS = (0.22, 0.42)  # of the image size: the radius of the circle that holds the shape
MIN_COLOR_DISTANCE = 0.35  # RGB distance between shape and background, so the shape shows
GRADIENT = 0.15  # largest brightness change across the background, like uneven lighting
NOISE = 0.03  # std of the per-pixel noise over the whole image


def load(split, data_dir, seed=0, num_train=5000, num_test=1000, size=32):
    """The `split` ("train" or "test") of the shapes dataset, generated or read from the cache.

    Both splits are generated together from independent streams of `seed` and cached in one
    .npz under `data_dir`, named after every parameter, so changing one makes a new file.
    """
    if Path(data_dir).is_file():
        raise TinyBTError(
            f"the data directory {data_dir} is a file, not a folder (shapes are generated "
            "into one): pass a data directory that is a writable folder"
        )
    path = Path(data_dir) / f"shapes-v{VERSION}-{size}px-{num_train}-{num_test}-seed{seed}.npz"
    arrays = _read_cache(path)
    if arrays is None:
        if path.exists():
            print(f"{path} is truncated or corrupt: generating the shapes again", file=sys.stderr)
        arrays = _generate_splits(seed, num_train, num_test, size)
        _write_cache(path, arrays)
    return Dataset(
        images=arrays[f"{split}_images"],
        labels=arrays[f"{split}_labels"],
        classes=list(CLASSES),
        mean=arrays["mean"],
        std=arrays["std"],
        name="shapes",
        split=split,
    )


def _generate_splits(seed, num_train, num_test, size):
    """Both splits and the training mean/std, as the dict of arrays that is cached."""
    train_seed, test_seed = np.random.SeedSequence(seed).spawn(2)
    train_images, train_labels = generate(num_train, size, np.random.default_rng(train_seed))
    test_images, test_labels = generate(num_test, size, np.random.default_rng(test_seed))
    mean, std = channel_stats(train_images)
    return {
        "train_images": train_images,
        "train_labels": train_labels,
        "test_images": test_images,
        "test_labels": test_labels,
        "mean": mean,
        "std": std,
    }


def _read_cache(path):
    """The cached arrays, or None when the file is missing, unreadable or incomplete (a copy
    cut short, say): then the shapes are generated again."""
    try:
        with np.load(path) as file:
            arrays = {key: file[key] for key in file.files}
    except Exception:  # a truncated .npz raises what the byte it was cut at leads to
        return None
    return arrays if set(arrays) == set(CACHED) else None


def _write_cache(path, arrays):
    """Save atomically: write a temporary file beside `path`, then rename it into place."""
    partial = path.with_name(f"{path.name}.{os.getpid()}.part")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(partial, "wb") as file:
            np.savez(file, **arrays)
        os.replace(partial, path)
    except OSError as error:
        raise TinyBTError(
            f"cannot write the shapes cache {path} ({error.strerror}): "
            "pass a data directory that is a writable folder"
        ) from None
    finally:
        # Where the folder is a file or read-only, removing fails too, and that error must not
        # replace the message above.
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)


def generate(num, size, rng, chunk=512):
    """`num` images uint8 (num, size, size, 3) and labels int64 (num,), balanced over CLASSES.

    Labels are a shuffled repeat of 0..K-1, so class counts differ by at most one. Every other
    random quantity is drawn for all images before the labels are used, from the same
    distribution whatever the label.
    """
    labels = rng.permutation(np.arange(num) % len(CLASSES))
    radius = rng.uniform(*RADIUS, size=num) * size
    # The centre keeps the whole circle of the shape inside the image.
    center = rng.uniform(radius[:, None] + 0.5, size - radius[:, None] - 0.5, size=(num, 2))
    angle = rng.uniform(0, 2 * np.pi, size=num)
    foreground, background = _color_pairs(rng, num)
    gradient_angle = rng.uniform(0, 2 * np.pi, size=num)
    gradient_strength = rng.uniform(0, GRADIENT, size=num)

    images = np.empty((num, size, size, 3), dtype=np.uint8)
    for start in range(0, num, chunk):
        part = slice(start, start + chunk)
        coverage = _coverage(labels[part], center[part], radius[part], angle[part], size)
        lighting = _gradient(gradient_angle[part], gradient_strength[part], size)
        picture = (
            background[part, None, None] * (1 - coverage[..., None])
            + foreground[part, None, None] * coverage[..., None]
            + lighting[..., None]
            + rng.normal(0, NOISE, size=coverage.shape + (3,))
        )
        images[part] = np.round(np.clip(picture, 0, 1) * 255)
    return images, labels.astype(np.int64)


def _color_pairs(rng, num):
    """Foreground and background RGB colours (num, 3), uniform in the cube, far enough apart.

    Pairs closer than MIN_COLOR_DISTANCE are drawn again. The rule is symmetric in the two
    colours and ignores the label, so both stay identically distributed for every class.
    """
    foreground = rng.uniform(size=(num, 3))
    background = rng.uniform(size=(num, 3))
    while True:
        too_close = np.linalg.norm(foreground - background, axis=1) < MIN_COLOR_DISTANCE
        if not too_close.any():
            return foreground, background
        count = int(too_close.sum())
        foreground[too_close] = rng.uniform(size=(count, 3))
        background[too_close] = rng.uniform(size=(count, 3))


def _coverage(labels, center, radius, angle, size):
    """Fraction of each pixel covered by its image's shape, float (n, size, size) in [0, 1]."""
    pixel = np.arange(size) + 0.5  # pixel centres
    dx = pixel[None, None, :] - center[:, 0, None, None]
    dy = pixel[None, :, None] - center[:, 1, None, None]
    cos, sin = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
    scale = radius[:, None, None]
    # Rotate by -angle and shrink by the radius: the shape's own unit frame.
    u = (cos * dx + sin * dy) / scale
    v = (-sin * dx + cos * dy) / scale
    distance = np.empty(u.shape)
    for label, name in enumerate(CLASSES):
        chosen = labels == label
        distance[chosen] = SHAPES[name](u[chosen], v[chosen]) * scale[chosen]
    return np.clip(0.5 - distance, 0, 1)


def _gradient(angle, strength, size):
    """A brightness ramp (n, size, size) from -strength/2 to +strength/2 along `angle`."""
    position = (np.arange(size) + 0.5) / size - 0.5
    along = (
        np.cos(angle)[:, None, None] * position[None, None, :]
        + np.sin(angle)[:, None, None] * position[None, :, None]
    )
    return strength[:, None, None] * along


# Signed distance functions in the shape's unit frame: (u, v) arrays -> distance, < 0 inside.


def polygon_distance(u, v, vertices):
    """Signed distance from each point (u, v) to the closed polygon through `vertices` (k, 2).

    Unsigned distance: the nearest of the edges, each a segment a + t (b - a), t in [0, 1].
    Sign: a point is inside when a ray from it towards +u crosses the edges an odd number of
    times (the even-odd rule), which also handles the non-convex star and cross.
    """
    distance = np.full(u.shape, np.inf)
    inside = np.zeros(u.shape, dtype=bool)
    for (ax, ay), (bx, by) in zip(vertices, np.roll(vertices, -1, axis=0), strict=True):
        ex, ey = bx - ax, by - ay
        wx, wy = u - ax, v - ay
        t = np.clip((wx * ex + wy * ey) / (ex * ex + ey * ey), 0, 1)
        distance = np.minimum(distance, np.hypot(wx - t * ex, wy - t * ey))
        if ey != 0:  # a horizontal edge is never crossed by a horizontal ray
            straddles = (ay > v) != (by > v)
            inside ^= straddles & (u < ax + (v - ay) * ex / ey)
    return np.where(inside, -distance, distance)


def regular_polygon(corners, radius=1.0, turn=0.0):
    """Vertices (corners, 2) of a regular polygon on a circle of `radius`, one corner at the top
    when `turn` is 0 (turn is an extra rotation in radians)."""
    angles = np.pi / 2 + turn + 2 * np.pi * np.arange(corners) / corners
    return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def star(points, inner):
    """Vertices (2 * points, 2) of a star: tips on the unit circle, notches at radius `inner`."""
    tips = regular_polygon(points)
    notches = regular_polygon(points, inner, turn=np.pi / points)
    return np.stack([tips, notches], axis=1).reshape(-1, 2)


def plus_sign(reach, half_width):
    """The 12 corners of a plus sign whose arms reach `reach` and are 2 * half_width wide."""
    r, w = reach, half_width
    return np.array(
        [(w, w), (w, r), (-w, r), (-w, w), (-r, w), (-r, -w)]
        + [(-w, -w), (-w, -r), (w, -r), (w, -w), (r, -w), (r, w)]
    )


SQUARE = regular_polygon(4)
TRIANGLE = regular_polygon(3)
STAR = star(5, 0.42)
CROSS = plus_sign(0.95, 0.3)
BAR = np.array([(0.95, 0.25), (-0.95, 0.25), (-0.95, -0.25), (0.95, -0.25)])

SHAPES = {
    "disc": lambda u, v: np.hypot(u, v) - 0.85,
    "ring": lambda u, v: np.abs(np.hypot(u, v) - 0.65) - 0.25,
    "square": lambda u, v: polygon_distance(u, v, SQUARE),
    "triangle": lambda u, v: polygon_distance(u, v, TRIANGLE),
    "cross": lambda u, v: polygon_distance(u, v, CROSS),
    "star": lambda u, v: polygon_distance(u, v, STAR),
    "bar": lambda u, v: polygon_distance(u, v, BAR),
    # A disc with a smaller, shifted disc cut out: inside the first and outside the second.
    "crescent": lambda u, v: np.maximum(np.hypot(u, v) - 0.9, 0.75 - np.hypot(u - 0.45, v)),
}
