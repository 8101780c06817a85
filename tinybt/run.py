"""A training run in its folder: `Run` checks, loads data, builds or restores everything and
trains; `train(config)` runs (or resumes) one and evaluates it.

The method itself is one step, `tinybt.step.train_step` (this module imports no method:
it reads whatever terms the method's objective reports); this module is what makes a run of
thousands of steps trustworthy: a seeded generator for every random draw, a learning-rate
schedule, progress and metrics, snapshots of the cross-correlation matrix, atomic checkpoints
with exact resume, Ctrl-C that saves, a clear stop when training diverges, and a run folder
that no other run overwrites. The programs `python -m tinybt.train` and
`python -m tinybt.experiments` drive it.

The files a run writes to its folder (config.out), and the lock that keeps other runs out of
it, are tinybt/runfolder.py's.

Under `mpiexec -n P` (tinybt/distributed.py) P processes run the same Run: each makes the
views of its share of every batch, from the whole batch's random draws, and the step sums
what it must across them, so every process holds the same weights, generator and sums at
every step. One process writes: process 0 claims the folder, reads the checkpoint to resume
(the others receive it), and alone logs, saves, snapshots, draws and evaluates. The others
only compute. Decisions that end an epoch early (Ctrl-C) are taken by all at the same step.
"""

import json
import signal
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from tinybt import backend, distributed, viz
from tinybt.build import (
    build_augment,
    build_correlation,
    build_model,
    build_objective,
    build_optimizer,
    load_split,
)
from tinybt.checkpoint import (
    NonFiniteError,
    atomic_savez,
    atomic_write_text,
    generator_state,
    load_checkpoint,
    read_npz,
    restore_generator,
    save_checkpoint,
)
from tinybt.config import has_target, validate
from tinybt.divergence import Overflow, diverged
from tinybt.errors import TinyBTError
from tinybt.evaluation import evaluate_run
from tinybt.model import count_parameters, parse_dims
from tinybt.monitor import monitor_accuracy, monitor_sample
from tinybt.optim import warmup_cosine
from tinybt.runfolder import free_folder, prepare_folder, read_metrics
from tinybt.step import train_step
from tinybt.tensor import Tensor, no_grad

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


