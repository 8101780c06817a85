"""A hostile but ordinary user's sweep: odd input to every program and to the data readers.

Each case must end in the right behaviour or one clean `error:` line; never a traceback, a
silently wrong answer or a lost record. The programs run as subprocesses, as a user runs them,
all started together from one module-scoped fixture (two at a time: the cases are cheap, the
machine may not be); the data readers' cases run in this process.
"""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict

import numpy as np
import pytest
from PIL import Image

from tinybt.build import build_model, build_optimizer
from tinybt.checkpoint import generator_state, save_checkpoint
from tinybt.config import Config
from tinybt.data import cifar10, load_dataset
from tinybt.data.download import download
from tinybt.errors import TinyBTError

from .conftest import local_server

pytestmark = pytest.mark.host

PYTHON = sys.executable
TRAIN = "-m tinybt.train"
TINY = "-m tinybt.train --preset tiny --epochs 1 --no-evaluate --data-dir {data}"
EVALUATE = "-m tinybt.evaluate"
EXERCISES = "-m tinybt.exercises"
EXPERIMENTS = "-m tinybt.experiments"


def error(phrase):
    """Exit status 2 and one line, `error: ...` holding `phrase`."""
    return {"status": 2, "one_line": True, "phrase": phrase}


def ok(phrase=""):
    return {"status": 0, "phrase": phrase}


def stopped(status, phrase=""):
    """Ended by Ctrl-C (130) or by a reader that went away (141), without a traceback."""
    return {"status": status, "phrase": phrase}


