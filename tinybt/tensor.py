"""The autograd engine: a Tensor remembers the op that made it, and `backward()` runs the chain
rule through those ops in reverse.

Every differentiable op is a `Function` (see `tinybt/ops/`) with two methods on raw arrays:
`forward(*arrays)` computes the output and saves what the derivative will need; `backward(grad)`
receives dL/d(output) and returns dL/d(input) for each input. A Tensor made by an op keeps that
op in `_fn`, and the op keeps its input Tensors in `inputs`: together they form the computation
graph, a DAG from the leaves (data, parameters) to the loss. Notebook 01 draws it.
"""

from contextlib import contextmanager

from tinybt import backend

DEFAULT_DTYPE = "float32"

_grad_enabled = True


def is_grad_enabled():
    """False inside `no_grad()`: ops then record no graph and no backward will follow."""
    return _grad_enabled


@contextmanager
def no_grad():
    """Inside this block ops record no graph: for evaluation, where no backward will follow."""
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, False
    try:
        yield
    finally:
        _grad_enabled = previous


class Function:
    """One differentiable op. Subclasses write `forward` and `backward` on raw arrays."""

    def forward(self, *arrays, **options):
        raise NotImplementedError

    def backward(self, grad):
        """dL/d(output) `grad` -> a tuple with dL/d(input) for each input, same shapes.

        `self.needs_grad[i]` says whether input i wants its gradient; an op may return None
        for one that does not, to skip the work (as conv2d does for the input images).
        """
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs, **options):
        """Run a new instance of the op on Tensors (or numbers): `Mul.apply(x, y)`."""
        return cls()(*inputs, **options)

    def __call__(self, *inputs, **options):
        """Run this op on Tensors (or numbers) and, if any input needs a gradient, record it.

        An instance runs once. Calling it yourself, `op = BatchStandardize(); y = op(x)`,
        keeps the op in hand, so you can read what its forward saved (batch norm's layer
        reads the batch statistics, training reads the loss's cross-correlation matrix).
        """
        inputs = [as_tensor(x, like=inputs) for x in inputs]
        out = Tensor(self.forward(*(t.data for t in inputs), **options))
        if _grad_enabled and any(t.requires_grad for t in inputs):
            out.requires_grad = True
            out._fn = self
            self.inputs = inputs
            self.needs_grad = tuple(t.requires_grad for t in inputs)  # lets backward skip work
        return out


