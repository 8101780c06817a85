"""The sweep, continued where it did not reach: archives and the image cache, `export` and
`embed`, records and checkpoints written by an older version, and the environment.

Each case ends in the right result or one clean `error:` line; never a traceback, a silently
wrong answer or a lost file. The data readers and the programs' `main` run in this process;
the environment's cases run as a user runs them, as subprocesses.
"""

import io
import json
import os
import subprocess
import sys
import tarfile
import zipfile
import zlib
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tinybt import embed, export
from tinybt.build import build_model, build_optimizer, load_split
from tinybt.checkpoint import generator_state, save_checkpoint
from tinybt.config import Config
from tinybt.data import load_dataset
from tinybt.data.folder import read_all
from tinybt.errors import TinyBTError
from tinybt.study.records import read_results

pytestmark = pytest.mark.host

RECORDS = Path(__file__).resolve().parents[1] / "results" / "experiments"


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYBT_CACHE", str(tmp_path / "cache"))


def png(colour=(200, 10, 10), size=(12, 12), mode="RGB"):
    """The bytes of a PNG image of one colour."""
    out = io.BytesIO()
    Image.new(mode, size, colour).save(out, format="PNG")
    return out.getvalue()


def bmp(colour):
    """The bytes of a 12 x 12 BMP: the same length whatever the colour."""
    out = io.BytesIO()
    Image.new("RGB", (12, 12), colour).save(out, format="BMP")
    return out.getvalue()


def two_classes(prefix=""):
    """{member name: bytes}: classes cat and dog of 5 images each, under `prefix`."""
    return {f"{prefix}{name}/{index}.png": png() for name in ("cat", "dog") for index in range(5)}


def write_tar(path, members, mode="w"):
    """A tar of `members` ({name: bytes}, or a TarInfo-making function for other kinds)."""
    with tarfile.open(path, mode) as archive:
        for name, data in members.items():
            if callable(data):
                archive.addfile(data(name))
                continue
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def write_zip(path, members):
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def symlink(target):
    def member(name):
        info = tarfile.TarInfo(name)
        info.type, info.linkname = tarfile.SYMTYPE, target
        return info

    return member


def hard_link(target):
    def member(name):
        info = tarfile.TarInfo(name)
        info.type, info.linkname = tarfile.LNKTYPE, target
        return info

    return member


def folder_member(name):
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    return info


