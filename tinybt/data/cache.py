"""Decoded images, cached: an image folder is decoded once, on every core, and read in seconds
after that.

Decoding is the slow part of loading a folder of JPEGs: about 1 ms an image with pillow, so
47 s for CIFAR-10's 50,000 training images on one core, at every start. So the first load
decodes on every core (a pool of processes, each running pillow) and saves the result as one
.npz file per source and image size,

    $TINYBT_CACHE (default data/cache/)/<name>-<hash of its path>-<size>px.npz
        images   uint8 (N, size, size, 3), the source's images in sorted order of their names
        names, folders, key    what the source held, and its fingerprint (see ImageFiles)

and every later load reads that file instead. The file is rebuilt, with one line saying why,
when the source's fingerprint changed (an image added, changed or removed) or the file is
damaged (a zip's CRC catches any torn or flipped byte). It is written to a temporary file and
renamed, so two processes that build it at once leave one whole file, never a mixture.
"""

import hashlib
import io
import multiprocessing
import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps
from tqdm.auto import tqdm

from tinybt.checkpoint import atomic_savez, read_npz
from tinybt.errors import TinyBTError

CACHE_VERSION = 2  # change it when the decoding changes, so old caches are rebuilt
POOL_FROM = 512  # fewer images than this decode faster in this process than in a pool
# How pillow opens a 16-bit grey PNG or TIFF: "I;16" (or "I;16B"), or "I" in older versions; "I"
# is also a TIFF's 32-bit integers (see to_rgb). 16-bit colour PNGs arrive as "RGB" or "RGBA",
# already reduced to 8 bits by pillow, and need nothing.
SIXTEEN_BIT_GREYS = {"I", "I;16", "I;16B", "I;16L", "I;16N"}


def cache_folder():
    """Where the caches live: $TINYBT_CACHE, or data/cache under the current folder."""
    return Path(os.environ.get("TINYBT_CACHE") or "data/cache")


def note(message):
    print(f"note: {message}", file=sys.stderr)


def decoded_images(files, size):
    """(names, folders, images) of the ImageFiles `files`: the sorted image names, the folder
    names, and uint8 (len(names), size, size, 3), from the cache when it is current."""
    key = f"v{CACHE_VERSION} {size}px {files.fingerprint()}"
    path = cache_path(files, size)
    cached = _read_cache(path, key, files)
    if cached is not None:
        return cached
    images, folders = files.listing()
    names = [name for name, _, _ in images]
    decoded = decode_all(files, names, size)
    try:
        arrays = {"images": decoded, "names": np.array(names, dtype=str)}
        arrays.update(folders=np.array(sorted(folders), dtype=str), key=np.array(key))
        atomic_savez(path, arrays)
    except TinyBTError as error:  # a read-only or full disk: the images are decoded anyway
        note(f"the decoded images are not cached ({error})")
    return names, folders, decoded


def cache_path(files, size):
    """The cache file of `files` at `size`: one per source (by its absolute path) and size."""
    where = hashlib.sha256(str(files.path.resolve()).encode()).hexdigest()[:8]
    stem = files.path.name.split(".")[0] or "images"
    return cache_folder() / f"{stem}-{where}-{size}px.npz"


def _read_cache(path, key, files):
    """(names, folders, images) from the cache at `path` if it is current, else None."""
    if not path.is_file():
        return None
    try:
        cached = read_npz(path, "decoding the images again")
        if str(cached["key"]) != key:
            note(_why_stale(str(cached["key"]), key, files))
            return None
        names, images = cached["names"].tolist(), cached["images"]
        if images.dtype != np.uint8 or images.ndim != 4 or len(images) != len(names):
            raise TinyBTError(f"{path} holds no images of its names: decoding the images again")
        return names, set(cached["folders"].tolist()), images
    except TinyBTError as error:
        note(str(error))
    except KeyError:  # an .npz of other arrays
        note(f"{path} is not an image cache of tinybt's: decoding the images again")
    return None


def _why_stale(cached, key, files):
    """The note saying why a cache whose key is `cached` is not the current `key`."""
    if cached.rpartition(" ")[2] != key.rpartition(" ")[2]:  # the fingerprint, last
        return f"the images in {files.describe()} changed since they were cached: decoding again"
    return f"{files.describe()} was cached at another size or version of tinybt: decoding again"


def decode_all(files, names, size):
    """uint8 (len(names), size, size, 3): the images `names` of `files`, decoded on every core.

    This process reads the files' bytes (cheap, and in order for a compressed tar) and the
    pool's processes decode them; a progress bar counts the images.
    """
    images = np.empty((len(names), size, size, 3), dtype=np.uint8)
    index = {name: i for i, name in enumerate(names)}
    items = ((name, data, size) for name, data in files.read(names))
    workers = min(os.cpu_count() or 1, max(1, len(names) // POOL_FROM))
    bar = tqdm(total=len(names), desc="decoding images", unit="image", disable=None)
    with bar:
        if workers == 1:
            results = map(decode, items)
            _fill(images, index, results, files, bar)
        else:
            with multiprocessing.get_context().Pool(workers) as pool:
                _fill(images, index, pool.imap_unordered(decode, items, chunksize=64), files, bar)
    return images


def _fill(images, index, results, files, bar):
    """Put each decoded image at its name's row; stop at the first unreadable one."""
    for name, image in results:
        if isinstance(image, str):
            raise TinyBTError(
                f"cannot read image {files.describe(name)} ({image}): remove or replace it"
            )
        images[index[name]] = image
        bar.update()


def decode(item):
    """(name, uint8 (size, size, 3)) of item = (name, the file's bytes, size), or (name, the
    reason) when pillow cannot read it. Runs in the pool's processes: plain values in and out."""
    name, data, size = item
    try:
        with Image.open(io.BytesIO(data)) as image:
            return name, np.asarray(square(to_rgb(image), size))
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        return name, str(error).split("\n")[0] or type(error).__name__


def square(image, size):
    """The centred square of the pillow image, resized to size x size: cropping first keeps the
    proportions, where a plain resize would squash a landscape photograph."""
    return ImageOps.fit(image, (size, size), Image.BICUBIC)


def to_rgb(image):
    """The pillow image `image` in mode "RGB", 8 bits per channel.

    pillow's own convert("RGB") clips a 16-bit grey at 255, which turns almost every pixel
    white; so 16-bit greys are first scaled to 8 bits: 0..65535 -> 0..255 is a division by 257.
    A TIFF can also hold 32-bit integers ("I" beyond 16 bits) or floats ("F") per pixel, on a
    scale the file does not state (floats from 0 to 1, or to 255, or in physical units); pillow
    would clip them to white or round them to black, so they are refused, naming the file.
    """
    if image.mode == "F":
        raise ValueError("it holds 32-bit floats, on a scale the file does not state: save it "
                         "with 8 or 16 bits per channel")
    if image.mode in SIXTEEN_BIT_GREYS:
        grey = np.asarray(image).astype(np.float64)
        if grey.min() < 0 or grey.max() > 65535:
            raise ValueError("it holds 32-bit integers, beyond 16 bits: save it with 8 or 16 "
                             "bits per channel")
        image = Image.fromarray(np.round(grey / 257).clip(0, 255).astype(np.uint8))  # mode "L"
    return image.convert("RGB")
