"""Where an image folder's files come from: the folder itself, or an archive of it, read in place.

    ImageFiles("photos")             a folder
    ImageFiles("photos.tar.gz")      .tar, .tar.gz, .tgz or .zip: no need to unpack it

Either way the files are named by their path inside the folder, with "/" between parts
("train/cat/0001.jpg"), so the rest of tinybt never asks which kind it holds. An archive that
holds one folder (as `tar czf photos.tar.gz photos/` makes) is read as that folder, and so on
inwards (`tar czf photos.tar.gz home/me/photos/` wraps it in three). A member stored twice (as
appending to an archive leaves it) is read as its last copy, as unpacking it would; a hard link
as the member it links to; a symbolic link not at all. Hidden files and folders (.git,
.ipynb_checkpoints, macOS's ._ files and __MACOSX) are left out.

`listing()` says what the source holds (its image files and folders); `read(names)` gives the
bytes of those files, in the order the source stores them, since a compressed tar can only be
read from its start; `fingerprint()` is what the image cache compares to notice a change.
"""

import hashlib
import os
import tarfile
import zipfile
import zlib
from functools import partial
from pathlib import Path, PurePosixPath

from tinybt.errors import TinyBTError

# torchvision's ImageFolder reads the same
EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp"}
ARCHIVES = (".tar", ".tar.gz", ".tgz", ".zip")
# What a damaged archive raises while it is read: a torn gzip stream, a bad header, a bad CRC,
# a zip compression method Python does not know.
ARCHIVE_ERRORS = (
    OSError,
    EOFError,
    tarfile.TarError,
    zipfile.BadZipFile,
    zlib.error,
    NotImplementedError,
)


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
        self.prefix = ""  # the folders an archive wraps everything in, with a "/" after each
        self._last = {}  # an archive's member name: the position of its last copy

    def describe(self, name=""):
        """How messages name the file or folder `name` of the source ("" is the source)."""
        if not self.archive:
            return str(self.path / name) if name else str(self.path)
        return f"{name} in {self.path}" if name else str(self.path)

    # ----- what the source holds -----
    def listing(self):
        """(images, folders): the sorted names of the image files, and the set of folder names.

        Each image is (name, size in bytes, its change times: see `fingerprint`).
        """
        if self._entries is None:
            entries = self._archive_entries() if self.archive else self._folder_entries()
            self._entries = self._unwrapped(entries)
        files, folders = self._entries
        return sorted(f for f in files if is_image(f[0])), folders

    def _folder_entries(self):
        """[(name, size, change times)] of the folder's files, and its folders' names. A
        subfolder that cannot be read stops the load: skipping it would train on part of the
        data."""
        files, folders = [], set()
        for top, subfolders, names in os.walk(self.path, onerror=_unreadable):
            subfolders[:] = [folder for folder in subfolders if not hidden(folder)]
            where = Path(top).relative_to(self.path)
            folders.update((where / folder).as_posix() for folder in subfolders)
            for name in names:
                path = Path(top) / name
                if not hidden(name) and path.is_file():
                    status = path.stat()
                    files.append(((where / name).as_posix(), status.st_size, _changed(status)))
        return files, folders

    def _archive_entries(self):
        """The same for an archive; folders are also those its files' names imply."""
        files, folders = {}, set()
        try:
            for position, (name, size, is_folder, _) in enumerate(self._members()):
                name = member_name(name)
                parts = name.split("/")
                if not name or any(hidden(part) for part in parts):
                    continue
                folders.update("/".join(parts[:depth]) for depth in range(1, len(parts)))
                if is_folder:
                    folders.add(name)
                else:
                    files[name] = (name, size, "")
                    self._last[name] = position
        except ARCHIVE_ERRORS as error:
            raise self._damaged(error) from None
        return list(files.values()), folders

    def _members(self):
        """(name, size, is a folder, a function that reads its bytes) of every member of the
        archive, in the order it stores them."""
        if self.path.name.lower().endswith(".zip"):
            with zipfile.ZipFile(self.path) as archive:
                for info in archive.infolist():
                    if info.flag_bits & 0x1:  # the zip format's "encrypted" bit
                        raise TinyBTError(
                            f"{info.filename} in {self.path} is encrypted: unpack the archive "
                            "with its password and pass the folder"
                        )
                    # the zip format's separator is "/"; older Windows tools wrote "\\"
                    name = info.filename.replace("\\", "/")
                    yield name, info.file_size, info.is_dir(), partial(archive.read, info)
            return
        with tarfile.open(self.path, "r:*") as archive:
            for member in archive:
                if member.isfile() or member.islnk() or member.isdir():
                    read = partial(_tar_bytes, archive, member)
                    yield member.name, member.size, member.isdir(), read

    def _unwrapped(self, entries):
        """Entries of an archive that holds one folder, as if that folder had been given; and
        again while what is left holds one folder."""
        files, folders = entries
        while self.archive:
            tops = {name.split("/")[0] for name, _, _ in files} | {f.split("/")[0] for f in folders}
            if len(tops) != 1 or any("/" not in name for name, _, _ in files):
                break
            top = tops.pop() + "/"
            self.prefix += top
            files = [(name[len(top) :], size, changed) for name, size, changed in files]
            folders = {f[len(top) :] for f in folders if f.startswith(top)}
        return files, folders

    def fingerprint(self):
        """A digest of what the source holds: every image's name, size and change times for a
        folder; an archive's own size and change times (its members cannot change without it
        changing). The change times are the modification time and the status change time,
        which no copy can set (`cp -p` and `touch -r` set the first, to an older file's)."""
        digest = hashlib.sha256()
        if self.archive:
            status = self.path.stat()
            digest.update(f"archive {status.st_size} {_changed(status)}".encode())
        else:
            for name, size, changed in self.listing()[0]:
                digest.update(f"{name}\t{size}\t{changed}\n".encode())
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
        """(name, bytes) of the last copy of each member in `wanted`."""
        cut = len(self.prefix)
        for position, (raw, _, is_folder, read) in enumerate(self._members()):
            name = member_name(raw)
            if not is_folder and name[cut:] in wanted and self._last.get(name) == position:
                yield name[cut:], read()

    def _damaged(self, error):
        reason = str(error).split("\n")[0] or type(error).__name__
        return TinyBTError(
            f"cannot read the archive {self.path} ({reason}): it is damaged or not a "
            f"{', '.join(ARCHIVES)} file; download or pack it again"
        )


def _changed(status):
    """A file's modification and status change times, in ns, from its os.stat result."""
    return f"{status.st_mtime_ns} {status.st_ctime_ns}"


def _tar_bytes(archive, member):
    return archive.extractfile(member).read()