class Tensor:
    """An array (NumPy or CuPy) with an optional gradient and a record of the op that made it.

    data: the array; grad: dL/d(data), same shape, filled by `backward()` on leaves that have
    `requires_grad=True`. Floating arrays keep their dtype; Python numbers, lists and integer
    arrays become float32.
    """

    def __init__(self, data, requires_grad=False):
        xp = backend.xp()
        is_float_array = hasattr(data, "dtype") and data.dtype.kind == "f"
        data = backend.to_device(data)
        if not is_float_array:  # numbers, lists, integer arrays
            data = data.astype(DEFAULT_DTYPE)
        self.data = data
        self.grad = None
        self.requires_grad = requires_grad
        self._fn = None  # the Function that produced this tensor; None for a leaf
        self._xp = xp

    # ----- what it holds -----
    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self):
        return self.data.ndim

    def __len__(self):
        return len(self.data)

    def numpy(self):
        """The values as a NumPy array on the host."""
        return backend.to_host(self.data)

    def item(self):
        """The value of a one-element tensor as a Python float."""
        if self.data.size != 1:
            raise ValueError(f"item() needs a one-element tensor, got shape {self.shape}")
        return float(self.numpy().reshape(-1)[0])

    def detach(self):
        """The same values, cut from the graph."""
        return Tensor(self.data)

    def __repr__(self):
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor(shape={self.shape}, dtype={self.dtype}{grad})"

    # ----- reverse mode -----
    def backward(self, grad=None):
        """Fill `.grad` of every leaf that requires it with dL/d(leaf), where L is this tensor.

        Walks the graph once in reverse topological order, so each op's backward runs after
        every op that used its output has passed its gradient down. Gradients from the
        several uses of one tensor add up (the multivariate chain rule). Leaves accumulate
        across calls: zero them between optimisation steps.
        """
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad")
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(f"backward() needs a grad for non-scalar output {self.shape}")
            grad = self._xp.ones_like(self.data)
        grads = {id(self): backend.to_device(grad, dtype=self.dtype)}
        for tensor in reversed(topological_order(self)):
            grad = grads.pop(id(tensor))
            if tensor._fn is None:
                tensor.grad = grad.copy() if tensor.grad is None else tensor.grad + grad
                continue
            fn = tensor._fn
            input_grads = fn.backward(grad)
            _check_grad_count(fn, input_grads)
            for parent, parent_grad in zip(fn.inputs, input_grads, strict=True):
                if not parent.requires_grad:
                    continue
                _check_grad_shape(fn, parent, parent_grad)
                key = id(parent)
                grads[key] = parent_grad if key not in grads else grads[key] + parent_grad

    # ----- operators: each a Function from tinybt.ops, or a one-line composition of them -----
    def __add__(self, other):
        return ops.Add.apply(self, other)

    def __mul__(self, other):
        return ops.Mul.apply(self, other)

    def __pow__(self, exponent):
        return ops.Pow.apply(self, exponent=exponent)

    def __matmul__(self, other):
        return ops.MatMul.apply(self, other)

    def __neg__(self):
        return self * -1.0

    def __sub__(self, other):
        return self + (-as_tensor(other, like=(self,)))

    def __truediv__(self, other):
        return self * as_tensor(other, like=(self,)) ** -1.0

    __radd__ = __add__
    __rmul__ = __mul__

    def __rsub__(self, other):
        return as_tensor(other, like=(self,)) - self

    def __rtruediv__(self, other):
        return as_tensor(other, like=(self,)) / self

    def __getitem__(self, index):
        return ops.GetItem.apply(self, index=index)

    def exp(self):
        return ops.Exp.apply(self)

    def log(self):
        return ops.Log.apply(self)

    def relu(self):
        return ops.ReLU.apply(self)

    def sum(self, axis=None, keepdims=False):
        return ops.Sum.apply(self, axis=axis, keepdims=keepdims)

    def mean(self, axis=None, keepdims=False):
        """sum / count, where count = (entries in) / (entries out) is how many were summed."""
        total = self.sum(axis, keepdims)
        return total * (total.data.size / self.data.size)

    def var(self, axis=None, keepdims=False):
        """Biased variance mean((x - mean(x))^2), as batch norm uses it."""
        return ((self - self.mean(axis, keepdims=True)) ** 2).mean(axis, keepdims)

    def reshape(self, *shape):
        shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        return ops.Reshape.apply(self, shape=tuple(shape))

    def transpose(self, *axes):
        axes = axes[0] if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes
        return ops.Transpose.apply(self, axes=tuple(axes) or None)

    @property
    def T(self):
        return self.transpose()


def as_tensor(x, like=()):
    """`x` as a Tensor. Floating arrays keep their dtype; numbers take the dtype of the first
    Tensor in `like` (so 2 * x keeps x's dtype)."""
    if isinstance(x, Tensor):
        return x
    if x is None:
        raise TypeError("an op got None where it needs a tensor or a number")
    if hasattr(x, "dtype") and x.dtype.kind == "f":
        return Tensor(x)
    dtype = next((t.dtype for t in like if isinstance(t, Tensor)), DEFAULT_DTYPE)
    return Tensor(backend.to_device(x, dtype=dtype))


def topological_order(root):
    """Every tensor that `root` depends on, each listed after all of its inputs."""
    order, seen, stack = [], set(), [(root, False)]
    while stack:  # iterative depth-first search: deep graphs must not hit Python's recursion limit
        tensor, inputs_done = stack.pop()
        if inputs_done:
            order.append(tensor)
            continue
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        stack.append((tensor, True))
        if tensor._fn is not None:
            stack.extend((t, False) for t in tensor._fn.inputs if t.requires_grad)
    return order


def _check_grad_count(fn, grads):
    """A backward returns a tuple with one gradient per input: a bare array is refused by name
    (zip would otherwise pair its rows with the inputs)."""
    count = len(fn.inputs)
    if not isinstance(grads, tuple) or len(grads) != count:
        got = f"a tuple of {len(grads)}" if isinstance(grads, tuple) else type(grads).__name__
        raise RuntimeError(
            f"{type(fn).__name__}.backward returned {got} for its {count} input(s): return a "
            f"tuple with one gradient per input, e.g. (dx,) for one input, (dx, dy) for two"
        )


def _check_grad_shape(fn, parent, grad):
    if getattr(grad, "shape", None) is None:
        raise RuntimeError(
            f"{type(fn).__name__}.backward returned {grad!r} as the gradient of an input "
            f"that needs one: return an array of the input's shape {parent.shape}"
        )
    if grad.shape != parent.shape:
        raise RuntimeError(
            f"{type(fn).__name__}.backward returned a gradient of shape {grad.shape} "
            f"for an input of shape {parent.shape}"
        )


from tinybt import ops  # noqa: E402  (ops build Tensors, so they are imported once Tensor exists)
