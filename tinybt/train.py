"""Train Barlow Twins:  python -m tinybt.train --preset shapes

One training step (`train_step`) is the whole method:
    two augmented views of a batch -> the same network -> embeddings Z_a, Z_b (N, D)
    -> loss = Barlow Twins(Z_a, Z_b) -> backward -> optimiser step.
The rest of this file is what makes a run trustworthy: a seeded generator for every random
draw, a learning-rate schedule, progress and metrics, snapshots of the cross-correlation
matrix, atomic checkpoints with exact resume, Ctrl-C that saves, and a clear stop on NaN.

Files written to --out (default runs/<preset>):
    checkpoint.npz      model, optimiser, generator state, epoch (see tinybt/checkpoint.py)
    metrics.jsonl       one JSON line per epoch: loss, its two parts, diag of C, img/s, ...
    snapshots.npz       C on a fixed held-out batch at log-spaced steps (steps, matrices)
    cross_correlation.png / .gif   those snapshots, converging to the identity
    evaluation.json     kNN and linear-probe accuracy, learned vs random encoder
"""

import argparse
import json
import math
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np

from tinybt import augment, backend, viz
from tinybt.checkpoint import (
    atomic_savez,
    generator_state,
    load_checkpoint,
    restore_generator,
    save_checkpoint,
)
from tinybt.data import load_dataset
from tinybt.errors import TinyBTError
from tinybt.loss import barlow_twins_loss, cross_correlation, loss_terms
from tinybt.model import BarlowTwins, count_parameters, parse_dims
from tinybt.optim import OPTIMIZERS, warmup_cosine
from tinybt.progress import ProgressBar
from tinybt.tensor import Tensor, no_grad


@dataclass
class Config:
    """Every choice a run makes. Saved in each checkpoint, so a run can be resumed and
    evaluated from its folder alone."""

    dataset: str = "shapes"  # shapes | cifar10 | folder
    data_dir: str = "data"  # folder, or a CIFAR-10 .tar.gz
    download: bool = False  # cifar10: fetch the official archive into data_dir if missing
    train_size: int = 0  # use only the first N training images (0: all)
    # numpy | cupy | strict; by default TINYBT_BACKEND, as for everything else
    backend: str = field(default_factory=lambda: os.environ.get("TINYBT_BACKEND", "numpy"))
    seed: int = 0
    epochs: int = 20
    batch_size: int = 128
    optimizer: str = "adam"  # adam | adamw | lars | sgd
    lr: float = 1e-3
    weight_decay: float = 1e-6
    warmup_epochs: float = 1.0
    lambd: float = 0.0051  # weight of the off-diagonal term
    standardize: bool = True  # False: cross-covariance instead of cross-correlation (ablation)
    widths: str = "32-64-128-256"  # encoder channels per stage
    strides: str = "1-2-2-2"
    blocks: int = 1  # convs per stage
    projector: str = "512-512-512"
    augment: str = "cifar"  # cifar | paper: the presets in tinybt/augment.py
    augment_changes: dict = field(default_factory=dict)  # e.g. {"jitter_p": 0.0}, ablations
    snapshot_size: int = 256  # held-out images whose cross-correlation is snapshotted
    evaluate: bool = True  # kNN and linear probe at the end
    out: str = "runs/shapes"

    @classmethod
    def preset(cls, name, **changes):
        """The configuration of preset `name` (see PRESETS), with `changes` on top."""
        if name not in PRESETS:
            raise TinyBTError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}")
        return replace(cls(), **{**PRESETS[name], **changes})


PRESETS = {
    # The README's main command: the offline shapes dataset, about 4 minutes on a 2-core CPU.
    # Crops of at least half the image keep the object in both views (it covers a small part
    # of the image, and the paper's 8% crops often cut it out). Downsampling in every stage
    # makes a step about 4x cheaper than strides 1-2-2-2 and lets the last stage see the
    # whole shape; on this budget, more epochs of that beat a full-resolution first stage.
    "shapes": dict(
        dataset="shapes",
        epochs=50,
        batch_size=64,
        widths="32-64-128-256",
        strides="2-2-2-2",
        projector="256-256-256",
        augment_changes={"crop_scale": (0.5, 1.0)},
        out="runs/shapes",
    ),
    # The acceptance recipe on CIFAR-10 (see README): the 4-stage encoder, 100 epochs.
    "cifar10": dict(
        dataset="cifar10",
        epochs=100,
        batch_size=128,
        widths="32-64-128-256",
        projector="512-512-512",
        optimizer="adam",
        lr=1e-3,
        weight_decay=1e-6,
        out="runs/cifar10",
    ),
    # Seconds, for tests and the notebooks' fast configuration.
    "tiny": dict(
        dataset="shapes",
        epochs=2,
        batch_size=32,
        widths="8-16",
        strides="1-2",
        projector="32-32",
        train_size=256,
        snapshot_size=64,
        out="runs/tiny",
    ),
}


