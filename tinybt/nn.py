"""Modules: layers that own their parameters, composed into networks.

A Module keeps Parameters (Tensors the optimiser trains) and Buffers (state that is saved but
not trained: batch norm's running statistics) as attributes, and calls ops in `forward`.
Attributes that are Modules, or lists or tuples of Modules, are its children: the walk through
them names every parameter by its path, e.g. "layers.0.weight", and those names are the keys
of `state_dict()` and of the `.npz` files that `save` writes.

Weights and biases start uniform in ±1/sqrt(fan_in), PyTorch's default, drawn on the host from
a NumPy Generator (`backend.rng(seed)`) so that a seed gives the same network on both
backends; fan_in is the number of inputs each output sums over.
"""

import math

import numpy as np

from tinybt import backend, ops
from tinybt.checkpoint import NonFiniteError, atomic_savez, first_non_finite, read_npz
from tinybt.errors import TinyBTError
from tinybt.ops.batchnorm import feature_axis
from tinybt.ops.conv import pair
from tinybt.tensor import Tensor, is_grad_enabled


class Parameter(Tensor):
    """A Tensor the optimiser trains: it always requires a gradient."""

    def __init__(self, data):
        super().__init__(data, requires_grad=True)


class Buffer(Tensor):
    """A Tensor that is part of a module's state but is not trained (running statistics)."""


class Module:
    """A layer or a network: parameters, buffers, child modules, and a `forward`."""

    training = True  # train() / eval() set it on the module and all its children

    def __call__(self, *inputs):
        return self.forward(*inputs)

    def forward(self, *inputs):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    # ----- what it holds -----
    def named_children(self):
        """{name: Module} for each attribute that is a Module, and "name.i" for the i-th
        Module of an attribute that is a list or tuple, in the order they were assigned."""
        children = {}
        for name, value in vars(self).items():
            if isinstance(value, Module):
                children[name] = value
            elif isinstance(value, (list, tuple)):
                children.update(
                    {f"{name}.{i}": m for i, m in enumerate(value) if isinstance(m, Module)}
                )
        return children

    def named_parameters(self):
        """{dotted name: Parameter}: this module's own first, then each child's, recursively."""
        return self._named(Parameter)

    def parameters(self):
        return list(self.named_parameters().values())

    def named_buffers(self):
        """{dotted name: Buffer}, in the same order as named_parameters."""
        return self._named(Buffer)

    def _named(self, kind, prefix=""):
        found = {prefix + name: v for name, v in vars(self).items() if isinstance(v, kind)}
        for name, child in self.named_children().items():
            found.update(child._named(kind, f"{prefix}{name}."))
        return found

    # ----- modes and gradients -----
    def train(self, mode=True):
        """Training mode (batch statistics in batch norm) for this module and every child."""
        self.training = mode
        for child in self.named_children().values():
            child.train(mode)
        return self

    def eval(self):
        """Evaluation mode (running statistics in batch norm), recursively."""
        return self.train(False)

    def zero_grad(self):
        for parameter in self.parameters():
            parameter.grad = None

    def astype(self, dtype):
        """Convert every parameter and buffer to `dtype` (e.g. "float64" for gradcheck)."""
        for tensor in self._state().values():
            tensor.data = tensor.data.astype(dtype)
            tensor.grad = None
        return self

    # ----- saving and loading -----
    def _state(self):
        return {**self.named_parameters(), **self.named_buffers()}

    def state_dict(self):
        """{dotted name: NumPy array}: a host copy of every parameter and buffer."""
        return {name: np.array(backend.to_host(t.data)) for name, t in self._state().items()}

    def load_state_dict(self, state):
        """Copy the arrays of `state` ({name: array}) into the parameters and buffers.

        Every name, shape and type (numbers) is checked before anything is copied, so a
        mismatch leaves the module as it was.
        """
        own = self._state()
        missing = [name for name in own if name not in state]
        unexpected = [name for name in state if name not in own]
        if missing or unexpected:
            raise TinyBTError(
                f"the state does not fit this {type(self).__name__}: missing {missing}, "
                f"unexpected {unexpected}; load one saved from the same architecture"
            )
        for name, tensor in own.items():
            if np.asarray(state[name]).dtype.kind not in "fiu":
                raise TinyBTError(
                    f"{name!r} holds {np.asarray(state[name]).dtype} values in the state, not "
                    "numbers; load one saved by tinybt"
                )
            if tuple(np.shape(state[name])) != tensor.shape:
                raise TinyBTError(
                    f"{name!r} has shape {tuple(np.shape(state[name]))} in the state but "
                    f"{tensor.shape} in this {type(self).__name__}; load one saved from the "
                    "same architecture"
                )
        for name, tensor in own.items():
            tensor.data[...] = backend.to_device(state[name])

    def save(self, path):
        """Write state_dict() to the .npz file `path`, atomically (complete or absent)."""
        atomic_savez(path, self.state_dict())

    def load(self, path):
        """Read parameters and buffers from an .npz file written by `save`; one holding NaN or
        inf is refused, as `load_checkpoint` refuses it."""
        state = read_npz(path, "give an .npz file written by save()")
        bad = first_non_finite(state)
        if bad is not None:
            raise NonFiniteError(
                f"{path} holds NaN or inf in {bad}: the model diverged before it was saved; "
                "train again with a lower learning rate",
                bad,
            )
        self.load_state_dict(state)
        return self