# (name, arguments after `python`, how it runs, what must come out). Words are split on
# spaces, then filled in: {fake} and {run} are run folders under {base}, whose path has a
# space and non-ASCII letters, stored with the relative --data-dir data (see `workspace`);
# {data} is {base}/data; {tmp} a fresh folder per case; {file} a file in it. How it runs: "plain";
# "closed" (stdout is a pipe whose reader has gone: `| head -1`); "sigint@SECONDS" or
# "sigint@TEXT" (Ctrl-C after that many seconds, or once TEXT is printed); "in-base" (run in
# {base}); "in-tmp"; "in-shadow" (run beside a clone of the repository named tinybt);
# "in-harmless" (beside a folder of notes named tinybt); "env:NAME=VALUE".
PROGRAM_CASES = [
    # training: numbers, paths and flags that contradict each other
    ("train-size above the data", TINY + " --out {tmp}/o --train-size 100000", "plain",
     error("--train-size 100000 is more than the 5000 training images")),
    ("resume and overwrite together", TRAIN + " --resume --overwrite --out {fake}", "plain",
     error("give one of them")),
    ("backend variable garbage", TINY + " --out {tmp}/o", "env:TINYBT_BACKEND=garbage",
     error("the environment variable TINYBT_BACKEND='garbage'")),
    ("nan warm-up", TINY + " --out {tmp}/o --warmup-epochs nan", "plain",
     error("--warmup-epochs must be a finite")),
    ("nan tau base", TINY + " --out {tmp}/o --ema --tau-base nan", "plain",
     error("--tau-base must be in [0, 1]")),
    ("infinite vicreg weight", TINY + " --out {tmp}/o --method vicreg --sim-coeff inf", "plain",
     error("--sim-coeff must be a finite")),
    ("empty data dir", TINY + " --out {tmp}/o --data-dir ''", "plain",
     error("must name a folder")),
    ("preset without a value", TRAIN + " --preset", "plain", error("expected one argument")),
    ("folder dataset, empty folder", TINY + " --out {tmp}/o --dataset folder --data-dir {empty}",
     "plain", error("no class subfolders")),
    ("cifar10 given a shapes cache", TINY + " --out {tmp}/o --dataset cifar10 --data-dir {cache}",
     "plain", error("not a .tar.gz archive")),
    ("shapes given a CIFAR archive", TINY + " --out {tmp}/o --data-dir {file}", "plain",
     error("is a file, not a folder")),
    ("resume a finished run",
     TRAIN + " --resume --no-evaluate --out {finished_copy} --data-dir {data}", "plain",
     ok("wrote")),
    ("resume beside a damaged snapshots.npz",
     TRAIN + " --resume --no-evaluate --out {damaged} --data-dir {data}", "plain",
     ok("the figure of C starts where the run resumes")),
    ("resume beside a snapshots.npz of other arrays",
     TRAIN + " --resume --no-evaluate --out {other_snapshots} --data-dir {data}", "plain",
     ok("holds no snapshots")),
    ("resume beside snapshots of another size",
     TRAIN + " --resume --no-evaluate --out {other_size} --data-dir {data}", "plain",
     ok("holds no snapshots")),
    ("resume a moved run from another folder",
     TRAIN + " --resume --no-evaluate --out {moved}", "in-tmp", ok("wrote")),
    ("truncated shapes cache", TINY + " --out {tmp}/o --data-dir {truncated_cache}", "plain",
     ok("truncated or corrupt: generating the shapes again")),
    # evaluation
    ("evaluate with TINYBT_BACKEND garbage", EVALUATE + " {fake} --data-dir {data}",
     "env:TINYBT_BACKEND=garbage",
     error("TINYBT_BACKEND='garbage'")),
    ("evaluate --data-dir ''", EVALUATE + " {fake} --data-dir ''", "plain",
     error("must name a folder")),
    ("evaluate a shapes run on a CIFAR archive", EVALUATE + " {fake} --data-dir {file}", "plain",
     error("the run trained on shapes: the data directory")),
    ("evaluate a CIFAR run without CIFAR", EVALUATE + " {cifar_run} --data-dir {tmp}", "plain",
     error("python -m tinybt.train --download")),
    ("evaluate an unfinished run",
     EVALUATE + " {unfinished} --probe-epochs 1 --data-dir {data}", "in-base",
     ok("the run stopped in epoch 2 of 3 (1 finished)")),
    ("evaluate from another folder", EVALUATE + " {run} --probe-epochs 1", "in-tmp",
     ok('"test_images": 1000')),
    ("evaluate snapshots.npz", EVALUATE + " {fake}/snapshots.npz", "plain",
     error("not a tinybt checkpoint")),
    ("evaluate metrics.jsonl", EVALUATE + " {fake}/metrics.jsonl", "plain",
     error("not an .npz archive")),
    ("evaluate an empty folder", EVALUATE + " {tmp}", "plain", error("no checkpoint at")),
    ("evaluate two runs", EVALUATE + " {fake} {fake}", "plain", error("unrecognized arguments")),
    ("evaluate fractional probe epochs", EVALUATE + " {fake} --probe-epochs 1.5", "plain",
     error("invalid int value")),
    # exercises
    ("exercises start under a file", EXERCISES + " start {file}/copy", "plain",
     error("cannot write the learner's copy")),
    ("exercises start into a file", EXERCISES + " start {file}", "plain",
     error("is not an empty folder")),
    ("exercises without a command", EXERCISES, "plain", error("arguments are required")),
    ("exercises unknown command", EXERCISES + " bogus", "plain", error("invalid choice")),
    ("exercises list with a flag", EXERCISES + " list --x", "plain",
     error("unrecognized arguments: --x")),
    ("exercises check unknown task", EXERCISES + " check nosuch", "plain",
     error("unknown task 'nosuch'")),
    ("exercises check a file", EXERCISES + " check all --dir {file}", "plain",
     error("holds no learner's copy")),
    ("exercises solve an empty folder", EXERCISES + " solve {tmp}", "plain",
     error("holds no learner's copy")),
    ("exercises solve unknown task", EXERCISES + " solve {tmp} --task bogus", "plain",
     error("unknown task 'bogus'")),
    ("exercises start beside a tinybt clone", EXERCISES + " start copy", "in-shadow",
     error("hides the installed tinybt")),
    ("train beside a tinybt clone", TRAIN + " --help", "in-shadow",
     error("its data stands in for tinybt.data")),
    ("exercises beside a folder named tinybt", EXERCISES + " start copy", "in-harmless",
     ok("fences to fill")),
    ("train beside a folder named tinybt", TRAIN + " --help", "in-harmless", ok("--preset")),
    # experiments
    ("experiments --only with all", EXPERIMENTS + " run all --only a", "plain",
     error("--only names runs of one grid")),
    ("experiments --only without names", EXPERIMENTS + " run budget --only", "plain",
     error("expected at least one argument")),
    ("experiments unknown run", EXPERIMENTS + " run budget --fast --dry-run --only x --root {tmp}",
     "plain", error("has no run x")),
    # output into a reader that has gone (`| head -1`)
    ("train --help | head", TRAIN + " --help", "closed", ok()),
    ("evaluate --help | head", EVALUATE + " --help", "closed", ok()),
    ("exercises list | head", EXERCISES + " list", "closed", stopped(141)),
    ("experiments dry run | head", EXPERIMENTS + " run budget --fast --dry-run --root {tmp}",
     "closed", stopped(141)),
    ("evaluate | head", EVALUATE + " {run} --probe-epochs 1", "closed", stopped(141)),
    ("train | head", TINY + " --out {tmp}/o", "closed", stopped(141)),
    # Ctrl-C
    ("Ctrl-C while importing", TINY + " --out {tmp}/o", "sigint@0.6", stopped(130)),
    ("Ctrl-C as the last epoch ends", TINY.replace(" --no-evaluate", "") + " --out {tmp}/o",
     "sigint@epoch 1:", stopped(130, "--resume evaluates it")),
]  # fmt: skip