def zip_with_flag(path, members, change):
    """A zip of `members` whose every entry's header is passed through `change(header, at)`,
    `at` the offset of the field "general purpose flags" in it (local and central)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    data = bytearray(path.read_bytes())
    for signature, at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = data.find(signature)
        while start != -1:
            change(data, start + at)
            start = data.find(signature, start + 4)
    path.write_bytes(bytes(data))
    return path


def encrypted(data, at):
    data[at] |= 1


def deflate64(data, at):
    data[at + 2 : at + 4] = (9).to_bytes(2, "little")  # the compression method after the flags


def huge_png(width=20000, height=20000):
    """A small PNG whose header claims width x height pixels (400 megapixels)."""
    data = bytearray(png())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    crc = zlib.crc32(bytes(data[ihdr : ihdr + 17]))
    data[ihdr + 17 : ihdr + 21] = crc.to_bytes(4, "big")
    return bytes(data)


def image_bytes(image, format="PNG", **options):
    out = io.BytesIO()
    image.save(out, format=format, **options)
    return out.getvalue()


GREY16 = np.full((12, 12), 40000, dtype=np.uint16)  # 40000 / 257 = 155.6 in 8 bits
MODES = {  # mode: (image bytes, the RGB pixel it reads as)
    "16-bit grey": (image_bytes(Image.fromarray(GREY16)), (156, 156, 156)),
    "LA": (png((90, 128), mode="LA"), (90, 90, 90)),
    "RGBA": (png((10, 20, 30, 0), mode="RGBA"), (10, 20, 30)),
    "1-bit": (png(1, mode="1"), (255, 255, 255)),
    "CMYK JPEG": (image_bytes(Image.new("CMYK", (12, 12), (0, 0, 0, 0)), "JPEG"), (255, 255, 255)),
}


def with_modes(prefix=""):
    members = two_classes(prefix)
    for mode, (data, _) in MODES.items():
        members[f"{prefix}cat/{mode}.{'jpg' if 'JPEG' in mode else 'png'}"] = data
    return members


# (name, how to make the archive under tmp, training images then or a phrase of the error)
ARCHIVE_CASES = [
    ("an empty tar", lambda tmp: write_tar(tmp / "a.tar", {}), "has no class subfolders"),
    ("an empty zip", lambda tmp: write_zip(tmp / "a.zip", {}), "has no class subfolders"),
    ("a 0-byte .tar.gz", lambda tmp: touch(tmp / "a.tar.gz", b""), "cannot read the archive"),
    ("a 0-byte .zip", lambda tmp: touch(tmp / "a.zip", b""), "cannot read the archive"),
    ("text named .tgz", lambda tmp: touch(tmp / "a.tgz", b"notes\n" * 100),
     "cannot read the archive"),
    ("a tar named .zip", lambda tmp: write_tar(tmp / "a.zip", two_classes()),
     "cannot read the archive"),
    ("a plain tar named .tar.gz", lambda tmp: write_tar(tmp / "a.tar.gz", two_classes()), 8),
    ("a gzipped tar named .tar", lambda tmp: write_tar(tmp / "a.tar", two_classes(), "w:gz"), 8),
    ("an xz tar named .tgz", lambda tmp: write_tar(tmp / "a.tgz", two_classes(), "w:xz"), 8),
    ("a wrapped train/test split",
     lambda tmp: write_zip(tmp / "a.zip", {**two_classes("photos/train/"),
                                           **two_classes("photos/test/")}), 10),
    ("an empty image member", lambda tmp: write_tar(
        tmp / "a.tar", {**two_classes(), "dog/empty.png": b""}),
     "cannot read image dog/empty.png in"),
    ("an archive of one class",
     lambda tmp: write_tar(tmp / "a.tar", {f"cat/{i}.png": png() for i in range(5)}),
     r"a.tar \(read inside its folder cat/\) has no class subfolders"),
    ("two wrapping folders",
     lambda tmp: write_tar(tmp / "a.tar.gz", two_classes("home/photos/"), "w:gz"), 8),
    ("three wrapping folders in a zip",
     lambda tmp: write_zip(tmp / "a.zip", two_classes("a/b/c/")), 8),
    ("a tar member stored twice",
     lambda tmp: write_tar(tmp / "a.tar", {**two_classes(), "./cat/0.png": png((1, 2, 3))}), 8),
    ("a zip member stored twice", lambda tmp: duplicate_zip(tmp / "a.zip"), 8),
    ("names with spaces and accents in a tar",
     lambda tmp: write_tar(tmp / "a.tar", {**two_classes(), "cat/ça va 1.png": png()}), 9),
    ("non-ASCII class names in a zip",
     lambda tmp: write_zip(tmp / "a.zip", two_classes("фото/")), 8),
    ("a symlink member", lambda tmp: write_tar(
        tmp / "a.tar", {**two_classes(), "cat/link.png": symlink("0.png")}), 8),
    ("a hard link member", lambda tmp: write_tar(
        tmp / "a.tar", {**two_classes(), "cat/copy.png": hard_link("cat/0.png")}), 9),
    ("a zip made on Windows, with backslashes",
     lambda tmp: write_zip(tmp / "a.zip", windows_names(two_classes())), 8),
    ("a folder member named like an image", lambda tmp: write_tar(
        tmp / "a.tar", {**two_classes(), "cat/album.png": folder_member}), 8),
    ("an upper-case .TAR.GZ",
     lambda tmp: write_tar(tmp / "A.TAR.GZ", two_classes(), "w:gz"), 8),
    ("a zip with a password", lambda tmp: zip_with_flag(tmp / "a.zip", two_classes(), encrypted),
     "is encrypted"),
    ("a zip of an unsupported compression",
     lambda tmp: zip_with_flag(tmp / "a.zip", two_classes(), deflate64),
     "compression method"),
    ("a 400-megapixel image in an archive",
     lambda tmp: write_tar(tmp / "a.tar", {**two_classes(), "cat/huge.png": huge_png()}),
     "cannot read image cat/huge.png in"),
    ("a member that is no image", lambda tmp: write_tar(
        tmp / "a.tar", {**two_classes(), "cat/x.png": b"not a png"}),
     "cannot read image cat/x.png in"),
]  # fmt: skip


def windows_names(members):
    return {name.replace("/", "\\"): data for name, data in members.items()}


def touch(path, data):
    path.write_bytes(data)
    return path


def duplicate_zip(path):
    """A zip that holds cat/0.png twice: an older image, then the one a user replaced it with,
    as `zip` leaves it after appending."""
    write_zip(path, two_classes())
    with pytest.warns(UserWarning, match="Duplicate name"), zipfile.ZipFile(path, "a") as archive:
        archive.writestr("cat/0.png", png((1, 2, 3)))
    return path


@pytest.mark.parametrize(
    "name, make, expected", ARCHIVE_CASES, ids=[case[0] for case in ARCHIVE_CASES]
)
def test_archive_case(tmp_path, name, make, expected):
    archive = make(tmp_path)
    if isinstance(expected, str):
        with pytest.raises(TinyBTError, match=expected) as error:
            load_dataset("folder", "train", archive)
        assert "\n" not in str(error.value)
        return
    train = load_dataset("folder", "train", archive)
    assert len(train) == expected and train.classes == ["cat", "dog"]
    assert not any(len(image) == 0 for image in train.images)


@pytest.mark.parametrize("kind", ["tar", "zip"])
def test_a_member_stored_twice_reads_as_the_last_one(tmp_path, kind):
    """As `tar x` and `unzip` leave it: the later member replaces the earlier."""
    if kind == "tar":
        archive = write_tar(tmp_path / "a.tar", {**two_classes(), "./cat/0.png": png((1, 2, 3))})
    else:
        archive = duplicate_zip(tmp_path / "a.zip")
    names, images, _, _ = read_all(archive, 8)
    assert names.count("cat/0.png") == 1
    assert tuple(images[names.index("cat/0.png")][0, 0]) == (1, 2, 3)


@pytest.mark.parametrize("mode", MODES)
def test_every_image_mode_in_an_archive(tmp_path, mode):
    archive = write_zip(tmp_path / "a.zip", with_modes("photos/"))
    names, images, _, _ = read_all(archive, 8)
    name = f"cat/{mode}.{'jpg' if 'JPEG' in mode else 'png'}"
    assert np.abs(images[names.index(name)].astype(int) - MODES[mode][1]).max() <= 2


def test_images_of_different_sizes_in_an_archive(tmp_path):
    members = {f"cat/{i}.png": png(size=(5 + 7 * i, 40 - 3 * i)) for i in range(5)}
    members.update({f"dog/{i}.png": png(size=(1, 1 + i)) for i in range(5)})
    train = load_dataset("folder", "train", write_tar(tmp_path / "a.tar.gz", members, "w:gz"))
    assert train.images.shape == (8, 32, 32, 3)


# ----- the image cache -----
def test_a_cache_variable_naming_a_file_still_loads(tmp_path, monkeypatch, capsys):
    (tmp_path / "a-file").write_text("not a folder")
    monkeypatch.setenv("TINYBT_CACHE", str(tmp_path / "a-file"))
    train = load_dataset("folder", "train", write_tar(tmp_path / "a.tar", two_classes()))
    assert len(train) == 8
    note = capsys.readouterr().err.strip()
    assert note.startswith("note: the decoded images are not cached") and "\n" not in note


def test_a_cache_folder_that_cannot_be_written_still_loads(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TINYBT_CACHE", "/proc/tinybt-cache")  # unwritable even for root
    train = load_dataset("folder", "train", write_tar(tmp_path / "a.tar", two_classes()))
    assert len(train) == 8
    assert capsys.readouterr().err.startswith("note: the decoded images are not cached")


def only_cache(tmp_path):
    (cache,) = (tmp_path / "cache").glob("*.npz")
    return cache


def test_a_cache_of_another_size_is_not_used(tmp_path, capsys):
    archive = write_tar(tmp_path / "a.tar", two_classes())
    load_dataset("folder", "train", archive, size=16)
    small = only_cache(tmp_path)
    small.rename(small.with_name(small.name.replace("16px", "32px")))
    train = load_dataset("folder", "train", archive)
    assert train.images.shape[1:] == (32, 32, 3)
    note = capsys.readouterr().err
    assert "changed since" not in note and "cached at another size or version" in note


def test_a_cache_holding_pickled_objects_is_never_unpickled(tmp_path, capsys):
    archive = write_tar(tmp_path / "a.tar", two_classes())
    first = load_dataset("folder", "train", archive)
    cache = only_cache(tmp_path)
    with np.load(cache) as arrays:
        kept = dict(arrays)
    kept["names"] = np.array([Exploding()] * len(kept["names"]), dtype=object)
    np.savez(cache, **kept)
    again = load_dataset("folder", "train", archive)
    np.testing.assert_array_equal(first.images, again.images)
    assert "decoding the images again" in capsys.readouterr().err


class Exploding:
    def __reduce__(self):
        return (pytest.fail, ("the cache was unpickled",))


@pytest.mark.parametrize("kind", ["archive", "folder"])
def test_a_source_replaced_keeping_size_and_time_is_decoded_again(tmp_path, kind):
    """`cp -p` or `rsync -t` of another copy over the source: the same sizes and
    modification times, other images."""
    red = {name: bmp((200, 0, 0)) for name in two_classes()}
    blue = {name: bmp((0, 0, 200)) for name in two_classes()}
    if kind == "archive":
        source = write_tar(tmp_path / "a.tar", red)
        status = source.stat()
        first = load_dataset("folder", "train", source).images
        write_tar(tmp_path / "other.tar", blue).replace(source)
        os.utime(source, ns=(status.st_atime_ns, status.st_mtime_ns))
    else:
        source = tmp_path / "photos"
        for name, data in red.items():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            (source / name).write_bytes(data)
        first = load_dataset("folder", "train", source).images
        for name, data in blue.items():
            status = (source / name).stat()
            (source / name).write_bytes(data)
            os.utime(source / name, ns=(status.st_atime_ns, status.st_mtime_ns))
    again = load_dataset("folder", "train", source).images
    assert first[0, 0, 0, 0] == 200 and again[0, 0, 0, 2] == 200


# ----- export and embed -----
@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Run folders of the tiny preset's untrained network, one per method, each saved at the
    end of its one epoch as a run saves it, on shapes generated into `data`."""
    root = tmp_path_factory.mktemp("runs")
    made = {}
    for method in ("barlow", "byol", "simclr", "vicreg"):
        config = Config.preset(
            "tiny", epochs=1, method=method, evaluate=False, data_dir=str(root / "data"),
            out=str(root / method),
        )  # fmt: skip
        model = build_model(config)
        meta = {"config": asdict(config), "epoch": 1, "batch": 0, "order": None,
                "rng": generator_state(np.random.default_rng(0)), "sums": {}}  # fmt: skip
        (root / method).mkdir()
        optimizer = build_optimizer(config, model)
        save_checkpoint(root / method / "checkpoint.npz", model, optimizer, meta)
        made[method] = root / method
    load_split(config, "train")  # the shapes, generated once for every case
    return made


