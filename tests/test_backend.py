"""The array backend's host-side helpers."""

import os

import numpy as np
import pytest

from tinybt import backend


def resident_bytes():
    """How much of this process's memory is in RAM now (Linux: /proc/self/statm)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_freed_memory_stays_with_the_process_for_reuse():
    """Without reuse_freed_memory(), freeing a 64 MB array hands its 64 MB back to the
    operating system at once; with it, malloc keeps them for the next array."""
    if not backend.reuse_freed_memory():
        pytest.skip("a setting of glibc's malloc, on Linux only")
    array = np.ones(16 * 2**20, np.float32)  # 64 MB, above glibc's largest mmap threshold
    before = resident_bytes()
    del array
    returned = before - resident_bytes()
    assert returned < 2**20, f"{returned / 2**20:.0f} MB went back to the operating system"