# ----- building the pieces -----
def build_model(config):
    """The network, initialised from the run's seed (so the random baseline is its start)."""
    return BarlowTwins(
        widths=parse_dims(config.widths),
        strides=parse_dims(config.strides),
        blocks=config.blocks,
        projector=parse_dims(config.projector),
        rng=np.random.default_rng([config.seed, 0]),
    )


def build_optimizer(config, model):
    if config.optimizer not in OPTIMIZERS:
        raise TinyBTError(
            f"unknown optimizer {config.optimizer!r}: choose one of {', '.join(OPTIMIZERS)}"
        )
    return OPTIMIZERS[config.optimizer](
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )


def build_augment(config, mean, std):
    """The preset's two-view pipeline, with `config.augment_changes` applied to both views."""
    presets = {"cifar": augment.cifar, "paper": augment.paper}
    if config.augment not in presets:
        raise TinyBTError(f"unknown augment preset {config.augment!r}: cifar or paper")
    pipeline = presets[config.augment](tuple(mean), tuple(std))
    return pipeline.replace(**config.augment_changes) if config.augment_changes else pipeline


# ----- one step -----
def train_step(model, optimizer, view_a, view_b, lambd, standardize):
    """Forward both views through the same network, backward the loss, update.

    view_a, view_b: (N, 3, H, W) arrays. Returns the loss (float) and the embeddings.
    """
    z_a = model(Tensor(view_a))
    z_b = model(Tensor(view_b))
    loss = barlow_twins_loss(z_a, z_b, lambd=lambd, standardized=standardize)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item(), z_a.data, z_b.data


def correlation_summary(c, lambd):
    """What we log about C: the two loss terms, mean diagonal, RMS of the off-diagonal."""
    on_diagonal, off_diagonal = loss_terms(c, lambd)
    d = c.shape[0]
    diagonal_sq = float((backend.xp().diagonal(c) ** 2).sum())
    return {
        "on_diag": float(on_diagonal),
        "off_diag": float(off_diagonal),
        "diag_mean": float(backend.xp().diagonal(c).mean()),
        "off_diag_rms": math.sqrt(max(float((c**2).sum()) - diagonal_sq, 0.0) / (d * d - d)),
    }


def load_split(config, split):
    """The `split` ("train" or "test") of the config's dataset; the training split is cut to
    its first config.train_size images when that is set."""
    dataset = load_dataset(
        config.dataset,
        split=split,
        data_dir=config.data_dir,
        seed=config.seed,
        download=config.download,
    )
    if split == "train" and config.train_size:
        dataset = first_images(dataset, config.train_size)
    return dataset


def first_images(dataset, count):
    """The dataset cut to its first `count` images (the datasets come in random order)."""
    return replace(dataset, images=dataset.images[:count], labels=dataset.labels[:count])


def snapshot_steps(total_steps, count=16):
    """About `count` log-spaced steps from 0 to total_steps (early steps change C most)."""
    steps = np.unique(np.geomspace(1, total_steps + 1, count).astype(int) - 1)
    return [int(s) for s in steps]