# Cases that train, evaluate or generate the shapes: seconds each (the rest fail or end at once).
SLOW = {
    "train-size above the data",
    "resume a finished run",
    "resume beside a damaged snapshots.npz",
    "resume beside a snapshots.npz of other arrays",
    "resume beside snapshots of another size",
    "truncated shapes cache",
    "resume a moved run from another folder",
    "evaluate an unfinished run",
    "evaluate from another folder",
    "evaluate | head",
    "train | head",
    "Ctrl-C while importing",
    "Ctrl-C as the last epoch ends",
}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, request):
    """Folders the cases point at (see PROGRAM_CASES). {fake} is a run folder whose checkpoint
    is an untrained network, saved as a run saves it; the real run is made only when a case
    that needs it was chosen."""
    root = tmp_path_factory.mktemp("sweep")
    base = root / "odd folder ü"
    places = {"base": base, "data": base / "data", "empty": root / "empty", "fake": fake_run(base)}
    places["empty"].mkdir()
    places["cache"] = places["fake"] / "checkpoint.npz"  # an .npz that is no CIFAR archive
    places["cifar_run"] = with_meta(places["fake"], root / "cifar run", dataset="cifar10")
    places["unfinished"] = with_meta(places["fake"], root / "unfinished", epochs=3, epoch=1)
    places["shadow"] = root / "shadow"
    (places["shadow"] / "tinybt" / "data").mkdir(parents=True)  # a clone: no __init__.py
    (places["shadow"] / "tinybt" / "README.md").write_text("a clone of tinybt")
    places["harmless"] = root / "harmless"
    (places["harmless"] / "tinybt").mkdir(parents=True)  # a user's folder of that name
    (places["harmless"] / "tinybt" / "notes.txt").write_text("my notes")
    if SLOW & chosen_cases(request):
        places.update(real_run(root, base))
    return places


def fake_run(base):
    """runs/fake under `base`: a checkpoint of the tiny preset's untrained network at the end
    of its one epoch, stored with --data-dir data and --out runs/fake, relative to `base`."""
    config = Config.preset("tiny", epochs=1, data_dir="data", out="runs/fake", evaluate=False)
    model = build_model(config)
    meta = {
        "config": asdict(config),
        "epoch": 1,
        "batch": 0,
        "order": None,
        "rng": generator_state(np.random.default_rng(0)),
        "sums": {},
    }
    folder = base / "runs" / "fake"
    folder.mkdir(parents=True)
    save_checkpoint(folder / "checkpoint.npz", model, build_optimizer(config, model), meta)
    np.savez(folder / "snapshots.npz", steps=np.arange(2), matrices=np.zeros((2, 32, 32)))
    (folder / "metrics.jsonl").write_text('{"epoch": 1}\n')
    return folder