def one_line(capsys):
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    return err


@pytest.mark.parametrize("method", ["byol", "simclr", "vicreg"])
def test_export_every_method(runs, tmp_path, method, capsys):
    pytest.importorskip("safetensors")
    to = tmp_path / "e.safetensors"
    assert export.main([str(runs[method]), "--to", str(to)]) == 0
    assert to.stat().st_size > 0


# (name, --to under tmp (with {tmp}), what is there first, exit status, phrase of the output)
EXPORT_CASES = [
    ("export into an unwritable folder", "/proc/e.safetensors", None, 2, "cannot write --to"),
    ("export onto a folder", "{tmp}/e.safetensors", "folder", 2, "(Is a directory)"),
    ("export over a file", "{tmp}/e.safetensors", "file", 0, "wrote"),
    ("export to an unknown format", "{tmp}/e.pt", None, 2, "unknown suffix"),
    ("export to no suffix", "{tmp}/encoder", None, 2, "unknown suffix"),
]


@pytest.mark.parametrize(
    "name, to, there, status, phrase", EXPORT_CASES, ids=[case[0] for case in EXPORT_CASES]
)
def test_export_case(runs, tmp_path, capsys, name, to, there, status, phrase):
    pytest.importorskip("safetensors")
    to = Path(to.format(tmp=tmp_path))
    if there == "folder":
        (to / "inside").mkdir(parents=True)
    elif there == "file":
        to.write_text("an older export")
    assert export.main([str(runs["barlow"]), "--to", str(to)]) == status
    if status:
        assert phrase in one_line(capsys)
    else:
        assert phrase in capsys.readouterr().out and to.read_bytes()[:8] != b"an older"
    if there == "folder":
        assert list(to.iterdir()) == [to / "inside"]


