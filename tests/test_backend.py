"""The array backend's host-side helpers."""

import json
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


@pytest.fixture
def strict_xp(monkeypatch):
    """The strict backend in use for one test, whatever TINYBT_BACKEND the suite runs on."""
    monkeypatch.setenv("TINYBT_BACKEND", "strict")
    monkeypatch.setattr(backend, "_module", None)  # chosen again on first use, then restored
    return backend.xp()


def refused(call):
    """The message of the TypeError that `call()` must raise."""
    with pytest.raises(TypeError) as error:
        call()
    return str(error.value)


def host_statistics(x):
    """A planted bug: host NumPy code handed a device array, as a plotting helper might be."""
    return np.asarray(x).mean()


PLANTED_LINE = host_statistics.__code__.co_firstlineno + 2  # the np.asarray line


def test_strict_backend_catches_implicit_host_conversions(strict_xp, tmp_path):
    x = backend.to_device(np.arange(6.0).reshape(2, 3))
    host = np.ones(3)
    message = refused(lambda: host_statistics(x))
    assert f"test_backend.py:{PLANTED_LINE}" in message and "backend.to_host" in message
    assert "numpy.savez" in refused(lambda: np.savez(tmp_path / "w.npz", w=x))
    assert "numpy.mean" in refused(lambda: np.mean(x))
    assert "numpy.add" in refused(lambda: x + host)
    assert "numpy.add" in refused(lambda: host + x)
    assert "numpy.less" in refused(lambda: x < host)
    assert "numpy.equal" in refused(lambda: host == x)
    assert "host numpy.ndarray" in refused(lambda: strict_xp.concatenate([x, host[None]]))
    assert "JSON" in refused(lambda: json.dumps({"loss": x.sum()}))  # a 0-d device array
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    refused(lambda: pyplot.imshow(x))
    pyplot.close("all")


def test_strict_backend_allows_what_cupy_allows(strict_xp):
    x = backend.to_device(np.arange(6.0).reshape(2, 3))
    assert backend.backend_name() == "strict" and "strict" in backend.BACKENDS
    assert backend.get_array_module(x) is strict_xp and isinstance(x, strict_xp.ndarray)
    assert backend.get_array_module(np.ones(2)) is np
    total = x.sum()  # a 0-d device array, as in CuPy
    assert isinstance(total, strict_xp.ndarray) and float(total) == 15.0 and int(total) == 15
    assert total.item() == 15.0 and x.tolist() == [[0, 1, 2], [3, 4, 5]] and len(x) == 2
    assert f"{total:.1f}" == "15.0" and bool(total)
    y = 2 * x + np.float32(1) - np.exp(x)  # Python and NumPy scalars, NumPy's ufuncs
    assert isinstance(y, strict_xp.ndarray) and y.shape == (2, 3)
    index = backend.to_device([1, 0])
    assert backend.to_host(x[index]).tolist() == [[3, 4, 5], [0, 1, 2]]
    x[0] = np.zeros(3)  # CuPy copies host values and index arrays in, as here
    assert backend.to_host(x)[0].tolist() == [0, 0, 0]
    on_host = backend.to_host(x)
    assert type(on_host) is np.ndarray
    on_host[:] = 7  # a copy, as from a GPU
    assert float(x.max()) == 5.0