def _is_count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_permutation(order, size):
    """Whether `order` is a list holding each of 0 .. size - 1 once."""
    return (
        isinstance(order, list)
        and all(_is_count(i) for i in order)
        and sorted(order) == list(range(size))
    )


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
        self.config = config
        self.writer = distributed.rank() == 0  # the one process that logs and writes files
        self.progress = progress and self.writer
        self.log = (log if self.writer else None) or (lambda *_: None)
        backend.set_backend(config.backend)
        backend.use_gpu(distributed.gpu_index)  # one GPU per process of this machine
        backend.reuse_freed_memory()  # a fifth faster on the CPU: see its docstring
        created = not Path(config.out).exists()
        self.out = distributed.on_process_zero(prepare_folder, config.out, resume, overwrite)
        try:
            self._build(train_set, resume)
        except BaseException:  # bad data, a corrupt checkpoint, Ctrl-C: the folder is free
            self._free_folder(created)
            raise

    def _free_folder(self, created=False):
        """free_folder, by the process that claimed the folder."""
        if self.writer:
            free_folder(self.out, created)

    def _build(self, train_set, resume):
        """Load the data, build everything, and restore it when resuming."""
        config = self.config
        self.checkpoint_path = self.out / "checkpoint.npz"
        self.share = distributed.batch_share(config.batch_size, resume)  # this process's rows

        # Process 0 reads (or decodes and caches) the images and sends them to the others, so
        # every process trains on the same images and a cache is built once.
        if train_set is None:
            train_set = distributed.on_process_zero(load_split, config, "train")
        self.train_set = train_set
        self.test_set = distributed.on_process_zero(load_split, config, "test")
        self.augment = build_augment(config, self.train_set.mean, self.train_set.std)
        self.model = build_model(config)
        self.optimizer = build_optimizer(config, self.model)
        self.objective = build_objective(config)
        self.correlation = build_correlation(config)

        self.steps_per_epoch = len(self.train_set) // config.batch_size
        if self.steps_per_epoch == 0:
            raise TinyBTError(
                f"--batch-size {config.batch_size} is larger than the "
                f"{len(self.train_set)} training images: lower it"
            )
        self.total_steps = config.epochs * self.steps_per_epoch
        self.snapshot_at = snapshot_steps(self.total_steps)
        self.snapshot_views = self._snapshot_views() if self.writer else None
        self.monitor = None  # the images the kNN monitor measures, on process 0
        if config.monitor_every and self.writer:
            self.monitor = monitor_sample(self.train_set, self.test_set, config.seed)

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
        model_state, optim_state, meta = distributed.on_process_zero(
            load_run_checkpoint, self.checkpoint_path
        )
        rng = self._check_meta(meta)
        self.model.load_state_dict(model_state)
        self.optimizer.load_state_dict(optim_state)
        self.epoch, self.batch = meta["epoch"], meta["batch"]
        step = self.epoch * self.steps_per_epoch + self.batch
        if self.optimizer.steps != step:  # its step count sets Adam's bias correction
            raise TinyBTError(
                f"{self.checkpoint_path} has optimiser steps {self.optimizer.steps} where the "
                f"run is at step {step}: it was damaged or written by hand; resume from an "
                "earlier checkpoint"
            )
        self.order = None if meta["order"] is None else np.asarray(meta["order"])
        self.rng = rng
        self.sums = meta["sums"]
        if self.writer:
            self.snapshots = self._saved_snapshots(self.epoch * self.steps_per_epoch + self.batch)
            self._keep_metrics_before(self.epoch)
        self.log(
            f"resumed from {self.checkpoint_path} at epoch {self.epoch + 1}, batch {self.batch}"
        )

    def _check_meta(self, meta):
        """Rule: a checkpoint's meta is checked field by field before any of it is used (the
        arrays by load_state_dict): epoch a count up to --epochs, batch one below the epoch's
        steps, order None or a permutation of the training images, rng a generator's state,
        sums {name: number}. A bad field raises a one-line TinyBTError naming it; returns the
        restored generator."""
        epoch, batch, order, sums = meta["epoch"], meta["batch"], meta["order"], meta["sums"]
        if not _is_count(epoch) or epoch > self.config.epochs:
            self._bad_field("epoch", epoch, f"a count from 0 to {self.config.epochs}")
        if not _is_count(batch) or batch >= self.steps_per_epoch:
            self._bad_field("batch", batch, f"a count below {self.steps_per_epoch}")
        images = len(self.train_set)
        if order is not None and not _is_permutation(order, images):
            self._bad_field("order", f"{type(order).__name__}", f"an order of {images} images")
        if not isinstance(sums, dict) or not all(_is_number(v) for v in sums.values()):
            self._bad_field("sums", sums, "{name: number}")
        try:
            return restore_generator(meta["rng"])
        except (KeyError, TypeError, ValueError, AttributeError):
            return self._bad_field("rng", "not a generator's state", "a NumPy generator's state")

    def _bad_field(self, name, value, expected):
        raise TinyBTError(
            f"{self.checkpoint_path} has {name} {str(value)[:60]} in its meta, not {expected}: "
            "it was damaged or written by hand; resume from an earlier checkpoint"
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
            atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in records))

    def save(self):
        """Checkpoint where the run stands (process 0: the others hold the same state). A
        state holding NaN or inf is not saved: training diverged, and the last good
        checkpoint stays."""
        if not self.writer:
            return
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
            raise self._diverged(step - 1, f"{error.name} became NaN or inf") from None

    # ----- training -----
    def train(self):
        """Train until the last epoch; returns the list of per-epoch metrics."""
        config = self.config
        if self.epoch == 0 and self.batch == 0:
            processes = f", {distributed.size()} processes" if distributed.is_active() else ""
            self.log(
                f"training {config.method}{' with an EMA target' if has_target(config) else ''}: "
                f"{count_parameters(self.model):,} parameters on "
                f"{len(self.train_set):,} {config.dataset} images, {config.epochs} epochs of "
                f"{self.steps_per_epoch} steps, backend {backend.backend_name()}{processes}"
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
                while self.epoch < config.epochs:
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
            if distributed.any_process(interrupted.flag):  # Ctrl-C as the last epoch ended
                self.log(
                    f"interrupted after the last epoch: the run is saved in {self.out}"
                    + ("; --resume evaluates it" if self.config.evaluate else "")
                )
                raise KeyboardInterrupt
        finally:  # stopped, by the end, Ctrl-C or an error: the folder is free again
            self._free_folder()
        return self.metrics()

    def _train_epoch(self, interrupted, bar):
        """Run the rest of the current epoch. False if Ctrl-C asked to stop."""
        config = self.config
        start = time.perf_counter() - self.sums.get("seconds", 0.0)
        for images, _ in self.train_set.batches(config.batch_size, self.order, start=self.batch):
            if distributed.any_process(interrupted.flag):  # every process stops at this batch
                self.sums["seconds"] = time.perf_counter() - start
                return False
            step = self.epoch * self.steps_per_epoch + self.batch
            if step in self.snapshot_at:
                self._take_snapshot(step)
            lr = warmup_cosine(
                step, self.total_steps, config.lr, config.warmup_epochs * self.steps_per_epoch
            )
            try:
                loss, terms = train_step(
                    self.model,
                    self.optimizer,
                    self.objective,
                    self.augment,
                    images,
                    self.rng,
                    lr,
                    step,
                    self.total_steps,
                    rows=self.share,
                    statistics=config.statistics,
                )
            except Overflow as overflow:
                raise self._diverged(step, overflow.what, overflow.kind) from None
            for key, value in {"loss": loss, **terms}.items():
                self.sums[key] = self.sums.get(key, 0.0) + value
            self.batch += 1
            images_per_second = self.batch * config.batch_size / (time.perf_counter() - start)
            bar.update()
            bar.set_postfix(
                epoch=self.epoch + 1, loss=f"{loss:.3f}", img_s=round(images_per_second)
            )
        self.sums["seconds"] = time.perf_counter() - start
        return True

    def _finish_epoch(self):
        seconds = self.sums.pop("seconds")
        record = {"epoch": self.epoch + 1, "step": (self.epoch + 1) * self.steps_per_epoch}
        record.update({k: v / self.steps_per_epoch for k, v in self.sums.items()})
        record.update(
            {
                "lr": self.optimizer.lr,
                "seconds": seconds,
                "images_per_second": self.steps_per_epoch * self.config.batch_size / seconds,
            }
        )
        if self.monitor is not None and record["epoch"] % self.config.monitor_every == 0:
            began = time.perf_counter()
            record["knn_monitor"] = monitor_accuracy(self.model.encoder, self.monitor)
            record["monitor_seconds"] = time.perf_counter() - began
        if self.writer:  # the whole file again, so a full disk cannot tear its last line
            path = self.out / "metrics.jsonl"
            before = path.read_text() if path.exists() else ""
            atomic_write_text(path, before + json.dumps(record) + "\n")
        parts = ", ".join(f"{name} {record[name]:.3f}" for name in self.sums if name != "loss")
        knn = f", kNN monitor {100 * record['knn_monitor']:.1f}%" if "knn_monitor" in record else ""
        self.epoch, self.batch, self.order, self.sums = self.epoch + 1, 0, None, {}
        self.save()  # before the line is printed: a closed terminal must not lose the epoch
        self._save_snapshots(figure=False)
        self.log(
            f"epoch {record['epoch']}: loss {record['loss']:.3f}{f' ({parts})' if parts else ''}"
            f", {record['images_per_second']:.0f} img/s{knn}"
        )
        if knn:
            viz.save_training_curves(self.metrics(), self.out / "training.png")

    def _diverged(self, step, what, kind="update"):
        """The one-line error for a run whose `what` overflowed in step `step`."""
        return diverged(self.config, step, what, kind, self.steps_per_epoch, self.checkpoint_path)

    def _take_snapshot(self, step):
        """The method's C (`build_correlation`) on the fixed held-out views, with batch norm
        in training mode, as the loss sees the embeddings.

        Evaluation mode would use the running statistics, which at step 0 are still their
        initial values (mean 0, variance 1): the random network's embeddings then have a
        spread of about 1e-3, swamped by the eps of the standardisation, and C would show
        zeros instead of the random network's real correlations. Under no_grad, batch norm
        uses the batch statistics but leaves its running averages alone (tinybt.nn).
        Process 0 alone takes them, on all of the fixed views, outside the shared batch.
        """
        if not self.writer:
            return
        # Weights grown too large overflow here first; the step that follows stops the run
        with no_grad(), np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            z_a = self.model(Tensor(self.snapshot_views[0])).data
            z_b = self.model(Tensor(self.snapshot_views[1])).data
            matrix = self.correlation(z_a, z_b)
        self.snapshots[step] = backend.to_host(matrix).astype(np.float16)

    def _save_snapshots(self, figure):
        if not self.writer:
            return
        steps = sorted(self.snapshots)
        matrices = np.stack([self.snapshots[s] for s in steps])
        atomic_savez(self.out / "snapshots.npz", {"steps": np.array(steps), "matrices": matrices})
        if figure:
            samples = len(self.snapshot_views[0])
            grid, gif = self.out / "cross_correlation.png", self.out / "cross_correlation.gif"
            viz.save_cross_correlation_grid(steps, matrices, grid, samples=samples)
            viz.save_cross_correlation_gif(steps, matrices, gif)

    def metrics(self):
        """The per-epoch records; [] on processes other than 0, which write none."""
        return read_metrics(self.out / "metrics.jsonl") if self.writer else []


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
    Across processes, process 0 evaluates and writes; the others return no metrics and no
    evaluation.
    """
    run = Run(config, resume=resume, overwrite=overwrite, progress=progress, log=log)
    metrics = run.train()
    evaluation = None
    if config.evaluate and run.writer:
        try:
            evaluation = evaluate_run(run.model, config, run.train_set, run.test_set, log=run.log)
        except KeyboardInterrupt:
            run.log(f"interrupted: the trained run is saved in {run.out}; --resume evaluates it")
            raise
        atomic_write_text(run.out / "evaluation.json", json.dumps(evaluation, indent=2) + "\n")
    return {"metrics": metrics, "evaluation": evaluation, "run": run}
