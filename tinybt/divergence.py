"""Why a run diverged: the first quantity of a step that became NaN or inf, and the one-line
error that names the options feeding it, so that a user knows what to change.

A step computes, in order, the loss (from weights that were finite after the previous step),
its gradients, the optimiser's state and the weights the update writes; the first of these
that overflowed is the one to report: the step (tinybt/step.py) ends with `check_finite`, and
the run (tinybt/run.py) turns its `Overflow` into the one-line error of `diverged`.
"""

import math

from tinybt import backend
from tinybt.config import options_of
from tinybt.errors import TinyBTError


class Overflow(TinyBTError):
    """A quantity of a step became NaN or inf: `what` names it, and `kind` says which of the
    step's quantities it is ("loss", "gradient", "optimiser state" or "weights")."""

    def __init__(self, what, kind):
        super().__init__(what)
        self.what, self.kind = what, kind


def check_finite(loss, model, optimizer):
    """Raise Overflow for the first quantity of the step that is not finite (`first_overflow`)."""
    overflow = first_overflow(loss, model, optimizer)
    if overflow is not None:
        raise Overflow(*overflow)


def first_overflow(loss, model, optimizer):
    """(what, kind) of the first quantity of the step that is not finite, or None: the loss
    (float), then the gradients, the optimiser's state and the weights of `model`."""
    if not math.isfinite(loss):
        return f"the loss became {loss}", "loss"
    parameters = model.named_parameters()
    quantities = {
        "gradient": {name: p.grad for name, p in parameters.items()},
        "optimiser state": {  # the optimiser holds the parameters in the model's order
            f"{kind} for {name}": array
            for kind, arrays in optimizer.state.items()
            for name, array in zip(parameters, arrays, strict=True)
        },
        "weights": {name: p.data for name, p in parameters.items()},
    }
    # A gradient that overflowed reaches the optimiser's state or the weights, so those
    # two are checked every step, and the gradients only to name what overflowed first.
    checked = [*quantities["optimiser state"].values(), *quantities["weights"].values()]
    arrays = [a for a in checked if a is not None]
    xp = backend.get_array_module(arrays[0])
    if bool(xp.stack([xp.isfinite(a).all() for a in arrays]).all()):  # one sync per step
        return None
    for kind, group in quantities.items():
        for name, array in group.items():
            if array is not None and not bool(xp.isfinite(array).all()):
                return f"the {kind} of {name} became NaN or inf", kind
    return None


def diverged(config, step, what, kind, steps_per_epoch, checkpoint_path):
    """The one-line error for a run of `config` whose `what` overflowed in step `step`, naming
    the options that feed it. `kind`: the loss and its gradient come from the loss's options
    and, after the first update, from the weights the updates grew; the optimiser's state from
    the gradients and the optimiser; the weights from the update."""
    epoch = min(step // steps_per_epoch, config.epochs - 1) + 1
    last = (
        f"the last good checkpoint is {checkpoint_path}"
        if checkpoint_path.exists()
        else "no checkpoint was written yet"
    )
    given = [f"--{name.replace('_', '-')} {v}" for name, v in options_of(config).items()]
    loss = f"the loss's options ({config.method}: {', '.join(given) or 'none'})"
    update = f"--lr {config.lr:g}, --weight-decay {config.weight_decay:g}"
    optimizer = f"--optimizer {config.optimizer}"
    if kind in ("loss", "gradient") and step == 0:
        why = f"this is before any update, so it comes from {loss}"
    elif kind in ("loss", "gradient"):
        why = f"it comes from {loss}, or from weights grown by {update} and {optimizer}"
    elif kind == "optimiser state" and step == 0:
        why = (
            f"it holds the first gradients, from {loss}, with --weight-decay "
            f"{config.weight_decay:g} for {optimizer}"
        )
    elif kind == "optimiser state":
        why = f"it comes from the gradients, from {loss}, and from {update} and {optimizer}"
    else:
        why = f"the options that drive the updates are {update} and {optimizer}"
    return TinyBTError(
        f"{what} at step {step} (epoch {epoch} of {config.epochs}): training diverged; "
        f"{why}; change them and start again ({last})"
    )