def tampered(run, tmp_path, change):
    """A copy of the run's folder whose checkpoint's meta went through change(meta, arrays)."""
    with np.load(run / "checkpoint.npz") as archive:
        arrays = dict(archive)
    meta = json.loads(str(arrays.pop("meta")))
    change(meta, arrays)
    arrays.setdefault("meta", np.array(json.dumps(meta)))
    folder = tmp_path / "copy"
    folder.mkdir()
    np.savez(folder / "checkpoint.npz", **arrays)
    return folder


def without_config_field(field):
    def change(meta, arrays):
        del meta["config"][field]

    return change


def with_weight(shape):
    def change(meta, arrays):
        name = next(k for k in arrays if k.startswith("model/") and arrays[k].ndim == 4)
        arrays[name] = np.zeros(shape, dtype=np.float32)

    return change


def config_with(**fields):
    return lambda meta, arrays: meta["config"].update(fields)


# (name, how the checkpoint is changed, a phrase of the one-line error, or None: it exports)
CHECKPOINT_CASES = [
    ("an older checkpoint without a field added since", without_config_field("monitor_every"),
     None),
    ("a newer checkpoint with a field unknown here", config_with(colour_space="lab"),
     "written by another version of tinybt"),
    ("a weight of another shape", with_weight((3, 3, 3, 3)), "has shape (3, 3, 3, 3)"),
    ("a meta that is not JSON", lambda meta, arrays: arrays.update(meta=np.array("{oops")),
     "not tinybt's"),
    ("a config of an unknown method", config_with(method="dino"), "--method"),
]  # fmt: skip


