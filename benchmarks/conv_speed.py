"""Conv2d forward + backward on the CPU: tinybt (NumPy) against PyTorch, on the same data.

The yardstick: a batch of 256 float32 feature maps of 64 channels, 16x16, through 128
3x3 filters, stride 1, padding 1, no bias (as in the encoder, where batch norm follows), then
the backward to the input and the weights from a random upstream gradient. Each library gets
the batch in its own layout: (C, H, W, N) for tinybt, whose encoder keeps the batch innermost,
(N, C, H, W) for PyTorch; the results are compared in PyTorch's. Each library is timed in a block of
its own, warm-up first, as a training loop runs it; alternating single runs would flatter
tinybt, since PyTorch's thread pool falls asleep while NumPy works. Both blocks run twice,
in turn, so that a change in the machine's load hits both alike; the median of all timed runs
of each is reported. PyTorch uses its default number of threads; NumPy's BLAS its own.

    python benchmarks/conv_speed.py [--repeats 7]
"""

import argparse
import statistics
import time

import numpy as np
import torch

from tinybt import backend, ops
from tinybt.tensor import Tensor

N, C, H, W = 256, 64, 16, 16
FILTERS, KERNEL, STRIDE, PADDING = 128, 3, 1, 1


def time_block(step, warmup, repeats):
    """Milliseconds of each of `repeats` runs of step(), after `warmup` untimed ones."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(1000 * (time.perf_counter() - start))
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per block")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs before each block")
    args = parser.parse_args()

    backend.set_backend("numpy")  # a CPU against CPU comparison
    rng = backend.rng(0)
    x = rng.standard_normal((N, C, H, W), dtype=np.float32)
    weight = rng.standard_normal((FILTERS, C, KERNEL, KERNEL), dtype=np.float32) * 0.05
    grad = rng.standard_normal((N, FILTERS, H, W), dtype=np.float32)
    x_batch_last = np.ascontiguousarray(x.transpose(1, 2, 3, 0))  # (C, H, W, N)
    grad_batch_last = np.ascontiguousarray(grad.transpose(1, 2, 3, 0))

    def tinybt_step():
        x_t = Tensor(x_batch_last, requires_grad=True)
        weight_t = Tensor(weight, requires_grad=True)
        ops.Conv2d.apply(x_t, weight_t, stride=STRIDE, padding=PADDING).backward(grad_batch_last)
        return x_t.grad.transpose(3, 0, 1, 2), weight_t.grad

    def torch_step():
        x_t = torch.from_numpy(x).requires_grad_()
        weight_t = torch.from_numpy(weight).requires_grad_()
        torch.nn.functional.conv2d(x_t, weight_t, stride=STRIDE, padding=PADDING).backward(
            torch.from_numpy(grad)
        )
        return x_t.grad.numpy(), weight_t.grad.numpy()

    # Same numbers first. The weight gradient sums 65536 products per entry, so float32
    # rounding is measured against the largest entry rather than entry by entry.
    for ours, theirs in zip(tinybt_step(), torch_step(), strict=True):
        error = np.abs(ours - theirs).max() / np.abs(theirs).max()
        if error > 1e-5:
            raise SystemExit(f"tinybt and torch disagree: relative error {error:.1e}")
    times = {"tinybt": [], "torch": []}
    for _ in range(2):
        for name, step in (("torch", torch_step), ("tinybt", tinybt_step)):
            times[name] += time_block(step, args.warmup, args.repeats)

    ours, theirs = statistics.median(times["tinybt"]), statistics.median(times["torch"])
    print(
        f"conv2d forward+backward, N={N}, C={C}, {H}x{W} float32, {FILTERS} {KERNEL}x{KERNEL} "
        f"filters, stride {STRIDE}, padding {PADDING}"
    )
    print(f"tinybt (numpy {np.__version__}): {ours:7.1f} ms   (median of {2 * args.repeats})")
    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads): {theirs:7.1f} ms")
    print(f"ratio tinybt/torch: {ours / theirs:.2f}")


if __name__ == "__main__":
    main()
