"""A training run in its folder: `Run` checks, loads data, builds or restores everything and
trains; `train(config)` runs (or resumes) one and evaluates it.

The method itself is one step, `tinybt.recipe.train_step`; this module is what makes a run of
thousands of steps trustworthy: a seeded generator for every random draw, a learning-rate
schedule, progress and metrics, snapshots of the cross-correlation matrix, atomic checkpoints
with exact resume, Ctrl-C that saves, a clear stop when training diverges, and a run folder
that no other run overwrites. The programs `python -m tinybt.train` and
`python -m tinybt.experiments` drive it.

Files written to the run's folder (config.out):
    checkpoint.npz      networks, optimiser, generator state, epoch (see tinybt/checkpoint.py)
    metrics.jsonl       one JSON line per epoch: loss, the method's terms, diag of C, img/s, ...
    snapshots.npz       C on a fixed held-out batch at log-spaced steps (steps, matrices)
    cross_correlation.png / .gif   those snapshots, converging to the identity
    evaluation.json     kNN and linear-probe accuracy, learned vs random encoder
    run.lock            while a process trains there: its process id
"""

import json
import math
import os
import signal
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from tinybt import backend, viz
from tinybt.checkpoint import (
    NonFiniteError,
    atomic_savez,
    generator_state,
    load_checkpoint,
    read_npz,
    remove_stale_temporaries,
    restore_generator,
    save_checkpoint,
)
from tinybt.errors import TinyBTError
from tinybt.loss import cross_correlation
from tinybt.methods.byol import ema_tau
from tinybt.model import count_parameters, parse_dims
from tinybt.optim import warmup_cosine
from tinybt.recipe import (
    build_augment,
    build_model,
    build_objective,
    build_optimizer,
    evaluate_run,
    has_target,
    load_split,
    train_step,
    validate,
)
from tinybt.tensor import Tensor, no_grad

RUN_FILES = (
    "checkpoint.npz",
    "metrics.jsonl",
    "snapshots.npz",
    "cross_correlation.png",
    "cross_correlation.gif",
    "evaluation.json",
)


LOCK = "run.lock"  # while a process trains in the folder: its id


def process_alive(pid):
    """Whether process `pid` is still running. On POSIX signal 0 checks and sends nothing; on
    Windows os.kill would stop the process, so there every lock counts as held."""
    if os.name == "nt":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it runs, as another user
        return True
    return True


def held_by_another(lock):
    """Whether the lock file `lock` (a Path) belongs to another process that is still running.

    A lock holds its process's id; an empty one was created a moment ago, its id not yet
    written, and counts as held. A lock whose process has ended (a killed run left it), or
    that this very process wrote, does not.
    """
    try:
        text = lock.read_text().strip()
    except OSError:  # no lock; or no folder, which creating it will report
        return False
    if not text:
        return True
    try:
        pid = int(text)
    except ValueError:  # not a lock of ours
        return False
    return pid != os.getpid() and process_alive(pid)


def claim(lock):
    """Create the lock file `lock` holding this process's id. True if this process now holds
    it; False if another process that is still running does. A stale lock is replaced."""
    if held_by_another(lock):
        return False
    lock.unlink(missing_ok=True)
    try:
        with open(lock, "x") as file:  # "x": fails if the file exists, in one system call
            file.write(str(os.getpid()))
    except FileExistsError:  # another process claimed it since the check above
        return False
    return True


def in_use(out):
    """The error for a run folder that another run is training in."""
    return TinyBTError(
        f"{out} is in use by another run (its process id is in {out / LOCK}): wait for it to "
        "stop, or choose another --out; delete that file if no tinybt run is using the folder"
    )


