"""Shared test helpers.

The whole suite runs on the backend named by TINYBT_BACKEND (numpy by default), so tests build
arrays with `backend.xp()` and compare them on the host with `to_host`.
"""

import contextlib
import http.server
import os
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest

from tinybt import backend
from tinybt.exercises import MARKER_SPELLING

# Decoded image folders are cached (tinybt/data/cache.py): never in the checkout during tests.
os.environ["TINYBT_CACHE"] = tempfile.mkdtemp(prefix="tinybt-test-cache-")

SHARED_CIFAR = (
    Path(__file__).resolve().parents[2] / "shared" / "datasets" / "cifar-10-python-subset.tar.gz"
)


@pytest.fixture
def xp():
    """The array module the suite runs on."""
    return backend.xp()


@pytest.fixture
def cifar_subset_archive():
    """Path to the real CIFAR-10 subset beside the checkout; skips where ../shared is absent."""
    if not SHARED_CIFAR.exists():
        pytest.skip(f"{SHARED_CIFAR} not found (it lives in ../shared beside the checkout)")
    return SHARED_CIFAR


def assert_close(actual, expected, rtol=1e-6, atol=1e-8, what="arrays"):
    """Compare two arrays of either backend on the host, saying where they differ most."""
    actual, expected = backend.to_host(actual), backend.to_host(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=what)


@contextlib.contextmanager
def local_server(routes):
    """Serve `routes` on 127.0.0.1 while the block runs; yield the server's base URL.

    routes: {path: (body, length)}, where length is the Content-Length announced (None: no
    header), so a server can promise more bytes than it sends. Any other path answers 404.
    The downloads are tested against it: no test reaches the internet.
    """

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path not in routes:
                self.send_error(404)
                return
            body, length = routes[self.path]
            self.send_response(200)
            if length is not None:
                self.send_header("Content-Length", str(length))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def pytest_configure(config):
    """Load the backend once, before any test: TINYBT_BACKEND=cupy on a machine without CuPy
    or a GPU stops the run with the backend's one-line message, not a failure per test."""
    try:
        backend.xp()
    except backend.BackendError as error:
        raise pytest.UsageError(f"TINYBT_BACKEND={os.environ['TINYBT_BACKEND']}: {error}") from None


def pytest_addoption(parser):
    parser.addoption(
        "--exercise",
        metavar="TASK",
        help="run only the tests of learners' exercise TASK (see docs/EXERCISES.md)",
    )


def pytest_collection_modifyitems(config, items):
    """Record each test's exercise task id; with --exercise TASK, keep only that task's tests.

    The task id goes into the test's user_properties, so that the JUnit XML report which
    `python -m tinybt.exercises check` reads says which task each test belongs to.
    """
    wanted = config.getoption("--exercise")
    kept, dropped = [], []
    for item in items:
        marker = item.get_closest_marker("exercise")
        task = marker.args[0] if marker else None
        if task is not None:
            item.user_properties.append(("exercise", task))
            if MARKER_SPELLING not in item.path.read_text():
                raise pytest.UsageError(
                    f"{item.nodeid} is marked exercise({task!r}) but its file never spells "
                    f"{MARKER_SPELLING!r}: write the marker so, or `check` will not collect it"
                )
        (kept if wanted is None or task == wanted else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
