"""Time one full Barlow Twins training step, tinybt against PyTorch on the same CPU or GPU.

A step is: two views (N, 3, 32, 32) -> encoder + projector, twice -> loss -> backward -> Adam.
The views are made once beforehand, so only the network and the optimiser are timed (the
augmentations have their own benchmark, augment_speed.py). Both sides build the same model:
the 4-stage encoder (32-64-128-256 channels, strides 1-2-2-2, conv-BN-ReLU, global average
pooling) and the 512-512-512 projector.

Each library is timed in blocks of `--repeats` steps after a warm-up step, as a training loop
runs it, and the blocks alternate for `--rounds` rounds, so that a change in the machine's
load hits both alike; the median over all steps of each is reported. The process first asks
malloc to reuse freed memory, as training does (tinybt.backend.reuse_freed_memory); that
holds for PyTorch too, which it also speeds up at large batches.

    python benchmarks/train_step_speed.py [--batch-sizes 128 256] [--repeats 5] [--profile]
    python benchmarks/train_step_speed.py --backend cupy --batch-sizes 256 1024 --op-times
    python benchmarks/train_step_speed.py --processes [--rounds 3]

Prints the median milliseconds per step of each, and the ratio tinybt / torch. With
`--backend cupy` the reference is PyTorch on the GPU (float32, `cudnn.benchmark` on), and both
sides wait for the GPU after each step (`backend.synchronize()`, `torch.cuda.synchronize()`),
since both only queue kernels. `--op-times` times each op's forward and backward, im2col and
col2im and the optimiser apart, waiting for the device around each: on a GPU, where the time
goes. On the CPU, --profile adds where tinybt's time goes: a block that runs only the step's
matrix products (every GEMM of the convolutions, the linear layers and the loss, at the step's
shapes) alternates with the others, so that the GEMMs' share of the step is measured under the
same load; then cProfile's listing of one step at the last batch size. On a machine others
share, set OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 to compare one core against one core:
two-thread GEMMs stall whenever another process takes a core, one thread does not.

`--processes` compares the two ways of using two cores (it needs the `mpi` extra): the step of
one process with two BLAS threads on the whole batch, the step of two processes with one
thread each on half the batch (`mpiexec -n 2`, the statistics, C and the gradients summed
across them as in training: tinybt/distributed.py), and PyTorch's step at two threads. Each
round starts each configuration afresh, in turn, so that the machine's load hits all alike.
It reports the ratios the two-process step is judged by, and the share of that step spent in
the sums across processes (the messages, and waiting for the other process to reach them).
"""

import argparse
import cProfile
import json
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from functools import partial
from pathlib import Path

import numpy as np

from tinybt import backend, distributed, tensor
from tinybt.build import Objective
from tinybt.methods import barlow_twins
from tinybt.model import TwoViewNetwork
from tinybt.ops import conv
from tinybt.optim import Adam, Optimizer
from tinybt.step import train_step

WIDTHS, STRIDES, PROJECTOR = (32, 64, 128, 256), (1, 2, 2, 2), (512, 512, 512)


def tinybt_step(batch_size):
    """A function that runs one tinybt training step (tinybt.step.train_step, as training
    runs it, its finiteness check included) on fixed random views, which its augment returns.
    Under mpiexec, each process's step takes its share of the batch, and sums across the
    processes what training sums."""
    rng = np.random.default_rng(0)
    model = TwoViewNetwork(WIDTHS, STRIDES, projector=PROJECTOR, rng=rng)
    optimizer = Adam(model.parameters(), lr=1e-3, weight_decay=1e-6)
    objective = Objective(partial(barlow_twins.objective, lambd=barlow_twins.LAMBDA))
    shape = (batch_size // distributed.size(), 3, 32, 32)
    views = [backend.to_device(rng.standard_normal(shape, np.float32)) for _ in range(2)]

    def given_views(images, rng, rows):
        return views

    def step():
        train_step(model, optimizer, objective, given_views, None, None, lr=1e-3)
        backend.synchronize()

    return step


def time_communication():
    """Make tinybt.distributed's all-reduce and all-gather add the seconds they take to the
    returned dict's "seconds": everything sent across processes passes through one of the
    two."""
    spent = {"seconds": 0.0}

    def timed(function):
        def run(array):
            start = time.perf_counter()
            try:
                return function(array)
            finally:
                spent["seconds"] += time.perf_counter() - start

        return run

    for name in ("_all_reduce", "gather_batch"):
        setattr(distributed, name, timed(getattr(distributed, name)))
    return spent


def torch_step(batch_size, on_gpu):
    """The same step in PyTorch (the official loss), or None where torch is not installed."""
    try:
        import torch
    except ImportError:
        return None
    from torch import nn

    device = "cuda" if on_gpu else "cpu"
    torch.backends.cudnn.benchmark = True  # let cuDNN pick its fastest convolutions

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
    model = nn.Sequential(*layers).to(device)
    normalise = nn.BatchNorm1d(PROJECTOR[-1], affine=False).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-6)
    views = [torch.randn(batch_size, 3, 32, 32, device=device) for _ in range(2)]

    def step():
        z_a, z_b = normalise(model(views[0])), normalise(model(views[1]))
        c = z_a.T @ z_b / batch_size
        on_diag = (torch.diagonal(c) - 1).pow(2).sum()
        off_diag = c.pow(2).sum() - torch.diagonal(c).pow(2).sum()
        loss = on_diag + 0.0051 * off_diag
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if on_gpu:
            torch.cuda.synchronize()

    return step


