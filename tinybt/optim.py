"""Optimisers (SGD with momentum, Adam, AdamW, LARS) and the warm-up + cosine learning rate.

Each optimiser updates the `data` of its parameters in place from their `grad`, one parameter
at a time, with the update rule written out as in the papers. `lr` is a plain attribute that
the training loop sets every step from `warmup_cosine`. `state_dict()` holds everything a
resumed run needs (moments, step count) as host arrays.
"""

import math

import numpy as np

from tinybt import backend
from tinybt.errors import TinyBTError

RESAVE = "the checkpoint was damaged or written by hand; resume from an earlier one"


class Optimizer:
    """What all optimisers share: the parameters, zeroing gradients, saving state."""

    BUFFERS = ()  # the names of the state arrays it keeps per parameter

    def __init__(self, params, lr):
        self.params = list(params)
        self.lr = lr
        self.state = {}  # name -> list of arrays, one per parameter (e.g. "momentum")
        self.steps = 0

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def step(self):
        self.steps += 1
        for i, p in enumerate(self.params):
            if p.grad is not None:
                self.update(i, p)

    def update(self, i, p):
        """Change p.data in place, using p.grad and this optimiser's state for parameter i."""
        raise NotImplementedError

    def buffer(self, name, i):
        """The state array `name` of parameter i, created as zeros on first use."""
        buffers = self.state.setdefault(name, [None] * len(self.params))
        if buffers[i] is None:
            buffers[i] = backend.get_array_module(self.params[i].data).zeros_like(
                self.params[i].data
            )
        return buffers[i]

    def state_dict(self):
        """{"steps": n, "<name>.<i>": host array} for every state array."""
        arrays = {
            f"{name}.{i}": backend.to_host(array)
            for name, buffers in self.state.items()
            for i, array in enumerate(buffers)
            if array is not None
        }
        return {"steps": self.steps, **arrays}

    def load_state_dict(self, state):
        """Restore a `state_dict()`, checked whole before anything changes.

        Rule: "steps" is a count >= 0; every other key is "<buffer>.<i>", one of this
        optimiser's BUFFERS for one of its parameters, a float array of that parameter's shape;
        each parameter has all of its buffers or none (it never had a gradient). A problem
        raises a one-line TinyBTError naming the key.
        """
        steps = np.asarray(state.get("steps"))
        if steps.ndim != 0 or steps.dtype.kind not in "iu" or steps < 0:
            raise TinyBTError(f"optimiser state 'steps' is {state.get('steps')!r}: {RESAVE}")
        buffers = dict(
            self._checked_buffer(key, array) for key, array in state.items() if key != "steps"
        )
        for i in range(len(self.params)):
            held = [name for name in self.BUFFERS if (name, i) in buffers]
            if held and len(held) < len(self.BUFFERS):
                missing = next(name for name in self.BUFFERS if name not in held)
                raise TinyBTError(f"optimiser state has no '{missing}.{i}': {RESAVE}")
        self.steps = int(steps)
        self.state = {}
        for (name, i), array in buffers.items():
            self.state.setdefault(name, [None] * len(self.params))[i] = backend.to_device(array)

    def _checked_buffer(self, key, array):
        """((buffer name, parameter index), array) of the state's entry `key`."""
        name, _, index = key.rpartition(".")
        if name not in self.BUFFERS or not index.isdigit() or int(index) >= len(self.params):
            raise TinyBTError(
                f"optimiser state has an unexpected {key!r} for {type(self).__name__}: {RESAVE}"
            )
        array, shape = np.asarray(array), self.params[int(index)].data.shape
        if array.dtype.kind != "f" or array.shape != shape:
            raise TinyBTError(
                f"optimiser state {key!r} is a {array.dtype} array of shape {array.shape}, not "
                f"floats of its parameter's shape {shape}: {RESAVE}"
            )
        return (name, int(index)), array


