"""Which array library holds the numbers: NumPy on the CPU, CuPy on an NVIDIA GPU, or `strict`.

CuPy mirrors NumPy's API, so every op is written once against a module called `xp` and runs on
either. This is the only file that imports cupy. The choice comes from, in order: an explicit
`set_backend("cupy")` (what `--backend` calls), the environment variable `TINYBT_BACKEND`, and
otherwise NumPy. `strict` is NumPy whose arrays refuse every implicit host/device conversion
that CuPy refuses (`tinybt/strict.py`): running on it checks code for the GPU on any CPU.

One rule picks the array module: a function given arrays uses their module,
`get_array_module(array)`; a function that makes arrays from nothing (zeros, constants, a
Tensor from a list) uses `xp()`, the backend in use. Host data (NumPy arrays, lists) crosses
only through `to_device`, and device arrays come back only through `to_host`.

Random numbers are always drawn on the host with NumPy's generator and then moved to the
device: the arrays drawn are small (weights, per-sample augmentation parameters), and a seed
then means the same thing on both backends.

On the host, how NumPy's memory is recycled matters too: see `reuse_freed_memory`.
"""

import ctypes
import os
import sys

import numpy

from tinybt import strict
from tinybt.errors import TinyBTError

BACKENDS = ("numpy", "cupy", "strict")


class BackendError(TinyBTError):
    """The requested array backend cannot be used on this machine."""


_module = None  # the array module in use, chosen on first use


def set_backend(name):
    """Use `name` ("numpy", "cupy" or "strict") for every array created from now on."""
    global _module
    _module = _load(name)


def xp():
    """The array module in use: `numpy`, `cupy` or strict's stand-in for cupy."""
    if _module is None:
        name = os.environ.get("TINYBT_BACKEND", "numpy")
        if name not in BACKENDS:
            raise BackendError(environment_complaint(name))
        set_backend(name)
    return _module


def environment_complaint(name):
    """The error for a TINYBT_BACKEND that names no backend: the variable, not a flag."""
    return (
        f"the environment variable TINYBT_BACKEND={name!r} is not one of {', '.join(BACKENDS)}: "
        "set it to one of them, or unset it"
    )


def backend_name():
    """ "numpy", "cupy" or "strict"."""
    return xp().__name__


def _load(name):
    if name == "numpy":
        return numpy
    if name == "strict":
        return strict.numpy_on_device
    if name != "cupy":
        raise BackendError(f"unknown backend {name!r}: choose one of {', '.join(BACKENDS)}")
    try:
        import cupy
    except ImportError:
        raise BackendError(
            "the cupy backend needs CuPy, which is not installed: "
            'pip install -e ".[gpu]" on a machine with an NVIDIA GPU, or use --backend numpy'
        ) from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except cupy.cuda.runtime.CUDARuntimeError:
        count = 0
    if count == 0:
        raise BackendError("CuPy is installed but no CUDA GPU is visible: use --backend numpy")
    return cupy


def use_gpu(choose):
    """On the cupy backend, make the GPU `choose(count)` picks, of the `count` this machine
    shows, the one every array lives on from now on (several processes of one machine, one
    GPU each: tinybt.distributed.gpu_index); on the host, nothing."""
    if xp().__name__ == "cupy":
        _module.cuda.Device(choose(_module.cuda.runtime.getDeviceCount())).use()


def get_array_module(array):
    """The module (numpy, cupy or strict's) that owns `array`; lets an op follow its inputs."""
    if isinstance(array, strict.DeviceArray):
        return strict.numpy_on_device
    if hasattr(array, "__cuda_array_interface__"):  # only a loaded cupy makes such arrays
        return _module
    return numpy


def to_device(array, dtype=None):
    """`array` (anything array-like) as an array of the backend in use."""
    return xp().asarray(array, dtype=dtype)


def to_host(array):
    """`array` as a NumPy array, for printing, plotting and saving."""
    if hasattr(array, "__cuda_array_interface__"):  # a CuPy array: copy it off the GPU
        return array.get()
    if isinstance(array, strict.DeviceArray):  # a copy too, as from a GPU
        return array._array.copy()
    return numpy.asarray(array)


def synchronize():
    """Wait until the GPU has run every kernel queued so far, so that a timer around a step
    measures the step (CuPy launches kernels and returns at once); on the host, a no-op."""
    if _module is not None and _module.__name__ == "cupy":
        _module.cuda.Device().synchronize()


def scatter_add(target, indices, values):
    """target[indices] += values, adding repeated indices as many times as they appear.

    Plain `target[indices] += values` keeps only one of the repeated writes. NumPy's
    `add.at` and CuPy's `scatter_add` sum them all.
    """
    if isinstance(target, numpy.ndarray):
        numpy.add.at(target, indices, values)
    elif isinstance(target, strict.DeviceArray):  # takes host indices and values, as cupyx does
        numpy.add.at(target._array, *strict.unwrap((indices, values), allow_host=True))
    else:
        import cupyx

        cupyx.scatter_add(target, indices, values)


def reuse_freed_memory():
    """Have the C allocator keep the memory NumPy frees, to hand it out again; True if it could.

    Every op makes a fresh array for its result, and a training step makes and frees the same
    large arrays again and again. glibc's malloc gives blocks of more than 32 MB (such as the
    im2col matrices) pages of their own from the operating system and returns them on free,
    so the next step's array of that size starts on fresh pages, which the kernel maps and
    zero-fills again, fault by fault: about 20,000 page faults and a fifth of a training step
    at batch 128. With mmap switched off (M_MMAP_MAX = 0) and a trim threshold of 1 GB,
    malloc serves every block from its heap and keeps freed ones there for reuse. The setting
    holds for the whole process, so training calls it, not the import; it does nothing but
    return False off Linux or without glibc.
    """
    if sys.platform != "linux":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # another C library, such as musl
        return False
    M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # the option numbers in glibc's <malloc.h>
    return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 1 << 30))


def rng(seed):
    """A seeded NumPy random generator (always on the host: see the module docstring)."""
    return numpy.random.default_rng(seed)