def gemm_products(batch_size):
    """A function that runs the matrix products of one training step, and nothing else:
    for each view, each convolution's three GEMMs (forward, dL/dW, dL/dcols; the first layer
    needs no dL/dcols) and each linear layer's three, then the loss's C and its two
    gradients. The operands are random float32 arrays of the shapes the step uses, stored
    (and transposed) the same way."""
    rng = np.random.default_rng(0)

    def operands(*shape):
        return rng.standard_normal(shape, dtype=np.float32)

    products = []  # (a, b) pairs; each is computed as a @ b
    channels, size = 3, 32
    for layer, (width, stride) in enumerate(zip(WIDTHS, STRIDES, strict=True)):
        size = (size - 1) // stride + 1  # 3x3 kernel, padding 1
        K, M = 9 * channels, size * size * batch_size
        weight, cols, grad = operands(width, K), operands(K, M), operands(width, M)
        products += [(weight, cols), (grad, cols.T)] + ([(weight.T, grad)] if layer else [])
        channels = width
    for a, b in zip((channels, *PROJECTOR[:-1]), PROJECTOR, strict=True):
        x, weight, grad = operands(batch_size, a), operands(a, b), operands(batch_size, b)
        products += [(x, weight), (grad, weight.T), (x.T, grad)]
    products *= 2  # two views
    D = PROJECTOR[-1]
    z_a, z_b, dc = operands(batch_size, D), operands(batch_size, D), operands(D, D)
    products += [(z_a.T, z_b), (z_b, dc.T), (z_a, dc)]

    def run():
        for a, b in products:
            a @ b

    return run


def time_block(step, repeats):
    """Seconds of each of `repeats` runs of step(), after one untimed warm-up run."""
    step()  # first-touch allocations, thread pools waking up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return times


def op_times(batch_size, steps=3):
    """Milliseconds per step in each op's forward and backward, in im2col and col2im (inside
    conv2d's) and in the optimiser, waiting for the device before and after each."""
    totals = defaultdict(float)

    def timed(label, function):
        def run(*args, **kwargs):
            backend.synchronize()
            start = time.perf_counter()
            result = function(*args, **kwargs)
            backend.synchronize()
            totals[label] += time.perf_counter() - start
            return result

        return run

    patched = [(conv, "im2col"), (conv, "col2im"), (Optimizer, "step")]
    pending = list(tensor.Function.__subclasses__())
    while pending:
        op = pending.pop()
        pending += op.__subclasses__()
        patched += [(op, "forward"), (op, "backward")]
    originals = [(owner, name, vars(owner)[name]) for owner, name in patched if name in vars(owner)]
    for owner, name, function in originals:
        setattr(owner, name, timed(f"{owner.__name__.split('.')[-1]}.{name}", function))
    step = tinybt_step(batch_size)
    step()
    totals.clear()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    whole = (time.perf_counter() - start) / steps
    for owner, name, function in originals:
        setattr(owner, name, function)
    print(f"batch {batch_size}, each op timed alone: {1000 * whole:.1f} ms/step")
    print("  (Conv2d's forward and backward include im2col and col2im)")
    for label, seconds in sorted(totals.items(), key=lambda item: -item[1])[:15]:
        print(
            f"  {label:28s} {1000 * seconds / steps:8.2f} ms  {100 * seconds / steps / whole:5.1f}%"
        )


def step_times(args):
    """{batch size: {"tinybt": seconds of each step, "communication": of those, the seconds
    spent in the sums across processes, "torch": seconds of each of PyTorch's steps (none
    under mpiexec)}} for one block of --repeats steps at each batch size. Under mpiexec the
    processes run in step (every sum waits for all), and process 0's times stand for all."""
    spent = time_communication()
    results = {}
    for batch_size in args.batch_sizes:
        ours = tinybt_step(batch_size)
        ours()  # warm-up, before the communication is counted
        spent["seconds"] = 0.0
        times = time_block(ours, args.repeats)
        # time_block's own warm-up step is in spent too: one more step than `times`
        communication = [spent["seconds"] / (args.repeats + 1)] * args.repeats
        reference = None if distributed.is_active() else torch_step(batch_size, on_gpu=False)
        results[batch_size] = {
            "tinybt": times,
            "communication": communication,
            "torch": [] if reference is None else time_block(reference, args.repeats),
        }
    return results