def real_run(root, base):
    """A real one-epoch tiny run, runs/run under `base`, and copies of it to damage."""
    made = subprocess.run(
        [PYTHON, *TINY.format(data="data").split(), "--snapshot-size", "2000", "--out", "runs/run"],
        cwd=base,
        capture_output=True,
        text=True,
        env=environment(),
        timeout=300,
    )
    assert made.returncode == 0, made.stderr
    # a --snapshot-size above the 1000 held-out images is said, not cut without a word
    assert "--snapshot-size 2000 is more than the 1000 held-out images" in made.stdout
    # The copies are no longer at runs/run under the folder the run was started in, so the
    # folder its relative data_dir is relative to is unknown: they are given --data-dir.
    places = {"run": base / "runs" / "run", "data": base / "data"}
    for name in ("finished_copy", "damaged", "other_snapshots", "other_size"):
        places[name] = root / name
        shutil.copytree(places["run"], places[name])
    (places["damaged"] / "snapshots.npz").write_bytes(b"PK\x03\x04 cut short")
    np.savez(places["other_snapshots"] / "snapshots.npz", something=np.zeros(3))
    np.savez(
        places["other_size"] / "snapshots.npz", steps=np.arange(2), matrices=np.zeros((2, 4, 4))
    )
    places["moved"] = root / "moved project" / "runs" / "run"  # the project, elsewhere
    shutil.copytree(places["run"], places["moved"])
    (root / "moved project" / "data").symlink_to(base / "data")
    places["truncated_cache"] = root / "truncated cache"
    places["truncated_cache"].mkdir()
    cache = next((base / "data").glob("*.npz"))
    (places["truncated_cache"] / cache.name).write_bytes(cache.read_bytes()[:100_000])
    return places


def chosen_cases(request):
    """The names of the program cases this pytest session runs."""
    return {
        item.callspec.params["name"]
        for item in request.session.items
        if getattr(item, "originalname", "") == "test_program_case"
    }


def with_meta(run, folder, epoch=None, **config):
    """A copy of the run's checkpoint.npz in `folder` with its meta changed; its path."""
    folder.mkdir()
    with np.load(run / "checkpoint.npz") as checkpoint:
        arrays = dict(checkpoint)
    meta = json.loads(str(arrays["meta"]))
    meta["config"].update(config)
    meta["epoch"] = meta["epoch"] if epoch is None else epoch
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(folder / "checkpoint.npz", **arrays)
    return folder / "checkpoint.npz"


def environment(**changes):
    return {
        **os.environ,
        "OPENBLAS_NUM_THREADS": "1",
        "TINYBT_BACKEND": "numpy",
        "PYTHONUNBUFFERED": "1",
        **changes,
    }


