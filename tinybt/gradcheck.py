"""Check an analytic gradient against central differences, entry by entry, in float64.

For a function f of tensors, backward() gives dL/dx for L = sum(f(x) * R), where R is a random
upstream gradient (a constant R would hide transposition bugs). The numerical estimate of each
entry is the five-point central difference, with h = 1e-3,

    dL/dx_j ~ (-L(x + 2h e_j) + 8 L(x + h e_j) - 8 L(x - h e_j) + L(x - 2h e_j)) / (12 h),

whose error is O(h^4): about 1e-13 in float64, a thousand times less than the two-point
(L(x + h e_j) - L(x - h e_j)) / 2h, whose rounding noise would drown the smallest entries.
The two gradients agree when the relative error

    |a - b| / max(|a| + |b|, tiny)           (the CS231n definition)

is small: about 1e-10 for a correct op, around 1e-2 or worse for a wrong one. `tiny` is 1e-4
times the largest |a| + |b| of the tensor, so an entry that is nearly zero is judged by how
far it is off relative to the gradient as a whole, not relative to itself.
"""

import inspect
from dataclasses import dataclass

import numpy as np

from tinybt import backend
from tinybt.tensor import Function, Tensor, no_grad


@dataclass
class GradcheckResult:
    """How well one input's analytic gradient matches the numerical one."""

    name: str
    shape: tuple
    max_rel_error: float
    worst_index: tuple  # the entry where the two disagree most
    analytic: float  # both gradients at that entry
    numerical: float

    def __str__(self):
        return (
            f"dL/d{self.name} {self.shape}: max relative error {self.max_rel_error:.1e} "
            f"at index {self.worst_index} (analytic {self.analytic:.6g}, "
            f"numerical {self.numerical:.6g})"
        )


def relative_error(a, b, tiny=1e-12):
    """|a - b| / max(|a| + |b|, tiny), elementwise on host arrays."""
    return np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), tiny)


def _tiny(a, b):
    """The floor of the denominator: 1e-4 of the gradient's scale (see the module docstring)."""
    return max(1e-4 * float((np.abs(a) + np.abs(b)).max(initial=0.0)), 1e-12)


def gradcheck(fn, inputs, params=None, h=1e-3, seed=1234, names=None):
    """Compare the gradients of fn(*inputs) with central differences.

    fn: takes Tensors, returns a Tensor of any shape.
    inputs: arrays or Tensors (converted to float64 Tensors that require grad), passed to fn.
    params: optional {name: Tensor} of further float64 leaves fn uses, such as a module's
        `named_parameters()`; their gradients are checked too.
    seed: for the upstream gradient R (keep it apart from the seeds that draw the inputs).
    names: what to call each input in the results; by default fn's parameter names
        (`lambda x, y: x * y` gives x and y, so a result reads dL/dy), see `input_names`.
    Returns one GradcheckResult per input and parameter.
    """
    inputs = [_as_float64_leaf(x) for x in inputs]
    names = input_names(fn, len(inputs)) if names is None else list(names)
    if len(names) != len(inputs):
        raise ValueError(f"gradcheck got {len(names)} names for {len(inputs)} inputs")
    checked = dict(zip(names, inputs, strict=True))
    checked.update(params or {})
    for name, tensor in checked.items():
        if tensor.dtype != np.float64:
            raise TypeError(f"gradcheck needs float64 tensors; {name} is {tensor.dtype}")
        tensor.grad = None

    out = fn(*inputs)
    upstream = backend.to_device(np.random.default_rng(seed).standard_normal(out.shape))
    out.backward(upstream)
    return [
        _compare(name, tensor, _numerical_gradient(fn, inputs, tensor, upstream, h))
        for name, tensor in checked.items()
    ]


def assert_gradcheck(fn, inputs, params=None, tol=1e-6, what="op", names=None):
    """Run `gradcheck` and fail with a message naming the wrong gradient and by how much."""
    results = gradcheck(fn, inputs, params, names=names)
    wrong = [r for r in results if not r.max_rel_error < tol]
    if wrong:
        details = "; ".join(str(r) for r in wrong)
        raise AssertionError(f"{what}: gradient wrong (tolerance {tol:.0e}): {details}")
    return results


def input_names(fn, count):
    """The names of fn's first `count` positional parameters, such as ["x", "y"] for
    `lambda x, y: x * y`, ["x"] for a module (its forward(x)), or those of the op's forward for
    an op's `apply` (`ops.BatchNorm.apply` gives x, gamma, beta); input0, input1, ... where
    fn does not name them (`lambda *tensors: ...`, a builtin)."""
    op = getattr(fn, "__self__", None)
    if inspect.ismethod(fn) and isinstance(op, type) and issubclass(op, Function):
        fn = op().forward  # apply(*inputs) passes the inputs on to forward, named there
    elif callable(getattr(fn, "forward", None)):
        fn = fn.forward  # a module: calling it calls forward
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # no signature to read
        parameters = []
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    named = [parameter.name for parameter in parameters if parameter.kind in positional]
    return named[:count] if len(named) >= count else [f"input{i}" for i in range(count)]


def _as_float64_leaf(x):
    data = x.data if isinstance(x, Tensor) else x
    data = backend.xp().array(backend.to_device(data, dtype="float64"))  # own contiguous copy:
    return Tensor(data, requires_grad=True)  # perturbing it through a flat view must stick


def _numerical_gradient(fn, inputs, tensor, upstream, h):
    """Five-point central differences of L = sum(fn(*inputs) * upstream), every entry of `tensor`.

    The outputs are combined before they are weighted and summed, so entries that a
    perturbation leaves unchanged contribute exactly zero rather than rounding noise.
    """
    flat = tensor.data.reshape(-1)  # a view: writing to it perturbs the tensor in place
    gradient = np.zeros(flat.shape[0])
    with no_grad():
        for j in range(flat.shape[0]):
            original = flat[j].item()
            outputs = []
            for step in (2 * h, h, -h, -2 * h):
                flat[j] = original + step
                outputs.append(fn(*inputs).data.copy())  # a copy: the output may view x
            flat[j] = original
            far_plus, plus, minus, far_minus = outputs
            difference = (8 * (plus - minus) - (far_plus - far_minus)) / (12 * h)
            gradient[j] = float((difference * upstream).sum())
    return gradient.reshape(tensor.shape)


def _compare(name, tensor, numerical):
    if tensor.grad is None:
        raise AssertionError(f"dL/d{name}: backward() gave no gradient (is it used by fn?)")
    analytic = backend.to_host(tensor.grad).astype(np.float64)
    errors = relative_error(analytic, numerical, _tiny(analytic, numerical))
    worst = np.unravel_index(np.argmax(errors), errors.shape) if errors.size else ()
    return GradcheckResult(
        name=name,
        shape=tuple(tensor.shape),
        max_rel_error=float(errors.max()) if errors.size else 0.0,
        worst_index=tuple(int(i) for i in worst),
        analytic=float(analytic[worst]) if errors.size else 0.0,
        numerical=float(numerical[worst]) if errors.size else 0.0,
    )