@pytest.mark.parametrize(
    "name, change, phrase", CHECKPOINT_CASES, ids=[case[0] for case in CHECKPOINT_CASES]
)
def test_export_of_a_changed_checkpoint(runs, tmp_path, capsys, name, change, phrase):
    pytest.importorskip("safetensors")
    folder = tampered(runs["barlow"], tmp_path, change)
    status = export.main([str(folder), "--to", str(tmp_path / "e.safetensors")])
    if phrase is None:
        assert status == 0, capsys.readouterr().err
    else:
        assert status == 2 and phrase in one_line(capsys)


def test_embed_of_a_run_whose_training_data_moved(runs, tmp_path, capsys):
    """The run's relative data folder is not beside it: the mean and std of its training images
    are needed, and embed's --data-dir names the images to embed, so another flag gives them."""
    folder = tampered(runs["barlow"], tmp_path, config_with(data_dir="data", out="runs/barlow"))
    photos = photo_folder(tmp_path / "photos")
    arguments = [str(folder), "--data-dir", str(photos), "--out", str(tmp_path / "f.npz")]
    assert embed.main(arguments) == 2
    assert one_line(capsys).endswith("give the dataset's folder with --train-data-dir")
    data = Path(load_split_dir(runs["barlow"]))
    assert embed.main([*arguments, "--train-data-dir", str(data)]) == 0


