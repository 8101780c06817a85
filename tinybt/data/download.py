"""Download a file once, check its MD5, and never leave a half-written file behind.

The bytes go to a temporary file beside the destination; only when every byte has arrived and
the checksum matches is it renamed into place with `os.replace`, which is atomic on one file
system. So the destination either does not exist or holds the whole, verified file: an
interrupted download, a truncated response or a corrupt one is deleted and reported.
"""

import contextlib
import hashlib
import os
import urllib.error
import urllib.request
from http.client import HTTPException
from pathlib import Path

from tqdm.auto import tqdm

from tinybt.errors import TinyBTError

CHUNK_BYTES = 1 << 20
TIMEOUT_SECONDS = 60  # per read from the server, not for the whole download


def download(url, path, md5, desc=None):
    """Fetch `url` into `path` (a file name) and return `path` once its MD5 equals `md5`."""
    path = Path(path)
    partial = path.with_name(f"{path.name}.{os.getpid()}.part")
    try:
        if path.is_dir():  # found out before the download, not after it
            raise IsADirectoryError(21, "a folder has its name")
        path.parent.mkdir(parents=True, exist_ok=True)
        received, digest = _fetch(url, partial, desc or f"downloading {path.name}")
        if digest != md5:
            raise TinyBTError(
                f"{url} arrived with MD5 {digest} ({received} bytes), expected {md5}: "
                "the file was deleted; run again, or download it by hand and check it with md5sum"
            )
        os.replace(partial, path)
    except OSError as error:
        raise TinyBTError(
            f"cannot write {path} ({error.strerror}): pass a data directory that is a "
            "writable folder"
        ) from None
    finally:
        # Under a file or in a read-only folder removing fails too, and that error must not
        # replace the message above.
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
    return path


def _fetch(url, partial, desc):
    """Stream `url` into the file `partial`; returns (bytes received, MD5 hex digest)."""
    digest = hashlib.md5()
    received = 0
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
            length = response.headers.get("Content-Length")
            expected = int(length) if length else None
            bar = tqdm(total=expected, desc=desc, unit="B", unit_scale=True, disable=None)
            with open(partial, "wb") as out, bar:
                while chunk := response.read(CHUNK_BYTES):
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, HTTPException, OSError) as error:
        raise TinyBTError(
            f"download of {url} failed after {received} bytes ({_reason(error)}): "
            f"check the network and run again, or download it by hand into {partial.parent}"
        ) from None
    if expected is not None and received != expected:
        raise TinyBTError(
            f"download of {url} stopped after {received} of {expected} bytes: "
            "the partial file was deleted; run again"
        )
    return received, digest.hexdigest()


def _reason(error):
    """The short cause inside a urllib error, which wraps the interesting one."""
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    reason = getattr(error, "reason", None) or error
    return str(reason) or type(reason).__name__
