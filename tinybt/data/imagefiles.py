"""Where an image folder's files come from: the folder itself, or an archive of it, read in place.

    ImageFiles("photos")             a folder
    ImageFiles("photos.tar.gz")      .tar, .tar.gz, .tgz or .zip: no need to unpack it

Either way the files are named by their path inside the folder, with "/" between parts
("train/cat/0001.jpg"), so the rest of tinybt never asks which kind it holds. An archive that
holds one folder (as `tar czf photos.tar.gz photos/` makes) is read as that folder. Hidden
files and folders (.git, .ipynb_checkpoints, macOS's ._ files and __MACOSX) are left out.

`listing()` says what the source holds (its image files and folders); `read(names)` gives the
bytes of those files, in the order the source stores them, since a compressed tar can only be
read from its start; `fingerprint()` is what the image cache compares to notice a change.
"""

import hashlib
import os
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from tinybt.errors import TinyBTError

# torchvision's ImageFolder reads the same
EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp"}
ARCHIVES = (".tar", ".tar.gz", ".tgz", ".zip")
# What a damaged archive raises while it is read: a torn gzip stream, a bad header, a bad CRC.
ARCHIVE_ERRORS = (OSError, EOFError, tarfile.TarError, zipfile.BadZipFile, zlib.error)


def is_archive(path):
    """Whether `path` is named as an archive tinybt reads in place."""
    return str(path).lower().endswith(ARCHIVES)


def hidden(name):
    """Whether a file or folder name is hidden: it starts with a dot, or is macOS's __MACOSX."""
    return name.startswith(".") or name == "__MACOSX"


def member_name(raw):
    """An archive member's name as a path inside the folder: "./photos/cat/" -> "photos/cat"."""
    return "/".join(part for part in raw.split("/") if part not in ("", "."))


def _unreadable(error):
    """What os.walk calls with the OSError of a folder it cannot list."""
    raise TinyBTError(
        f"cannot read the folder {error.filename} ({error.strerror}): give yourself read "
        "access to it, or move it out of the image folder"
    )


def is_image(name):
    return PurePosixPath(name).suffix.lower() in EXTENSIONS


class ImageFiles:
    """The image files of a folder, or of a .tar, .tar.gz, .tgz or .zip archive of one."""

    def __init__(self, path):
        self.path = Path(path)
        self.archive = is_archive(self.path)
        if self.archive and not self.path.is_file():
            raise TinyBTError(f"no archive at {self.path}: pass an image folder or its archive")
        if not self.archive and not self.path.is_dir():
            raise TinyBTError(
                f"no image folder at {self.path}: pass the folder of class folders, or an "
                f"archive of it ({', '.join(ARCHIVES)})"
            )
        self._entries = None
        self.prefix = ""  # the one folder an archive wraps everything in, with its "/"

    def describe(self, name=""):
        """How messages name the file or folder `name` of the source ("" is the source)."""
        if not self.archive:
            return str(self.path / name) if name else str(self.path)
        return f"{name} in {self.path}" if name else str(self.path)

    # ----- what the source holds -----
    def listing(self):
        """(images, folders): the sorted names of the image files, and the set of folder names.

        Each image is (name, size in bytes, modification time in ns).
        """
        if self._entries is None:
            entries = self._archive_entries() if self.archive else self._folder_entries()
            self._entries = self._unwrapped(entries)
        files, folders = self._entries
        return sorted(f for f in files if is_image(f[0])), folders

    def _folder_entries(self):
        """[(name, size, mtime_ns)] of the folder's files, and its folders' names. A subfolder
        that cannot be read stops the load: skipping it would train on part of the data."""
        files, folders = [], set()
        for top, subfolders, names in os.walk(self.path, onerror=_unreadable):
            subfolders[:] = [folder for folder in subfolders if not hidden(folder)]
            where = Path(top).relative_to(self.path)
            folders.update((where / folder).as_posix() for folder in subfolders)
            for name in names:
                path = Path(top) / name
                if not hidden(name) and path.is_file():
                    status = path.stat()
                    files.append(((where / name).as_posix(), status.st_size, status.st_mtime_ns))
        return files, folders

    def _archive_entries(self):
        """The same for an archive; folders are also those its files' names imply."""
        files, folders = [], set()
        try:
            for name, size, is_folder in self._members():
                name = member_name(name)
                parts = name.split("/")
                if not name or any(hidden(part) for part in parts):
                    continue
                folders.update("/".join(parts[:depth]) for depth in range(1, len(parts)))
                if is_folder:
                    folders.add(name)
                else:
                    files.append((name, size, 0))
        except ARCHIVE_ERRORS as error:
            raise self._damaged(error) from None
        return files, folders

    def _members(self):
        """(name, size, is a folder) of every member of the archive."""
        if self.path.name.lower().endswith(".zip"):
            with zipfile.ZipFile(self.path) as archive:
                for info in archive.infolist():
                    yield info.filename, info.file_size, info.is_dir()
            return
        with tarfile.open(self.path, "r:*") as archive:
            for member in archive:
                if member.isfile() or member.isdir():
                    yield member.name, member.size, member.isdir()

    def _unwrapped(self, entries):
        """Entries of an archive that holds one folder, as if that folder had been given."""
        files, folders = entries
        tops = {name.split("/")[0] for name, _, _ in files} | {f.split("/")[0] for f in folders}
        if not self.archive or len(tops) != 1 or any("/" not in name for name, _, _ in files):
            return entries
        self.prefix = tops.pop() + "/"
        cut = len(self.prefix)
        return (
            [(name[cut:], size, mtime) for name, size, mtime in files],
            {f[cut:] for f in folders if f.startswith(self.prefix)},
        )

    def fingerprint(self):
        """A digest of what the source holds: every image's name, size and modification time
        for a folder; an archive's own size and modification time (its members cannot change
        without it changing)."""
        digest = hashlib.sha256()
        if self.archive:
            status = self.path.stat()
            digest.update(f"archive {status.st_size} {status.st_mtime_ns}".encode())
        else:
            for name, size, mtime in self.listing()[0]:
                digest.update(f"{name}\t{size}\t{mtime}\n".encode())
        return digest.hexdigest()

    # ----- reading -----
    def read(self, names):
        """Yield (name, bytes) for each of `names`, in the order the source stores them."""
        wanted = set(names)
        if not self.archive:
            for name in names:
                yield name, (self.path / name).read_bytes()
            return
        try:
            yield from self._read_archive(wanted)
        except ARCHIVE_ERRORS as error:
            raise self._damaged(error) from None

    def _read_archive(self, wanted):
        cut = len(self.prefix)
        if self.path.name.lower().endswith(".zip"):
            with zipfile.ZipFile(self.path) as archive:
                for info in archive.infolist():
                    name = member_name(info.filename)[cut:]
                    if name in wanted:
                        yield name, archive.read(info)
            return
        with tarfile.open(self.path, "r:*") as archive:
            for member in archive:
                name = member_name(member.name)[cut:]
                if member.isfile() and name in wanted:
                    yield name, archive.extractfile(member).read()

    def _damaged(self, error):
        reason = str(error).split("\n")[0] or type(error).__name__
        return TinyBTError(
            f"cannot read the archive {self.path} ({reason}): it is damaged or not a "
            f"{', '.join(ARCHIVES)} file; download or pack it again"
        )