def test_export_of_a_run_whose_training_data_moved(runs, tmp_path, capsys):
    pytest.importorskip("safetensors")
    folder = tampered(runs["barlow"], tmp_path, config_with(data_dir="data", out="runs/barlow"))
    arguments = [str(folder), "--to", str(tmp_path / "e.safetensors")]
    assert export.main(arguments) == 2
    assert one_line(capsys).endswith("give the dataset's folder with --data-dir")
    assert export.main([*arguments, "--data-dir", load_split_dir(runs["barlow"])]) == 0


def load_split_dir(run):
    with np.load(run / "checkpoint.npz") as archive:
        return json.loads(str(archive["meta"]))["config"]["data_dir"]


def test_export_of_a_file_that_is_not_a_checkpoint(runs, tmp_path, capsys):
    (tmp_path / "metrics.jsonl").write_text('{"epoch": 1}\n')
    assert export.main([str(tmp_path / "metrics.jsonl"), "--to", str(tmp_path / "e.onnx")]) == 2
    assert "not an .npz archive" in one_line(capsys)


def photo_folder(root, count=5, size=(20, 24)):
    rng = np.random.default_rng(1)
    for name in ("cat", "dog"):
        for index in range(count):
            path = root / name / f"{index}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)
    return root


def embed_source(kind, tmp):
    """A --data-dir under `tmp` of one kind (an empty folder for a kind not named here)."""
    root = tmp / "photos"
    root.mkdir()
    if kind == "a single image":
        Image.new("RGB", (9, 9), (1, 2, 3)).save(root / "one.png")
    elif kind == "images of odd sizes":
        for index, size in enumerate([(1, 1), (3, 97), (101, 2)]):
            Image.new("RGB", size, (index, 9, 9)).save(root / f"{index}.png")
    elif kind == "only a text file":
        (root / "notes.txt").write_text("no images here")
    elif kind == "a file, not a folder":
        (tmp / "notes.txt").write_text("no images here")
        return tmp / "notes.txt"
    elif kind == "a corrupt image":
        photo_folder(root)
        (root / "cat" / "bad.png").write_bytes(b"\x89PNG cut")
    elif kind == "photos":
        photo_folder(root)
    return root


# (name, --data-dir kind, --out (with {tmp}), what is there first, status, phrase)
EMBED_CASES = [
    ("embed an empty folder", "empty", "{tmp}/f.npz", None, 2, "holds no images"),
    ("embed a folder of a text file", "only a text file", "{tmp}/f.npz", None, 2,
     "holds no images"),
    ("embed a file", "a file, not a folder", "{tmp}/f.npz", None, 2, "no image folder at"),
    ("embed a corrupt image", "a corrupt image", "{tmp}/f.npz", None, 2,
     "cannot read image"),
    ("embed a single image", "a single image", "{tmp}/f.npz", None, 0, "features of 1 images"),
    ("embed images of odd sizes", "images of odd sizes", "{tmp}/f.npz", None, 0,
     "features of 3 images"),
    ("embed over an existing file", "photos", "{tmp}/f.npz", "file", 0, "features of 10"),
    ("embed onto a folder", "photos", "{tmp}/f.npz", "folder", 2, "a folder has that name"),
    ("embed into an unwritable folder", "photos", "/proc/f.npz", None, 2, "cannot write"),
    ("embed into a missing folder", "photos", "{tmp}/new/f.npz", None, 0, "features of 10"),
]  # fmt: skip


@pytest.mark.parametrize(
    "name, kind, out, there, status, phrase", EMBED_CASES, ids=[case[0] for case in EMBED_CASES]
)
def test_embed_case(runs, tmp_path, capsys, name, kind, out, there, status, phrase):
    source = embed_source(kind, tmp_path)
    out = Path(out.format(tmp=tmp_path))
    if there == "folder":
        (out / "inside").mkdir(parents=True)
    elif there == "file":
        out.write_text("older features")
    code = embed.main([str(runs["barlow"]), "--data-dir", str(source), "--out", str(out)])
    assert code == status
    if status:
        assert phrase in one_line(capsys)
    else:
        assert phrase in capsys.readouterr().out
        with np.load(out) as saved:
            assert np.isfinite(saved["features"]).all()


