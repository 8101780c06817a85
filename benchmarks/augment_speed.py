"""How long the two-view augmentation takes for one training batch, beside a training step.

    python benchmarks/augment_speed.py [--batch-size 256] [--repeats 20] [--backend numpy]

The pipeline runs once per training step, so it should take well under the time of one step
of the model. Prints the median over --repeats runs of each augmentation preset, then the
median training step (forward and backward of both views, optimiser) of the models of the
`shapes` and `cifar10` training presets on the same batch size. Each median follows a warm-up
run (which pays for first-call costs such as CuPy compiling its kernels).
"""

import argparse
import sys
import time

import numpy as np

from tinybt import augment, backend
from tinybt.build import build_model, build_objective, build_optimizer
from tinybt.config import Config
from tinybt.errors import TinyBTError
from tinybt.step import train_step

PRESETS = {"cifar": augment.cifar, "paper": augment.paper}
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)  # any statistics cost the same


def time_augment(batch_size, preset, repeats=20, size=32, seed=0):
    """Median seconds for `preset`'s two views of `batch_size` uint8 images (size x size)."""
    rng = backend.rng(seed)
    images = rng.integers(0, 256, size=(batch_size, size, size, 3), dtype=np.uint8)
    pipeline = PRESETS[preset](MEAN, STD, size=size)
    seconds = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        view_a, view_b = pipeline(images, rng)
        # Copying one number back waits for the device to finish (a no-op on NumPy).
        backend.to_host(view_b[:1, 0, 0, 0])
        seconds.append(time.perf_counter() - start)
    return float(np.median(seconds[1:]))


def time_training_step(batch_size, preset, repeats=5, size=32, seed=0):
    """Median seconds for one training step of training preset `preset`'s model."""
    config = Config.preset(preset)
    model, rng = build_model(config), backend.rng(seed)
    optimizer = build_optimizer(config, model)
    shape = (batch_size, 3, size, size)
    views = [backend.to_device(rng.standard_normal(shape, dtype=np.float32)) for _ in "ab"]

    def given_views(images, rng, rows):
        return views

    seconds = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        loss, _ = train_step(
            model, optimizer, build_objective(config), given_views, None, None, config.lr
        )
        seconds.append(time.perf_counter() - start)  # loss is a float: the device has finished
    return float(np.median(seconds[1:]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--backend", choices=backend.BACKENDS, default=None)
    args = parser.parse_args()
    if args.backend:
        backend.set_backend(args.backend)

    print(f"two views of {args.batch_size} 32x32 images on {backend.backend_name()}:")
    for preset in PRESETS:
        seconds = time_augment(args.batch_size, preset, args.repeats)
        print(
            f"  {preset:6s} {seconds * 1000:7.1f} ms per batch "
            f"{args.batch_size / seconds:9.0f} images/s"
        )
    print(f"one training step on {args.batch_size} images, for comparison:")
    for preset in ("shapes", "cifar10"):
        seconds = time_training_step(args.batch_size, preset)
        config = Config.preset(preset)
        print(
            f"  {preset:7s} {seconds * 1000:6.1f} ms per step "
            f"(widths {config.widths}, strides {config.strides}, projector {config.projector})"
        )


if __name__ == "__main__":
    try:
        main()
    except TinyBTError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
