"""Time one full Barlow Twins training step, tinybt against PyTorch on the same CPU.

A step is: two views (N, 3, 32, 32) -> encoder + projector, twice -> loss -> backward -> Adam.
The views are made once beforehand, so only the network and the optimiser are timed (the
augmentations have their own benchmark, augment_speed.py). Both sides build the same model:
the 4-stage encoder (32-64-128-256 channels, strides 1-2-2-2, conv-BN-ReLU, global average
pooling) and the 512-512-512 projector.

    python benchmarks/train_step_speed.py [--batch-sizes 128 256] [--repeats 5] [--profile]

Prints the median seconds per step of each, and the ratio tinybt / torch.
"""

import argparse
import cProfile
import pstats
import statistics
import time

import numpy as np

from tinybt.loss import barlow_twins_loss
from tinybt.model import BarlowTwins
from tinybt.optim import Adam
from tinybt.tensor import Tensor

WIDTHS, STRIDES, PROJECTOR = (32, 64, 128, 256), (1, 2, 2, 2), (512, 512, 512)


def tinybt_step(batch_size):
    """A function that runs one tinybt training step on fixed random views."""
    rng = np.random.default_rng(0)
    model = BarlowTwins(WIDTHS, STRIDES, projector=PROJECTOR, rng=rng)
    optimizer = Adam(model.parameters(), lr=1e-3, weight_decay=1e-6)
    views = [rng.standard_normal((batch_size, 3, 32, 32)).astype(np.float32) for _ in range(2)]

    def step():
        loss = barlow_twins_loss(model(Tensor(views[0])), model(Tensor(views[1])))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


def torch_step(batch_size):
    """The same step in PyTorch (the official loss), or None where torch is not installed."""
    try:
        import torch
    except ImportError:
        return None
    from torch import nn

    layers, channels = [], 3
    for width, stride in zip(WIDTHS, STRIDES, strict=True):
        layers += [
            nn.Conv2d(channels, width, 3, stride, 1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
        ]
        channels = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    sizes = (channels, *PROJECTOR)
    for a, b in zip(sizes[:-2], sizes[1:-1], strict=True):
        layers += [nn.Linear(a, b, bias=False), nn.BatchNorm1d(b), nn.ReLU()]
    layers.append(nn.Linear(sizes[-2], sizes[-1], bias=False))
    model = nn.Sequential(*layers)
    normalise = nn.BatchNorm1d(PROJECTOR[-1], affine=False)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-6)
    views = [torch.randn(batch_size, 3, 32, 32) for _ in range(2)]

    def step():
        z_a, z_b = normalise(model(views[0])), normalise(model(views[1]))
        c = z_a.T @ z_b / batch_size
        on_diag = (torch.diagonal(c) - 1).pow(2).sum()
        off_diag = c.pow(2).sum() - torch.diagonal(c).pow(2).sum()
        loss = on_diag + 0.0051 * off_diag
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


def median_seconds(step, repeats):
    step()  # warm-up: first-touch allocations, thread pools
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="where tinybt's time goes")
    args = parser.parse_args()
    for batch_size in args.batch_sizes:
        ours = median_seconds(tinybt_step(batch_size), args.repeats)
        reference = torch_step(batch_size)
        line = f"batch {batch_size}: tinybt {1000 * ours:.0f} ms/step"
        if reference is not None:
            theirs = median_seconds(reference, args.repeats)
            line += f", torch {1000 * theirs:.0f} ms/step, ratio tinybt/torch {ours / theirs:.2f}"
        print(line, flush=True)
    if args.profile:
        step = tinybt_step(args.batch_sizes[-1])
        step()
        profiler = cProfile.Profile()
        profiler.runcall(step)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
