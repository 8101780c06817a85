"""The loss and a training step agree on two backends, from the same weights and the same batch.

    python benchmarks/backend_agreement.py --backends numpy cupy [--batch-size 64]

The cifar10 preset's network (the 4-stage encoder and the 512-512-512 projector) is built from
one host seed on each backend, and two training steps (forward both views, the loss, backward,
Adam) run on the same two views, drawn on the host and moved with `to_device`. Compared, on the
host, against the first backend:

- the loss of each step, relative difference at most 1e-4 (float32 sums of ~10^5 terms in a
  different order, as cuBLAS and OpenBLAS add them, differ by about 1e-6 relative);
- every parameter's gradient from the first step, largest difference at most 1e-3 of that
  gradient's largest entry (batch norm divides by small standard deviations, which magnifies
  rounding; a wrong kernel is off by far more).

The second step's loss checks the update too: Adam's first step moves every weight by about
lr, whatever the gradient's size, so one wrong entry changes the loss that follows. Exits 1 if
anything disagrees; numpy against strict agree exactly, as both run NumPy.
"""

import argparse
import sys
from functools import partial

import numpy as np

from tinybt import backend
from tinybt.build import Objective
from tinybt.methods import barlow_twins
from tinybt.model import TwoViewNetwork
from tinybt.optim import Adam
from tinybt.step import train_step

WIDTHS, STRIDES, PROJECTOR = (32, 64, 128, 256), (1, 2, 2, 2), (512, 512, 512)
LOSS_RTOL, GRAD_TOL = 1e-4, 1e-3


def two_steps(name, batch_size):
    """On backend `name`: the two losses and the first step's gradients {name: host array}."""
    backend.set_backend(name)
    rng = np.random.default_rng(0)
    model = TwoViewNetwork(WIDTHS, STRIDES, projector=PROJECTOR, rng=rng)
    optimizer = Adam(model.parameters(), lr=1e-3, weight_decay=1e-6)
    objective = Objective(partial(barlow_twins.objective, lambd=barlow_twins.LAMBDA))
    shape = (batch_size, 3, 32, 32)
    views = [backend.to_device(rng.standard_normal(shape, np.float32)) for _ in "ab"]

    def given_views(images, rng, rows):
        return views

    first, _ = train_step(model, optimizer, objective, given_views, None, None, lr=1e-3)
    grads = {key: backend.to_host(p.grad) for key, p in model.named_parameters().items()}
    second, _ = train_step(model, optimizer, objective, given_views, None, None, lr=1e-3)
    return [first, second], grads


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", nargs=2, default=["numpy", "strict"], metavar="NAME")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    (reference, other), runs = args.backends, [two_steps(b, args.batch_size) for b in args.backends]
    (losses_a, grads_a), (losses_b, grads_b) = runs
    ok = True
    for step, (a, b) in enumerate(zip(losses_a, losses_b, strict=True), 1):
        difference = abs(a - b) / abs(a)
        ok &= difference <= LOSS_RTOL
        print(f"step {step} loss: {reference} {a:.6f}, {other} {b:.6f}, relative {difference:.1e}")
    errors = {
        key: np.abs(grads_a[key] - grads_b[key]).max() / np.abs(grads_a[key]).max()
        for key in grads_a
    }
    worst_name = max(errors, key=errors.get)
    worst = errors[worst_name]
    ok &= worst <= GRAD_TOL
    print(f"gradients: largest difference {worst:.1e} of the largest entry ({worst_name})")
    print(f"{'agree' if ok else 'DISAGREE'} (loss rtol {LOSS_RTOL:g}, gradients {GRAD_TOL:g})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