def _uniform(rng, bound, shape):
    """float32 values uniform in [-bound, bound), drawn on the host from `rng`."""
    return rng.uniform(-bound, bound, size=shape).astype(np.float32)


class Linear(Module):
    """y = x W + b.  x: (N, in_features) -> y: (N, out_features).

    weight W: (in_features, out_features), so the forward is the plain product x @ W
    (PyTorch stores the transpose, (out, in), and computes x Wᵀ); bias b: (out_features,).
    """

    def __init__(self, in_features, out_features, bias=True, rng=None):
        rng = np.random.default_rng() if rng is None else rng
        bound = 1 / math.sqrt(in_features)
        self.weight = Parameter(_uniform(rng, bound, (in_features, out_features)))
        self.bias = Parameter(_uniform(rng, bound, (out_features,))) if bias else None

    def forward(self, x):
        # BEGIN SOLUTION linear: return x @ weight, plus bias when there is one
        y = x @ self.weight
        return y if self.bias is None else y + self.bias
        # END SOLUTION


class Conv2d(Module):
    """2-D convolution.  x: (in_channels, H, W, N) -> (out_channels, OH, OW, N), the batch
    innermost as in every 2-D layer here (see ops.Conv2d).

    weight: (out_channels, in_channels, KH, KW); bias: (out_channels,). kernel_size is an int
    or a pair (KH, KW); stride and padding are ints.
    """

    def __init__(
        self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True, rng=None
    ):
        rng = np.random.default_rng() if rng is None else rng
        KH, KW = pair(kernel_size)
        bound = 1 / math.sqrt(in_channels * KH * KW)
        self.weight = Parameter(_uniform(rng, bound, (out_channels, in_channels, KH, KW)))
        self.bias = Parameter(_uniform(rng, bound, (out_channels,))) if bias else None
        self.stride, self.padding = stride, padding

    def forward(self, x):
        weights = (self.weight,) if self.bias is None else (self.weight, self.bias)
        return ops.Conv2d.apply(x, *weights, stride=self.stride, padding=self.padding)


