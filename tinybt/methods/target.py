"""The target network, shared by every method that learns against one: BYOL always, Barlow
Twins and VICReg with --ema.

    online:    image (N, 3, H, W) -> encoder -> projector -> Z (N, D)           trained
    predictor: Z (N, D) -> Q (N, D), or none                                     trained
    target:    the same architecture as online, its weights θ' Buffers         not trained

No gradient reaches the target (the stop-gradient): after every optimiser step its weights
follow the online ones θ as an exponential moving average, θ' <- ρ θ' + (1 - ρ) θ, with ρ
rising from ρ_base to 1 on BYOL's cosine schedule (Grill et al., 2020, Section 3.3):
ρ = 1 - (1 - ρ_base)(cos(πk/k_max) + 1)/2 at step k of k_max, ρ_base = 0.996. (BYOL's paper
writes τ for the rate, and the code's names, `tau`, `ema_tau`, `--tau-base`, follow it; τ in
the text is SimCLR's temperature, docs/NOTATION.md.)

A method's loss L(Z^A, Z^B) becomes, against the target, L(Q^A, Z'^B) + L(Q^B, Z'^A): the
online network's embedding of one view, through the predictor when there is one, against the
target's embedding of the other view, in both directions. The sum, not the mean: each online
view then gets one gradient, as each view does in the one-network loss L(Z^A, Z^B), so the
learning rate means the same with and without --ema (BYOL sums its two directions for the same
reason); the logged loss is about twice the one-network one.
"""

import math

from tinybt import nn
from tinybt.methods.method import Option
from tinybt.methods.predictor import online_and_predictions
from tinybt.tensor import Tensor

TAU_BASE = 0.996  # BYOL's starting EMA rate

# The options of the target network, shared by every method that has one.
OPTIONS = {
    "ema": Option(False, "learn against an EMA target network (byol: always)"),
    "predictor": Option(False, "with --ema: BYOL's predictor on the online side (byol: always)"),
    "tau_base": Option(
        TAU_BASE,
        "with a target: its EMA rate at step 0, cosine to 1 (BYOL paper)",
        lambda value: None if 0 <= value <= 1 else "must be in [0, 1] (the share kept each step)",
    ),
}


class WithTarget(nn.Module):
    """An online network, optionally a predictor, and a target network that follows the online
    one as an exponential moving average.

    Called on images it is the online network, so evaluation, snapshots of C and the random
    baseline see the online encoder (`.encoder`). `twin` is a second network built like
    `online`; it becomes the target, its weights set to the online ones (an EMA with ρ = 0,
    how the target starts). Its weights are Buffers: saved in the checkpoint with the rest,
    absent from `parameters()`, so the optimiser never holds them and no gradient reaches them.

    The target's batch-norm running statistics are its own: its forward in training mode
    updates them from the target's batch statistics, as PyTorch's BYOL implementations do
    (their EMA averages the weights only). Training never reads them (the target always uses
    batch statistics); they make the saved target a network that can run in eval mode.
    """

    def __init__(self, online, twin, predictor=None):
        super().__init__()
        self.online = online
        self.predictor = predictor
        self.target = frozen(twin)
        for target, weight in zip(self.target_weights(), online.parameters(), strict=True):
            target.data = weight.data.copy()

    @property
    def encoder(self):
        return self.online.encoder

    def forward(self, x):
        return self.online(x)

    def target_weights(self):
        """The target's weights, in the order of `self.online.parameters()` (for the EMA)."""
        buffers = self.target.named_buffers()
        return [buffers[name] for name in self.online.named_parameters()]


def frozen(module):
    """`module` with each of its Parameters, and its children's, turned into a Buffer: still
    saved, never trained."""
    for part in _modules(module):
        for name, value in list(vars(part).items()):
            if isinstance(value, nn.Parameter):
                setattr(part, name, nn.Buffer(value.data))
    return module


def _modules(module):
    """`module` and every module below it."""
    yield module
    for child in module.named_children().values():
        yield from _modules(child)


def online_and_target(model, view_a, view_b):
    """((Z^A, Z^B), (Q^A, Q^B), (Z'^A, Z'^B)) for a WithTarget model, all (N, D) Tensors.

    Z: the online network's embeddings. Q = P(Z), the predictor's outputs (Q = Z without a
    predictor). Z': the target network's embeddings, constants: its weights are Buffers and
    the views need no gradient, so autograd records nothing for them (the stop-gradient).
    """
    (z_a, z_b), (q_a, q_b) = online_and_predictions(model, view_a, view_b)
    return (z_a, z_b), (q_a, q_b), (model.target(view_a), model.target(view_b))


def both_directions(loss):
    """The objective L(Q^A, Z'^B) + L(Q^B, Z'^A) of a loss L(Z^A, Z^B, **options) -> (loss,
    terms): (model, view_a, view_b, **options) -> (loss, terms), the terms summed too."""

    def objective(model, view_a, view_b, **options):
        _, (q_a, q_b), (target_a, target_b) = online_and_target(model, view_a, view_b)
        loss_ab, terms_ab = loss(q_a, target_b, **options)
        loss_ba, terms_ba = loss(q_b, target_a, **options)
        return loss_ab + loss_ba, {name: terms_ab[name] + terms_ba[name] for name in terms_ab}

    return objective


def ema_update(target_params, online_params, tau):
    """θ' <- ρ θ' + (1 - ρ) θ, ρ = `tau`, for each pair, in place on the arrays, outside autograd.

    target_params, online_params: matching sequences of Tensors (e.g. `module.parameters()`
    of the target and of the online network) or of raw arrays. tau = 0 copies the online
    weights, which is how the target starts.
    """
    target_params, online_params = list(target_params), list(online_params)
    if len(target_params) != len(online_params):
        raise ValueError(
            f"the target has {len(target_params)} parameters and the online network "
            f"{len(online_params)}: they must be the same architecture"
        )
    for index, (target, online) in enumerate(zip(target_params, online_params, strict=True)):
        target, online = _array(target), _array(online)
        if target.shape != online.shape:
            raise ValueError(
                f"parameter {index}: target shape {target.shape} != online shape {online.shape}"
            )
        target *= tau
        target += (1 - tau) * online


def _array(x):
    """The array of a Tensor, or x itself if it is already an array (an ndarray's own `.data`
    is its raw memory buffer, not the array)."""
    return x.data if isinstance(x, Tensor) else x


def ema_tau(step, total_steps, base=TAU_BASE):
    """The EMA rate ρ at step k = `step` of k_max = `total_steps`, from ρ_base = `base` to 1:
    ρ = 1 - (1 - ρ_base)(cos(πk/k_max) + 1)/2."""
    return 1 - (1 - base) * (math.cos(math.pi * step / total_steps) + 1) / 2


def follow(model, step, total_steps, tau_base=TAU_BASE):
    """After optimiser step k of k_max: move the target of `model` (a WithTarget) towards
    the online network at the rate ema_tau(k, k_max, tau_base). The rate is a function of the
    step, so a resumed run continues the schedule where it stopped."""
    tau = ema_tau(step, total_steps, tau_base)
    ema_update(model.target_weights(), model.online.parameters(), tau)