# ----- records written by an older version -----
def older_record(tmp_path, change):
    """The committed methods record with its first line's config passed through `change`."""
    path = tmp_path / "methods.jsonl"
    lines = (RECORDS / "methods.jsonl").read_text().splitlines()
    line = json.loads(lines[0])
    change(line)
    lines[0] = json.dumps(line)
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("field, tag", [("standardize", "method"), ("seed", "seed")])
def test_a_record_without_a_config_field_says_which_and_what_to_do(tmp_path, field, tag):
    """A setting that another version of tinybt did not write, but a tag is made from."""
    path = older_record(tmp_path, lambda line: line["config"].pop(field))
    with pytest.raises(TinyBTError, match=f"has no config.{field}, which tags.{tag}") as error:
        read_results(path)
    assert "\n" not in str(error.value)
    assert str(error.value).endswith("`python -m tinybt.experiments run` trains that run again")


# ----- the environment, as a user runs the programs -----
def program(arguments, tmp_path, stdout=subprocess.PIPE, **env):
    environment = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "TINYBT_BACKEND": "numpy"}
    environment.update(TINYBT_CACHE=str(tmp_path / "cache"), **env)
    return subprocess.run(
        [sys.executable, "-m", *arguments],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
        cwd=tmp_path,
        timeout=300,
    )


ENVIRONMENT_CASES = [
    ("HOME that cannot be written", dict(HOME="/proc/home", MPLCONFIGDIR="")),
    ("TMPDIR that does not exist", dict(TMPDIR="/nonexistent/tmp")),
]


@pytest.mark.parametrize("name, env", ENVIRONMENT_CASES, ids=[c[0] for c in ENVIRONMENT_CASES])
def test_embed_in_an_odd_environment(runs, tmp_path, name, env):
    photos = photo_folder(tmp_path / "photos")
    done = program(
        ["tinybt.embed", str(runs["barlow"]), "--data-dir", str(photos), "--out", "f.npz",
         "--neighbours", "2"], tmp_path, **env,
    )  # fmt: skip
    # matplotlib's own two lines may say where it keeps its cache instead of HOME
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert (tmp_path / "f.png").is_file()


@pytest.mark.parametrize(
    "arguments",
    [["tinybt.export", "--help"], ["tinybt.train", "--help"]],
    ids=["export --help", "train --help"],
)
def test_a_closed_stdout_is_no_traceback(tmp_path, arguments):
    """`python -m tinybt.export ... >&-`: no stdout at all."""
    closed_stdout(arguments, tmp_path)


def test_an_export_with_a_closed_stdout_writes_its_file(runs, tmp_path):
    pytest.importorskip("safetensors")
    closed_stdout(["tinybt.export", str(runs["barlow"]), "--to", "e.safetensors"], tmp_path)
    assert (tmp_path / "e.safetensors").stat().st_size > 0


def closed_stdout(arguments, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", *arguments],
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "OPENBLAS_NUM_THREADS": "1", "TINYBT_BACKEND": "numpy"},
        preexec_fn=lambda: os.close(1),
        timeout=300,
    )
    assert "Traceback" not in done.stderr and done.returncode == 0, done.stderr


@pytest.mark.parametrize("package", ["onnx", "safetensors"])
def test_a_missing_export_package_names_the_extra(runs, tmp_path, package):
    """A stand-in package on PYTHONPATH that raises ImportError, as a missing one does."""
    stand_in = tmp_path / "stand-in" / package
    stand_in.mkdir(parents=True)
    (stand_in / "__init__.py").write_text("raise ImportError('not installed')\n")
    paths = os.pathsep.join([str(tmp_path / "stand-in"), os.environ.get("PYTHONPATH", "")])
    suffix = "onnx" if package == "onnx" else "safetensors"
    done = program(
        ["tinybt.export", str(runs["barlow"]), "--to", f"e.{suffix}"], tmp_path, PYTHONPATH=paths
    )
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert 'pip install -e ".[export]"' in done.stderr