def prepare_folder(out, resume, overwrite):
    """Check that the run folder `out` can be used, before any work; create it if needed.

    A new run refuses a folder that holds another run's files, unless `overwrite` (then those
    files are deleted); `resume` needs the folder's checkpoint. The folder must be writable:
    finding that out after an epoch of training would lose the epoch. The folder is claimed
    for this process (a lock, run.lock, that Run.train deletes when it stops) before anything
    in it is deleted: with --overwrite, the old run's files, and temporary files that a killed
    run left while saving. A second run started before the first has saved anything would
    otherwise find none of its files and write over them.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise TinyBTError(f"--out {out} is a file, not a folder: give a folder for the run")
    if held_by_another(out / LOCK):  # first: its files are a live run's, to leave alone
        raise in_use(out)
    existing = [name for name in RUN_FILES if (out / name).exists()]
    if resume:
        checkpoint_to_resume(out)
    if existing and not resume and not overwrite:
        raise TinyBTError(
            f"{out} already holds a run ({', '.join(existing)}): continue it with --resume, "
            "choose another --out, or replace it with --overwrite"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
        if not claim(out / LOCK):  # before deleting anything: a run may have started since
            raise in_use(out)
        if overwrite and not resume:
            for name in existing:
                (out / name).unlink()
        remove_stale_temporaries(out)
    except OSError as error:
        raise TinyBTError(
            f"cannot write to --out {out} ({error.strerror}): choose a folder you can write to"
        ) from None
    return out


def checkpoint_to_resume(out):
    """The checkpoint of the run in folder `out`, which --resume continues."""
    path = Path(out) / "checkpoint.npz"
    if not path.is_file():
        raise TinyBTError(
            f"nothing to resume: {out} holds no checkpoint.npz; give the run's folder as --out"
        )
    return path


# What Run.save writes into a checkpoint's meta, and resuming reads back.
RUN_META = ("config", "epoch", "batch", "order", "rng", "sums")


def load_run_checkpoint(path):
    """load_checkpoint for resuming: (model state, optimiser state, meta), refusing a meta that
    lacks any of RUN_META (a checkpoint of another version of tinybt, or one made by hand)."""
    model_state, optim_state, meta = load_checkpoint(path)
    missing = [key for key in RUN_META if key not in meta]
    if missing:
        raise TinyBTError(
            f"{path} has no {', '.join(missing)} in its meta: it was written by another version "
            "of tinybt; resume it with that version, or start a new run in another --out"
        )
    return model_state, optim_state, meta


def read_metrics(path):
    """The per-epoch records of metrics.jsonl. A torn last line (the process was killed while
    writing it) is dropped: the checkpoint, written after it, knows where the run stands."""
    if not path.exists():
        return []
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    records = []
    for number, line in enumerate(lines, 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number < len(lines):
                raise TinyBTError(
                    f"line {number} of {path} is not JSON: repair or delete that line"
                ) from None
    return records


def snapshot_steps(total_steps, count=16):
    """About `count` log-spaced steps from 0 to total_steps (early steps change C most)."""
    steps = np.unique(np.geomspace(1, total_steps + 1, count).astype(int) - 1)
    return [int(s) for s in steps]


# ----- the run -----
class Run:
    """A training run in its folder: checks, loads data, builds or restores everything, trains.

    resume: continue from the folder's checkpoint. overwrite: start afresh in a folder that
    holds another run, deleting its files. train_set: a Dataset to train on instead of the
    config's training split (notebook 08 trains on images with shuffled pixels); its mean and
    std normalise the views. log: where one-line messages go (None: nowhere).
    """

    def __init__(
        self, config, resume=False, overwrite=False, train_set=None, progress=True, log=print
    ):
        validate(config)
        self.config, self.progress = config, progress
        self.log = log or (lambda *_: None)
        backend.set_backend(config.backend)
        backend.reuse_freed_memory()  # a fifth faster on the CPU: see its docstring
        self.out = prepare_folder(config.out, resume, overwrite)
        self.checkpoint_path = self.out / "checkpoint.npz"

        self.train_set = load_split(config, "train") if train_set is None else train_set
        self.test_set = load_split(config, "test")
        self.augment = build_augment(config, self.train_set.mean, self.train_set.std)
        self.model = build_model(config)
        self.optimizer = build_optimizer(config, self.model)
        self.objective = build_objective(config)

        self.steps_per_epoch = len(self.train_set) // config.batch_size
        if self.steps_per_epoch == 0:
            raise TinyBTError(
                f"--batch-size {config.batch_size} is larger than the "
                f"{len(self.train_set)} training images: lower it"
            )
        self.total_steps = config.epochs * self.steps_per_epoch
        self.snapshot_at = snapshot_steps(self.total_steps)
        self.snapshot_views = self._snapshot_views()

        # where the run stands; replaced from the checkpoint when resuming
        self.epoch, self.batch, self.order = 0, 0, None
        self.rng = np.random.default_rng([config.seed, 1])
        self.sums = {}  # running sums of the epoch in progress
        self.snapshots = {}  # step -> C (D, D) float16 on the host
        if resume:
            self._resume()

    def _snapshot_views(self):
        """Two fixed augmented views of the first held-out images, the same at every snapshot."""
        images = self.test_set.images[: self.config.snapshot_size]
        if len(images) < self.config.snapshot_size:
            self.log(
                f"note: --snapshot-size {self.config.snapshot_size} is more than the "
                f"{len(images)} held-out images: the snapshots of C use all {len(images)}"
            )
        return self.augment(backend.to_device(images), np.random.default_rng([self.config.seed, 2]))

    # ----- resume -----
    def _resume(self):
        model_state, optim_state, meta = load_run_checkpoint(self.checkpoint_path)
        self.model.load_state_dict(model_state)
        self.optimizer.load_state_dict(optim_state)
        self.epoch, self.batch = meta["epoch"], meta["batch"]
        self.order = None if meta["order"] is None else np.asarray(meta["order"])
        self.rng = restore_generator(meta["rng"])
        self.sums = meta["sums"]
        self.snapshots = self._saved_snapshots(self.epoch * self.steps_per_epoch + self.batch)
        self._keep_metrics_before(self.epoch)
        self.log(
            f"resumed from {self.checkpoint_path} at epoch {self.epoch + 1}, batch {self.batch}"
        )

    def _saved_snapshots(self, before):
        """{step: C} of snapshots.npz for the steps before `before`. The snapshots only draw
        the figure, so a damaged file is noted and the figure starts where the run resumes."""
        path = self.out / "snapshots.npz"
        if not path.exists():
            return {}
        try:
            saved = read_npz(path, "the figure of C starts where the run resumes")
            dimension = parse_dims(self.config.projector)[-1]
            if saved["matrices"].shape[1:] != (dimension, dimension):
                raise ValueError("matrices of another size")
            pairs = zip(saved["steps"], saved["matrices"], strict=True)
            return {int(step): matrix for step, matrix in pairs if step < before}
        except TinyBTError as error:
            self.log(f"note: {error}")
        except (KeyError, ValueError):  # not the two arrays of D x D matrices that Run writes
            self.log(
                f"note: {path} holds no snapshots: the figure of C starts where the run resumes"
            )
        return {}

    def _keep_metrics_before(self, epoch):
        path = self.out / "metrics.jsonl"
        records = [r for r in read_metrics(path) if r["epoch"] <= epoch]
        if path.exists():
            path.write_text("".join(json.dumps(r) + "\n" for r in records))

    def save(self):
        """Checkpoint where the run stands. A state holding NaN or inf is not saved: training
        diverged, and the last good checkpoint stays."""
        meta = {
            "config": asdict(self.config),
            "epoch": self.epoch,
            "batch": self.batch,
            "order": None if self.order is None else self.order.tolist(),
            "rng": generator_state(self.rng),
            "sums": self.sums,
        }
        try:
            save_checkpoint(self.checkpoint_path, self.model, self.optimizer, meta)
        except NonFiniteError as error:
            step = self.epoch * self.steps_per_epoch + self.batch
            raise self._diverged(f"{error.name} became NaN or inf", step) from None

    # ----- training -----
    def train(self):
        """Train until the last epoch; returns the list of per-epoch metrics."""
        c = self.config
        if self.epoch == 0 and self.batch == 0:
            self.log(
                f"training {c.method}{' with an EMA target' if has_target(c) else ''}: "
                f"{count_parameters(self.model):,} parameters on "
                f"{len(self.train_set):,} {c.dataset} images, {c.epochs} epochs of "
                f"{self.steps_per_epoch} steps, backend {backend.backend_name()}"
            )
        bar = tqdm(
            total=self.total_steps,
            initial=self.epoch * self.steps_per_epoch + self.batch,
            unit="step",
            disable=None if self.progress else True,  # None: a bar on terminals and notebooks
        )
        interrupted = _InterruptFlag()
        try:
            with interrupted, bar:
                while self.epoch < c.epochs:
                    if self.order is None:
                        self.order = self.rng.permutation(len(self.train_set))
                    if not self._train_epoch(interrupted, bar):
                        self.save()
                        self._save_snapshots(figure=False)
                        self.log(
                            f"interrupted: saved {self.checkpoint_path}; continue with --resume"
                        )
                        raise KeyboardInterrupt
                    self._finish_epoch()
            self._take_snapshot(self.total_steps)
            self._save_snapshots(figure=True)
            if interrupted.flag:  # Ctrl-C as the last epoch ended: the run is whole and saved
                self.log(
                    f"interrupted after the last epoch: the run is saved in {self.out}"
                    + ("; --resume evaluates it" if c.evaluate else "")
                )
                raise KeyboardInterrupt
        finally:  # stopped, by the end, Ctrl-C or an error: the folder is free again
            (self.out / LOCK).unlink(missing_ok=True)
        return self.metrics()

    def _train_epoch(self, interrupted, bar):
        """Run the rest of the current epoch. False if Ctrl-C asked to stop."""
        c = self.config
        start = time.perf_counter() - self.sums.get("seconds", 0.0)
        for images, _ in self.train_set.batches(c.batch_size, self.order, start=self.batch):
            if interrupted.flag:
                self.sums["seconds"] = time.perf_counter() - start
                return False
            step = self.epoch * self.steps_per_epoch + self.batch
            if step in self.snapshot_at:
                self._take_snapshot(step)
            self.optimizer.lr = warmup_cosine(
                step, self.total_steps, c.lr, c.warmup_epochs * self.steps_per_epoch
            )
            view_a, view_b = self.augment(backend.to_device(images), self.rng)
            # the target's EMA rate is a function of the step, so a resumed run continues it
            tau = ema_tau(step, self.total_steps, c.tau_base) if has_target(c) else None
            loss, terms = train_step(
                self.model, self.optimizer, view_a, view_b, self.objective, tau
            )
            if not math.isfinite(loss):
                raise self._diverged(f"the loss became {loss}", step)
            for key, value in {"loss": loss, **terms}.items():
                self.sums[key] = self.sums.get(key, 0.0) + value
            self.batch += 1
            images_per_second = self.batch * c.batch_size / (time.perf_counter() - start)
            bar.update()
            bar.set_postfix(
                epoch=self.epoch + 1, loss=f"{loss:.3f}", img_s=round(images_per_second)
            )
        self.sums["seconds"] = time.perf_counter() - start
        return True

    def _finish_epoch(self):
        c = self.config
        seconds = self.sums.pop("seconds")
        record = {"epoch": self.epoch + 1, "step": (self.epoch + 1) * self.steps_per_epoch}
        record.update({k: v / self.steps_per_epoch for k, v in self.sums.items()})
        record.update(
            {
                "lr": self.optimizer.lr,
                "seconds": seconds,
                "images_per_second": self.steps_per_epoch * c.batch_size / seconds,
            }
        )
        with open(self.out / "metrics.jsonl", "a") as file:
            file.write(json.dumps(record) + "\n")
        parts = ", ".join(
            f"{name} {record[name]:.3f}"
            for name in self.sums
            if name not in ("loss", "diag_mean", "off_diag_rms")
        )
        self.log(
            f"epoch {record['epoch']}: loss {record['loss']:.3f}{f' ({parts})' if parts else ''}"
            f", mean C_ii {record['diag_mean']:.3f}, {record['images_per_second']:.0f} img/s"
        )
        self.epoch, self.batch, self.order, self.sums = self.epoch + 1, 0, None, {}
        self.save()
        self._save_snapshots(figure=False)

    def _diverged(self, what, step):
        last = (
            f"the last good checkpoint is {self.checkpoint_path}"
            if self.checkpoint_path.exists()
            else "no checkpoint was written yet"
        )
        return TinyBTError(
            f"{what} at step {step} (epoch {self.epoch + 1}): training "
            f"diverged, most likely because --lr {self.config.lr:g} is too high for "
            f"--optimizer {self.config.optimizer}; lower it and start again ({last})"
        )

    def _take_snapshot(self, step):
        """C on the fixed held-out views, as the loss sees it: batch norm in training mode.

        Evaluation mode would use the running statistics, which at step 0 are still their
        initial values (mean 0, variance 1): the random network's embeddings then have a
        spread of about 1e-3, swamped by the eps of the standardisation, and C would show
        zeros instead of the random network's real correlations. Under no_grad, batch norm
        uses the batch statistics but leaves its running averages alone (tinybt.nn).
        """
        with no_grad():
            z_a = self.model(Tensor(self.snapshot_views[0])).data
            z_b = self.model(Tensor(self.snapshot_views[1])).data
        c = cross_correlation(z_a, z_b, self.config.standardize)
        self.snapshots[step] = backend.to_host(c).astype(np.float16)

    def _save_snapshots(self, figure):
        steps = sorted(self.snapshots)
        matrices = np.stack([self.snapshots[s] for s in steps])
        atomic_savez(self.out / "snapshots.npz", {"steps": np.array(steps), "matrices": matrices})
        if figure:
            samples = len(self.snapshot_views[0])
            grid, gif = self.out / "cross_correlation.png", self.out / "cross_correlation.gif"
            viz.save_cross_correlation_grid(steps, matrices, grid, samples=samples)
            viz.save_cross_correlation_gif(steps, matrices, gif)

    def metrics(self):
        return read_metrics(self.out / "metrics.jsonl")


class _InterruptFlag:
    """Within its block, the first Ctrl-C only sets `flag` (the step in progress finishes and
    the run saves); a second Ctrl-C stops at once."""

    def __enter__(self):
        self.flag = False
        self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.flag:
            raise KeyboardInterrupt
        self.flag = True

    def __exit__(self, *exc):
        signal.signal(signal.SIGINT, self.previous)


def train(config, resume=False, overwrite=False, progress=True, log=print):
    """Run (or resume) training for `config`; evaluate at the end if config.evaluate.

    Returns {"metrics": per-epoch records, "evaluation": accuracies or None, "run": Run}.
    """
    run = Run(config, resume=resume, overwrite=overwrite, progress=progress, log=log)
    metrics = run.train()
    evaluation = None
    if config.evaluate:
        try:
            evaluation = evaluate_run(run.model, config, run.train_set, run.test_set, log=run.log)
        except KeyboardInterrupt:
            run.log(f"interrupted: the trained run is saved in {run.out}; --resume evaluates it")
            raise
        (run.out / "evaluation.json").write_text(json.dumps(evaluation, indent=2) + "\n")
    return {"metrics": metrics, "evaluation": evaluation, "run": run}