class _BatchNorm(Module):
    """y = γ x̂ + β, x̂ each feature standardised (see ops.BatchNorm and ops.BatchStandardize).

    In training mode x̂ uses the batch's mean and biased variance, and the running averages
    (momentum 0.1, unbiased variance, as in PyTorch), which this layer owns, are updated. A
    forward pass under `no_grad()` in training mode (training's snapshots of C) uses the batch
    statistics too but leaves the running averages alone: only passes that a training step
    will follow with backward update them. In eval mode x̂ uses the running averages:
    constants, so batch norm is then a fixed affine map of x.
    affine=False leaves out γ (gamma) and β (beta).
    """

    ndim, layout = None, None  # the input the subclass takes, e.g. 2, "(N, D)"

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True):
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine = affine
        self.gamma = Parameter(np.ones(num_features, np.float32)) if affine else None
        self.beta = Parameter(np.zeros(num_features, np.float32)) if affine else None
        self.running_mean = Buffer(np.zeros(num_features, np.float32))
        self.running_var = Buffer(np.ones(num_features, np.float32))

    def forward(self, x):
        if x.ndim != self.ndim or x.shape[feature_axis(x)] != self.num_features:
            raise ValueError(
                f"{type(self).__name__}({self.num_features}) needs {self.layout} input with "
                f"{self.num_features} features, got shape {x.shape}"
            )
        if self.training:
            if self.affine:  # γ and β inside the op: its backward shares their sums
                op = ops.BatchNorm()
                y = op(x, self.gamma, self.beta, eps=self.eps)
            else:
                op = ops.BatchStandardize()
                y = op(x, eps=self.eps)
            if is_grad_enabled():
                self._update_running_statistics(op)
            return y
        shape = [1] * x.ndim  # one value per feature, broadcast along the feature axis
        shape[feature_axis(x)] = -1
        xp = backend.get_array_module(self.running_var.data)
        mean = self.running_mean.data.reshape(shape)
        inv_std = 1 / xp.sqrt(self.running_var.data.reshape(shape) + self.eps)
        x_hat = (x - mean) * inv_std
        if not self.affine:
            return x_hat
        return x_hat * self.gamma.reshape(shape) + self.beta.reshape(shape)

    def _update_running_statistics(self, standardize):
        """r = (1 - momentum) r + momentum b, as PyTorch's batch norm: b is the batch mean, or
        for the variance the unbiased m σ² / (m - 1), from the op that just standardised
        (BatchNorm or BatchStandardize)."""
        m = standardize.batch_count
        for running, batch in (
            (self.running_mean.data, standardize.mean),
            (self.running_var.data, standardize.var * m / (m - 1)),
        ):
            running *= 1 - self.momentum
            running += self.momentum * batch


class BatchNorm1d(_BatchNorm):
    """Batch norm of (N, D) features, statistics over the batch axis."""

    ndim, layout = 2, "(N, D)"


class BatchNorm2d(_BatchNorm):
    """Batch norm of (C, H, W, N) feature maps, statistics per channel over H, W and N."""

    ndim, layout = 4, "(C, H, W, N)"


class ReLU(Module):
    """max(x, 0), elementwise."""

    def forward(self, x):
        return x.relu()


class _Pool2d(Module):
    """Pooling with KH x KW windows `stride` apart; `op` is the pooling Function.

    kernel_size: int or (KH, KW); stride: int, by default the kernel size (square kernels).
    """

    op = None

    def __init__(self, kernel_size, stride=None):
        if stride is None and not isinstance(kernel_size, int):
            raise ValueError(f"give a stride for the non-square kernel {kernel_size}")
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride

    def forward(self, x):
        return self.op.apply(x, kernel_size=self.kernel_size, stride=self.stride)


class MaxPool2d(_Pool2d):
    """The maximum of each window.  (C, H, W, N) -> (C, OH, OW, N), see ops.MaxPool2d."""

    op = ops.MaxPool2d


class AvgPool2d(_Pool2d):
    """The mean of each window.  (C, H, W, N) -> (C, OH, OW, N), see ops.AvgPool2d."""

    op = ops.AvgPool2d


class GlobalAvgPool2d(Module):
    """The mean of each channel over the image.  (C, H, W, N) -> (N, C): the batch back in
    front, as Linear and BatchNorm1d take it."""

    def forward(self, x):
        return ops.global_avg_pool2d(x)


class Flatten(Module):
    """(N, ...) -> (N, everything else in one axis)."""

    def forward(self, x):
        return x.reshape(x.shape[0], -1)


class Sequential(Module):
    """Modules applied one after the other; the i-th is the child named "i".

    Indexing gives the i-th module (a slice gives a Sequential); iterating gives them in order.
    """

    def __init__(self, *modules):
        for index, module in enumerate(modules):
            if not isinstance(module, Module):
                raise TypeError(
                    f"Sequential takes Modules, got {type(module).__name__} at position {index}"
                )
            setattr(self, str(index), module)

    def __len__(self):
        return len(self.named_children())

    def __iter__(self):
        return iter(self.named_children().values())

    def __getitem__(self, index):
        modules = list(self)
        return Sequential(*modules[index]) if isinstance(index, slice) else modules[index]

    def forward(self, x):
        for module in self:
            x = module(x)
        return x