class SGD(Optimizer):
    """SGD with momentum, as PyTorch writes it:
    g = grad + wd θ;   m = μ m + g;   θ = θ - lr m
    """

    BUFFERS = ("momentum",)

    def __init__(self, params, lr, momentum=0.9, weight_decay=0.0):
        super().__init__(params, lr)
        self.momentum, self.weight_decay = momentum, weight_decay

    def update(self, i, p):
        g = p.grad + self.weight_decay * p.data
        m = self.buffer("momentum", i)
        m *= self.momentum
        m += g
        p.data -= self.lr * m


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015), weight decay added to the gradient (L2) as torch.optim.Adam:
    g = grad + wd θ
    m = β1 m + (1 - β1) g;   v = β2 v + (1 - β2) g²          (moving moments)
    θ = θ - lr m̂ / (sqrt(v̂) + ε),   m̂ = m / (1 - β1^t),  v̂ = v / (1 - β2^t)
    """

    BUFFERS = ("m", "v")
    decoupled = False  # AdamW decays the weights directly instead of through g

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr)
        self.beta1, self.beta2 = betas
        self.eps, self.weight_decay = eps, weight_decay

    def update(self, i, p):
        xp = backend.get_array_module(p.data)
        g = p.grad
        if self.decoupled:
            p.data -= self.lr * self.weight_decay * p.data
        else:
            g = g + self.weight_decay * p.data
        m, v = self.buffer("m", i), self.buffer("v", i)
        m *= self.beta1
        m += (1 - self.beta1) * g
        v *= self.beta2
        v += (1 - self.beta2) * g * g
        m_hat = m / (1 - self.beta1**self.steps)
        v_hat = v / (1 - self.beta2**self.steps)
        p.data -= self.lr * m_hat / (xp.sqrt(v_hat) + self.eps)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019): θ = θ - lr wd θ, then the
    Adam step on the plain gradient."""

    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(params, lr, betas, eps, weight_decay)


class LARS(Optimizer):
    """LARS (You et al., 2017) as the official Barlow Twins code uses it.

    For a weight matrix θ (ndim > 1):
        g = grad + wd θ
        g = g · η ‖θ‖ / ‖g‖      (trust ratio: every layer moves by about η of its norm)
        m = μ m + g;   θ = θ - lr m
    Biases and batch-norm parameters (ndim == 1) get neither weight decay nor the trust
    ratio, and their own, smaller learning rate lr · bias_lr_scale (official: 0.0048 / 0.2).
    """

    BUFFERS = ("momentum",)

    def __init__(
        self, params, lr, momentum=0.9, weight_decay=1.5e-6, eta=0.001, bias_lr_scale=0.024
    ):
        super().__init__(params, lr)
        self.momentum, self.weight_decay = momentum, weight_decay
        self.eta, self.bias_lr_scale = eta, bias_lr_scale

    def update(self, i, p):
        xp = backend.get_array_module(p.data)
        g = p.grad
        lr = self.lr
        if p.data.ndim > 1:
            g = g + self.weight_decay * p.data
            param_norm, update_norm = xp.linalg.norm(p.data), xp.linalg.norm(g)
            both_positive = (param_norm > 0) & (update_norm > 0)  # else the ratio is 1
            g = g * xp.where(both_positive, self.eta * param_norm / (update_norm + 1e-30), 1.0)
        else:
            lr = lr * self.bias_lr_scale
        m = self.buffer("momentum", i)
        m *= self.momentum
        m += g
        p.data -= lr * m


def warmup_cosine(step, total_steps, base_lr, warmup_steps, final_fraction=0.001):
    """Learning rate at `step` (0-based): linear warm-up from 0, then cosine decay.

        step < W:   lr = base · step / W
        after:      q = (1 + cos(π (step - W) / (T - W))) / 2,  lr = base (q + f (1 - q))
    so it falls from `base_lr` to `final_fraction · base_lr` at the last step (official
    Barlow Twins: W = 10 epochs, f = 0.001).
    """
    if step < warmup_steps:
        return base_lr * step / warmup_steps
    progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
    q = 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    return base_lr * (q + final_fraction * (1 - q))


OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "lars": LARS}