def processes_against_threads(args):
    """--processes: rounds of (one process x two threads, two processes x one thread), each a
    fresh run of this script with --step-times; prints the medians and the ratios."""
    mpiexec = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which(
        "mpiexec"
    )
    if mpiexec is None:
        sys.exit('error: --processes needs mpiexec: pip install -e ".[mpi]"')
    worker = [sys.executable, __file__, "--step-times", "--repeats", str(args.repeats)]
    worker += ["--batch-sizes", *map(str, args.batch_sizes)]
    configurations = {"1 process x 2 threads": (worker, 2), "2 processes x 1 thread": (
        [mpiexec, "-n", "2", *worker], 1)}  # fmt: skip
    names = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
    # configuration -> batch size -> what step_times measures -> seconds, over the rounds
    gathered = {label: defaultdict(lambda: defaultdict(list)) for label in configurations}
    for _ in range(args.rounds):
        for label, (command, threads) in configurations.items():
            env = {**os.environ, **dict.fromkeys(names, str(threads))}
            output = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
            for batch_size, result in json.loads(output.stdout.splitlines()[-1]).items():
                for name, seconds in result.items():
                    gathered[label][batch_size][name] += seconds
    threads, processes = gathered.values()
    for batch_size in map(str, args.batch_sizes):
        one = 1000 * statistics.median(threads[batch_size]["tinybt"])
        two = 1000 * statistics.median(processes[batch_size]["tinybt"])
        talk = 1000 * statistics.median(processes[batch_size]["communication"])
        line = (
            f"batch {batch_size}: 1 process x 2 threads {one:.0f} ms/step, 2 processes x 1 "
            f"thread {two:.0f} ms/step (ratio {two / one:.2f}; sums across processes "
            f"{talk:.1f} ms, {100 * talk / two:.0f}% of the step)"
        )
        if threads[batch_size]["torch"]:
            torch_ms = 1000 * statistics.median(threads[batch_size]["torch"])
            line += f", torch at 2 threads {torch_ms:.0f} ms/step (ratio {two / torch_ms:.2f})"
        print(line, flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per block")
    parser.add_argument("--rounds", type=int, default=2, help="blocks of each library, in turn")
    parser.add_argument("--profile", action="store_true", help="where tinybt's time goes")
    parser.add_argument("--op-times", action="store_true", help="time per op, device-synced")
    parser.add_argument("--backend", choices=backend.BACKENDS, default="numpy")
    parser.add_argument(
        "--processes", action="store_true", help="2 processes x 1 thread vs 1 x 2 threads"
    )
    parser.add_argument(
        "--step-times", action="store_true", help="(for --processes) one round's times, as JSON"
    )
    args = parser.parse_args()
    if args.processes:
        return processes_against_threads(args)
    if args.step_times:
        backend.reuse_freed_memory()
        times = step_times(args)
        if distributed.rank() == 0:
            print(json.dumps(times))
        return None
    backend.set_backend(args.backend)
    on_gpu = args.backend == "cupy"
    print(f"tinybt on {args.backend}, torch on {'cuda' if on_gpu else 'cpu'}")
    reused = backend.reuse_freed_memory()
    print(f"malloc reuses freed memory: {'yes' if reused else 'no (not glibc)'}")
    for batch_size in args.batch_sizes:
        ours, reference = tinybt_step(batch_size), torch_step(batch_size, on_gpu)
        gemms = gemm_products(batch_size) if args.profile and not on_gpu else None
        our_times, their_times, gemm_times = [], [], []
        for _ in range(args.rounds):
            our_times += time_block(ours, args.repeats)
            if reference is not None:
                their_times += time_block(reference, args.repeats)
            if gemms is not None:
                gemm_times += time_block(gemms, args.repeats)
        ours_ms = 1000 * statistics.median(our_times)
        line = f"batch {batch_size}: tinybt {ours_ms:.0f} ms/step"
        if reference is not None:
            ratio = statistics.median(our_times) / statistics.median(their_times)
            line += (
                f", torch {1000 * statistics.median(their_times):.0f} ms/step, "
                f"ratio tinybt/torch {ratio:.2f}"
            )
        if gemms is not None:
            gemm_ms = 1000 * statistics.median(gemm_times)
            line += f"; its GEMMs {gemm_ms:.0f} ms, {100 * gemm_ms / ours_ms:.0f}% of the step"
        print(line, flush=True)
    if args.profile:
        step = tinybt_step(args.batch_sizes[-1])
        step()
        profiler = cProfile.Profile()
        profiler.runcall(step)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
    if args.op_times:
        for batch_size in args.batch_sizes:
            op_times(batch_size)


if __name__ == "__main__":
    main()