def run_case(arguments, how, places, tmp):
    """Run one case; returns (exit status, stdout + stderr, stderr)."""
    file = tmp / "a-file.tar.gz"
    file.write_text("not a folder, not an archive")
    # split, then filled in: a path with a space stays one word
    words = [word.format(tmp=tmp, file=file, **places) for word in arguments.split()]
    words = [PYTHON, *words]
    words = ["" if word == "''" else word for word in words]
    cwd = None
    if how.startswith("in-"):
        cwd = tmp if how == "in-tmp" else places[how.removeprefix("in-")]
    env = environment(**dict([how[4:].split("=")])) if how.startswith("env:") else environment()
    if how == "closed":
        reader, writer = os.pipe()
        os.close(reader)
        try:
            done = subprocess.run(
                words,
                cwd=cwd,
                env=env,
                stdout=writer,
                stderr=subprocess.PIPE,
                text=True,
                timeout=300,
            )
        finally:
            os.close(writer)
        return done.returncode, done.stderr, done.stderr
    if how.startswith("sigint@"):
        return interrupted(words, how.removeprefix("sigint@"), cwd, env)
    done = subprocess.run(words, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    return done.returncode, done.stdout + done.stderr, done.stderr


def interrupted(words, when, cwd, env):
    """Run `words`, press Ctrl-C after `when` seconds or once the text `when` is printed."""
    process = subprocess.Popen(
        words, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    seen = ""
    try:
        delay = float(when)
    except ValueError:
        for line in process.stdout:
            seen += line
            if when in line:
                break
    else:
        time.sleep(delay)
    process.send_signal(signal.SIGINT)
    rest = process.communicate(timeout=300)[0]
    return process.returncode, seen + rest, seen + rest


@pytest.fixture(scope="module")
def outcomes(workspace, tmp_path_factory, request):
    """{case name: (status, output, stderr)} of the chosen cases, two at a time."""
    chosen = chosen_cases(request)
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {
            name: pool.submit(run_case, arguments, how, workspace, tmp_path_factory.mktemp("c"))
            for name, arguments, how, _ in PROGRAM_CASES
            if name in chosen
        }
        return {name: future.result() for name, future in futures.items()}


@pytest.mark.parametrize(
    "name, expected",
    [
        pytest.param(name, expected, id=name, marks=[pytest.mark.slow] if name in SLOW else [])
        for name, _, _, expected in PROGRAM_CASES
    ],
)
def test_program_case(outcomes, name, expected):
    status, output, stderr = outcomes[name]
    assert "Traceback" not in output and "Exception ignored" not in output, output
    assert status == expected["status"], f"exit {status}: {output[-2000:]}"
    assert expected["phrase"] in output, f"{expected['phrase']!r} not in {output[-2000:]!r}"
    if expected.get("one_line"):
        message = stderr.strip()
        assert "\n" not in message and message.startswith("error: "), message


@pytest.mark.slow
def test_evaluating_an_unfinished_run_says_so(outcomes):
    if "evaluate an unfinished run" not in outcomes:
        pytest.skip("its case was not chosen")
    status, output, _ = outcomes["evaluate an unfinished run"]
    result = json.loads(output.strip().splitlines()[-1])
    assert "after 3 epochs" not in output
    assert "continue it with `python -m tinybt.train --resume --out" in result["unfinished"]


@pytest.mark.slow
def test_evaluating_from_another_folder_reads_the_runs_data(outcomes, tmp_path_factory):
    """The run stored --data-dir data, relative to where it was trained: evaluated from
    elsewhere it reads that folder's cache, and writes no new data folder where it runs."""
    if "evaluate from another folder" not in outcomes:
        pytest.skip("its case was not chosen")
    strays = list(tmp_path_factory.getbasetemp().glob("c*/data"))
    assert strays == []  # nor does resuming from elsewhere, which also ran in a fresh folder


# ----- the data readers, in this process -----
def write_image(path, colour=(200, 10, 10)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (20, 20), colour).save(path)


def image_folder(root):
    for name in ("cat", "dog"):
        for index in range(5):
            write_image(root / name / f"{index}.png")
    return root


# (name, what to add to a folder of 2 classes x 5 images, training images then)
FOLDER_CASES = [
    ("images in nested subfolders are read", {"cat/more/deeper/n.png": "image"}, 9),
    (".git is no class", {".git/HEAD": "ref: refs/heads/main", ".git/objects/x": "blob"}, 8),
    (".ipynb_checkpoints is no class", {".ipynb_checkpoints/a.png": "image"}, 8),
    ("hidden subfolders of a class are skipped", {"cat/.thumbnails/t.png": "image"}, 8),
    ("macOS ._ files are skipped", {"cat/._0.png": "AppleDouble", "dog/._1.png": "x"}, 8),
    ("BMP and WebP are read", {"cat/a.BMP": "image", "dog/b.webp": "image"}, 10),
    ("names with spaces and accents", {"cat/ça va 1.png": "image"}, 9),
    ("a folder named like an image", {"cat/album.png/x.txt": "not an image"}, 8),
    ("other files are ignored", {"cat/notes.txt": "text", "README.md": "readme"}, 8),
]


@pytest.mark.parametrize("name, extra, count", FOLDER_CASES, ids=[c[0] for c in FOLDER_CASES])
def test_image_folder_case(tmp_path, name, extra, count):
    root = image_folder(tmp_path / "images")
    for relative, content in extra.items():
        if content == "image":
            write_image(root / relative, (10, 200, 10))
        else:
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            (root / relative).write_text(content)
    train = load_dataset("folder", "train", root)
    assert len(train) == count and train.classes == ["cat", "dog"]


def test_a_class_whose_images_are_all_hidden_has_none(tmp_path):
    root = image_folder(tmp_path / "images")
    shutil.rmtree(root / "dog")
    write_image(root / "dog" / ".hidden" / "a.png")
    with pytest.raises(TinyBTError, match="class folder .*dog has no images") as error:
        load_dataset("folder", "train", root)
    assert "\n" not in str(error.value)


SHAPES = dict(seed=3, num_train=16, num_test=8)


@pytest.mark.parametrize("cut", [0, 4, 100, 0.5, -40, -1])
def test_a_truncated_shapes_cache_is_made_again(tmp_path, capsys, cut):
    first = load_dataset("shapes", "train", tmp_path, **SHAPES)
    cache = next(tmp_path.glob("*.npz"))
    data = cache.read_bytes()
    cache.write_bytes(data[: int(cut * len(data)) if isinstance(cut, float) else cut])
    capsys.readouterr()
    again = load_dataset("shapes", "train", tmp_path, **SHAPES)
    np.testing.assert_array_equal(first.images, again.images)
    said = capsys.readouterr().err.strip()
    assert said == f"{cache} is truncated or corrupt: generating the shapes again"
    assert cache.read_bytes() == data


def test_a_shapes_cache_missing_an_array_is_made_again(tmp_path):
    first = load_dataset("shapes", "test", tmp_path, **SHAPES)
    cache = next(tmp_path.glob("*.npz"))
    with np.load(cache) as arrays:
        kept = {name: arrays[name] for name in arrays.files if name != "test_labels"}
    np.savez(cache, **kept)
    again = load_dataset("shapes", "test", tmp_path, **SHAPES)
    np.testing.assert_array_equal(first.labels, again.labels)


def test_cifar_without_data_names_what_to_run(tmp_path):
    with pytest.raises(TinyBTError) as error:
        load_dataset("cifar10", "test", tmp_path)
    assert "(--download)" not in str(error.value)
    assert "python -m tinybt.train --download" in str(error.value)


@pytest.fixture(scope="module")
def server():
    """A local HTTP server: /good serves PAYLOAD with its length, /unsized without one and
    cut short."""
    payload = os.urandom(3000)
    routes = {"/good": (payload, len(payload)), "/unsized": (payload[:1000], None)}
    with local_server(routes) as url:
        yield url, hashlib.md5(payload).hexdigest()


# (name, url path, destination under tmp_path, a phrase of the one-line error)
DOWNLOAD_CASES = [
    ("destination under a file", "/good", "a-file/sub/f.bin", "cannot write"),
    ("destination is a folder", "/good", "a-folder", "a folder has its name"),
    ("no length, cut short", "/unsized", "f.bin", "arrived with MD5"),
]


@pytest.mark.parametrize(
    "name, path, destination, phrase", DOWNLOAD_CASES, ids=[c[0] for c in DOWNLOAD_CASES]
)
def test_download_case(server, tmp_path, name, path, destination, phrase):
    url, md5 = server
    (tmp_path / "a-file").write_text("a file")
    (tmp_path / "a-folder").mkdir()
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(TinyBTError, match=phrase) as error:
        download(url + path, tmp_path / destination, md5)
    assert "\n" not in str(error.value)
    assert sorted(tmp_path.rglob("*")) == before, "nothing left behind"


def test_download_refused_by_the_server_is_one_line(tmp_path):
    with pytest.raises(TinyBTError, match="failed after 0 bytes"):
        download("http://127.0.0.1:9/x", tmp_path / "f.bin", "0" * 32)
    assert list(tmp_path.iterdir()) == []


def test_cifar_download_into_a_folder_named_like_the_archive(server, tmp_path, monkeypatch):
    url, md5 = server
    monkeypatch.setattr(cifar10, "URL", url + "/good")
    monkeypatch.setattr(cifar10, "MD5", md5)
    (tmp_path / cifar10.ARCHIVE).mkdir()
    with pytest.raises(TinyBTError, match="a folder has its name"):
        load_dataset("cifar10", "test", tmp_path, download=True)


def test_every_program_case_has_its_own_name():
    names = [case[0] for case in PROGRAM_CASES]
    assert len(names) == len(set(names))