# ----- the run -----
class Run:
    """A training run in its folder: loads data, builds or restores everything, trains."""

    def __init__(self, config, train_set=None, progress=True, log=print):
        """train_set: a Dataset to train on instead of the config's training split (notebook
        08 trains on images with shuffled pixels); its mean and std normalise the views."""
        self.config, self.progress, self.log = config, progress, log
        backend.set_backend(config.backend)
        backend.reuse_freed_memory()  # a fifth faster on the CPU: see its docstring
        self.out = Path(config.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.checkpoint_path = self.out / "checkpoint.npz"

        self.train_set = load_split(config, "train") if train_set is None else train_set
        self.test_set = load_split(config, "test")
        self.augment = build_augment(config, self.train_set.mean, self.train_set.std)
        self.model = build_model(config)
        self.optimizer = build_optimizer(config, self.model)

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

    def _snapshot_views(self):
        """Two fixed augmented views of the first held-out images, the same at every snapshot."""
        images = self.test_set.images[: self.config.snapshot_size]
        return self.augment(backend.to_device(images), np.random.default_rng([self.config.seed, 2]))

    # ----- resume -----
    def resume(self):
        model_state, optim_state, meta = load_checkpoint(self.checkpoint_path)
        self.model.load_state_dict(model_state)
        self.optimizer.load_state_dict(optim_state)
        self.epoch, self.batch = meta["epoch"], meta["batch"]
        self.order = None if meta["order"] is None else np.asarray(meta["order"])
        self.rng = restore_generator(meta["rng"])
        self.sums = meta["sums"]
        snapshots_file = self.out / "snapshots.npz"
        if snapshots_file.exists():
            with np.load(snapshots_file) as saved:
                self.snapshots = {
                    int(s): m
                    for s, m in zip(saved["steps"], saved["matrices"], strict=True)
                    if s < self.epoch * self.steps_per_epoch + self.batch
                }
        self._keep_metrics_before(self.epoch)
        self.log(
            f"resumed from {self.checkpoint_path} at epoch {self.epoch + 1}, batch {self.batch}"
        )

    def _keep_metrics_before(self, epoch):
        path = self.out / "metrics.jsonl"
        if path.exists():
            lines = [
                line
                for line in path.read_text().splitlines()
                if line and json.loads(line)["epoch"] <= epoch
            ]
            path.write_text("".join(line + "\n" for line in lines))

    def save(self):
        meta = {
            "config": asdict(self.config),
            "epoch": self.epoch,
            "batch": self.batch,
            "order": None if self.order is None else self.order.tolist(),
            "rng": generator_state(self.rng),
            "sums": self.sums,
        }
        save_checkpoint(self.checkpoint_path, self.model, self.optimizer, meta)

    # ----- training -----
    def train(self):
        """Train until the last epoch; returns the list of per-epoch metrics."""
        c = self.config
        if self.epoch == 0 and self.batch == 0:
            self.log(
                f"training {count_parameters(self.model):,} parameters on "
                f"{len(self.train_set):,} {c.dataset} images, {c.epochs} epochs of "
                f"{self.steps_per_epoch} steps, backend {backend.backend_name()}"
            )
        interrupted = _InterruptFlag()
        with interrupted:
            while self.epoch < c.epochs:
                if self.order is None:
                    self.order = self.rng.permutation(len(self.train_set))
                if not self._train_epoch(interrupted):
                    self.save()
                    self.log(f"interrupted: saved {self.checkpoint_path}; continue with --resume")
                    raise KeyboardInterrupt
                self._finish_epoch()
        self._take_snapshot(self.total_steps)
        self._save_snapshots(figure=True)
        return self.metrics()

    def _train_epoch(self, interrupted):
        """Run the rest of the current epoch. False if Ctrl-C asked to stop."""
        c = self.config
        bar = ProgressBar(
            self.steps_per_epoch,
            f"epoch {self.epoch + 1}/{c.epochs}",
            stream=None if self.progress else _Silent(),
        )
        bar.update(self.batch)
        start = time.perf_counter() - self.sums.get("seconds", 0.0)
        while self.batch < self.steps_per_epoch:
            if interrupted.flag:
                self.sums["seconds"] = time.perf_counter() - start
                bar.close()
                return False
            step = self.epoch * self.steps_per_epoch + self.batch
            if step in self.snapshot_at:
                self._take_snapshot(step)
            self.optimizer.lr = warmup_cosine(
                step, self.total_steps, c.lr, c.warmup_epochs * self.steps_per_epoch
            )
            rows = self.order[self.batch * c.batch_size : (self.batch + 1) * c.batch_size]
            view_a, view_b = self.augment(backend.to_device(self.train_set.images[rows]), self.rng)
            loss, z_a, z_b = train_step(
                self.model, self.optimizer, view_a, view_b, c.lambd, c.standardize
            )
            if not math.isfinite(loss):
                raise self._diverged(loss, step)
            summary = correlation_summary(cross_correlation(z_a, z_b, c.standardize), c.lambd)
            for key, value in {"loss": loss, **summary}.items():
                self.sums[key] = self.sums.get(key, 0.0) + value
            self.batch += 1
            images_per_second = self.batch * c.batch_size / (time.perf_counter() - start)
            bar.update(loss=f"{loss:.3f}", **{"img/s": f"{images_per_second:.0f}"})
        self.sums["seconds"] = time.perf_counter() - start
        bar.close()
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
        self.log(
            f"epoch {record['epoch']}: loss {record['loss']:.3f} (on-diag "
            f"{record['on_diag']:.3f}, off-diag {record['off_diag']:.3f}), mean C_ii "
            f"{record['diag_mean']:.3f}, {record['images_per_second']:.0f} img/s"
        )
        self.epoch, self.batch, self.order, self.sums = self.epoch + 1, 0, None, {}
        self.save()
        self._save_snapshots(figure=False)

    def _diverged(self, loss, step):
        last = (
            f"the last good checkpoint is {self.checkpoint_path} (end of epoch {self.epoch})"
            if self.checkpoint_path.exists()
            else "no checkpoint was written yet"
        )
        return TinyBTError(
            f"the loss became {loss} at step {step} (epoch {self.epoch + 1}): training "
            f"diverged, most likely because --lr {self.config.lr:g} is too high for "
            f"--optimizer {self.config.optimizer}; lower it and start again ({last})"
        )

    def _take_snapshot(self, step):
        """C on the fixed held-out views, as the loss sees it: batch norm in training mode.

        Evaluation mode would use the running statistics, which at step 0 are still their
        initial values (mean 0, variance 1): the random network's embeddings then have a
        spread of about 1e-3, swamped by the eps of the standardisation, and C would show
        zeros instead of the random network's real correlations. The running statistics that
        these forward passes update are put back afterwards, so snapshots change nothing.
        """
        buffers = self.model.named_buffers().values()
        running = [buffer.data.copy() for buffer in buffers]
        with no_grad():
            z_a = self.model(Tensor(self.snapshot_views[0])).data
            z_b = self.model(Tensor(self.snapshot_views[1])).data
        for buffer, saved in zip(buffers, running, strict=True):
            buffer.data[...] = saved
        c = cross_correlation(z_a, z_b, self.config.standardize)
        self.snapshots[step] = backend.to_host(c).astype(np.float16)

    def _save_snapshots(self, figure):
        steps = sorted(self.snapshots)
        matrices = np.stack([self.snapshots[s] for s in steps])
        atomic_savez(self.out / "snapshots.npz", {"steps": np.array(steps), "matrices": matrices})
        if figure:
            viz.save_cross_correlation_grid(steps, matrices, self.out / "cross_correlation.png")
            viz.save_cross_correlation_gif(steps, matrices, self.out / "cross_correlation.gif")

    def metrics(self):
        path = self.out / "metrics.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines() if line]


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


class _Silent:
    """A stream that discards what is written (progress=False)."""

    def write(self, text):
        pass

    def flush(self):
        pass


def train(config, resume=False, progress=True, log=print):
    """Run (or resume) training for `config`; evaluate at the end if config.evaluate.

    Returns {"metrics": per-epoch records, "evaluation": accuracies or None, "run": Run}.
    """
    run = Run(config, progress=progress, log=log)
    if resume:
        run.resume()
    metrics = run.train()
    evaluation = None
    if config.evaluate:
        from tinybt.evaluate import evaluate_run

        evaluation = evaluate_run(run.model, config, run.train_set, run.test_set, log=log)
        (run.out / "evaluation.json").write_text(json.dumps(evaluation, indent=2) + "\n")
    return {"metrics": metrics, "evaluation": evaluation, "run": run}


# ----- command line -----
def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m tinybt.train",
        description="Train Barlow Twins. A preset sets every option; flags given after it win.",
    )
    parser.add_argument("--preset", choices=sorted(PRESETS), default="shapes")
    parser.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its checkpoint.npz"
    )
    defaults = asdict(Config())
    for name, default in defaults.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None)
        elif isinstance(default, (int, float, str)):
            parser.add_argument(flag, type=type(default), default=None)
    return parser.parse_args(argv)


def config_from_args(args):
    """Defaults, then the preset, then the flags given on the command line."""
    config = Config.preset(args.preset)
    given = {f.name: getattr(args, f.name, None) for f in fields(Config)}
    given = {name: value for name, value in given.items() if value is not None}
    return replace(config, **given)


def main(argv=None):
    args = parse_args(argv)
    config = config_from_args(args)
    try:
        if args.resume:
            stored = load_checkpoint(Path(config.out) / "checkpoint.npz")[2]["config"]
            config = replace(Config(**stored), backend=config.backend)
        result = train(config, resume=args.resume)
    except TinyBTError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    evaluation = result["evaluation"]
    print(
        f"wrote {config.out}/ (checkpoint, metrics.jsonl, cross_correlation.png/.gif"
        f"{', evaluation.json' if evaluation else ''})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
