"""SimCLR's loss, NT-Xent: each view must pick out its twin among all the views of the batch.

Chen, Kornblith, Norouzi and Hinton, "A Simple Framework for Contrastive Learning of Visual
Representations" (2020). The two views' embeddings Z^A, Z^B: (N, D) are stacked into the 2N
views Z: (2N, D), view i's twin being p(i) = i + N for i < N and i - N for i ≥ N (rows
counted from 0). With u_i = z_i / |z_i| and a temperature τ,

    S_ik = u_i · u_k / τ                          cosine similarity over τ     (2N, 2N)
    ℓ_i  = -S_i,p(i) + log Σ_{k≠i} exp(S_ik)      cross-entropy: "which of the other 2N - 1
                                                  views is my twin?", 2N - 2 of them negatives
    L    = (1 / 2N) Σ_i ℓ_i

L is the mean over the 2N views, as solo-learn's `simclr_loss_func` computes it; the official
code (google-research/simclr, `add_contrastive_loss`) sums the two directions' means over N,
which is 2L: the same gradients' direction, twice their size (halve the learning rate to
compare runs with it). Each u_i divides by |z_i| with |z_i|² floored at 1e-12, so a zero
embedding gives a zero unit vector, not NaN.

The normalised, temperature-scaled cross-entropy (NT-Xent). Pushing S_i,p(i) up pulls the two
views of an image together; the log-sum-exp pushes every other image away, which is what keeps
the embeddings from collapsing to one point. A view's similarity with itself is left out.

Default τ = 0.5: the temperature of the official code's CIFAR-10 command (ResNet-18, batch 512,
google-research/simclr README, "Pretraining"). Its ImageNet command, the paper's defaults, has
τ = 0.1 at batch 4096. tinybt's batches (256 or fewer) and small encoder are nearer the CIFAR-10
setting, so it keeps 0.5 unchanged; a smaller batch only means fewer negatives (2N - 2) per view.

This file holds the loss twice: `nt_xent_loss`, one op with the gradient derived by hand, and
`nt_xent_loss_autograd`, the same formula composed of primitive ops (notebook 09).
"""

from tinybt import distributed
from tinybt.backend import get_array_module
from tinybt.methods.common import (
    standardized_correlation,
    unit_rows,
    unit_rows_autograd,
)
from tinybt.methods.method import Method, Option, positive
from tinybt.tensor import Function

TEMPERATURE = 0.5  # the official README's CIFAR-10 setting (see the module docstring)


def _check_views(z_a, z_b):
    if z_a.shape != z_b.shape or z_a.ndim != 2 or z_a.shape[0] < 2:
        raise ValueError(
            "the two views' embeddings must both be (N, D) with N >= 2 (a view needs other "
            f"images as negatives), got {z_a.shape} and {z_b.shape}"
        )


class NTXentLoss(Function):
    """L(Z^A, Z^B) with Z^A, Z^B: (N, D) -> scalar, the gradient derived by hand.

    Forward, numerically stable: each row of S has its own largest entry (self excluded)
    subtracted before exp, which changes no softmax; exp(S_ii) is made exactly 0.

    Backward, from the loss down, in three steps (notebook 09 sets them up). The forward saves
    Π_ik = exp(S_ik) / Σ_{k'≠i} exp(S_ik') (Π_ii = 0), the softmax over the other views, and
    the twin p(i) of every view:
        1. dL/dS (2N, 2N): each ℓ_i is a cross-entropy over row i of S, with the twin as the
           right class; the mean over the 2N views divides by 2N.
        2. dL/dU (2N, D): S = U Uᵀ / τ, and each u_i sits in row i and in column i of S.
        3. dL/dZ (2N, D): u = z / |z|; moving z along u does not move u. Under the floor
           (`self.above_floor` is 0) |z| is a constant.
    The first N rows are dL/dZ^A, the last N dL/dZ^B.

    Global across P processes (tinybt.distributed), each holding N / P rows of Z^A and
    Z^B: the negatives. A view competes with every view of the whole batch, so every process
    gathers all 2N unit vectors (`views`, in rank order: each process's a-views then its
    b-views; the order of the candidates changes no softmax) and computes its own 2N / P
    rows of S, Π and dL/dS (2N / P, 2N). Its dL/dU needs, besides its rows of dL/dS, its
    views' columns of dL/dS from every process's rows (u_i appears in column i of S too), so
    the backward gathers those rows as well. The loss's mean over the 2N views is the whole batch's.
    """

    def forward(self, z_a, z_b, temperature=TEMPERATURE):
        _check_views(z_a, z_b)
        xp = get_array_module(z_a)
        n = z_a.shape[0]
        z = xp.concatenate([z_a, z_b])  # (2N, D)
        self.u, self.norms, self.above_floor = unit_rows(z)  # (2N, D), (2N, 1), (2N, 1)
        self.positive = float(distributed.batch_mean((self.u[:n] * self.u[n:]).sum(axis=1)))  # logs
        self.temperature = temperature
        self.views = distributed.gather_batch(self.u)  # every process's U; U in one process
        self.own = distributed.gathered_rows(2 * n)  # where this process's views sit in it
        logits = self.u @ self.views.T / temperature  # S (2N, 2N)
        rows = xp.arange(2 * n)
        # a view is not its own candidate: exp(-inf) = 0
        logits[rows, self.own.start + rows] = -xp.inf
        logits -= logits.max(axis=1, keepdims=True)  # each row's largest is now 0: no overflow
        exp = xp.exp(logits)
        sum_exp = exp.sum(axis=1, keepdims=True)
        self.softmax = exp / sum_exp  # Π
        self.twin = self.own.start + xp.concatenate([xp.arange(n, 2 * n), xp.arange(n)])  # p(i)
        # ℓ_i = -S_i,p(i) + log Σ exp(S_ik), both with the row's maximum taken out
        return distributed.batch_mean(xp.log(sum_exp[:, 0]) - logits[rows, self.twin])

    def backward(self, grad):
        # BEGIN SOLUTION nt-xent: return (dL/dZ^A, dL/dZ^B) for the NT-Xent loss
        # dL/dS_ik = (Π_ik - [k = p(i)]) / 2N: softmax minus one-hot,  G (2N, 2N)
        # S = U Uᵀ / τ, u_i in row i and column i  =>  dL/dU = (G + Gᵀ) U / τ           (2N, D)
        # u = z / |z|  =>  dL/dz = (dL/du - u (u · dL/du)) / |z|; under the floor dL/du / |z|
        xp = get_array_module(self.u)
        two_n = self.u.shape[0]
        g = self.softmax.copy()
        g[xp.arange(two_n), self.twin] -= 1.0
        g *= grad / distributed.batch_count(two_n)
        g_columns = distributed.gather_batch(g)[:, self.own].T  # this process's columns of G
        du = (g + g_columns) @ self.views / self.temperature
        along_u = (self.u * du).sum(axis=1, keepdims=True) * self.above_floor
        dz = (du - self.u * along_u) / self.norms
        return dz[: two_n // 2], dz[two_n // 2 :]
        # END SOLUTION


def nt_xent_loss(z_a, z_b, temperature=TEMPERATURE):
    """SimCLR's NT-Xent loss of two (N, D) embedding Tensors, as one op (scalar Tensor)."""
    return NTXentLoss.apply(z_a, z_b, temperature=temperature)


def nt_xent_loss_autograd(z_a, z_b, temperature=TEMPERATURE):
    """The same loss composed of primitive ops, so autograd derives the gradient.

    The engine has no concatenation, so S is written as its four (N, N) blocks: view i of A
    competes over S_aa[i, k≠i] and all of S_ab[i, :], its twin being S_ab[i, i]; B likewise.
    Every entry is shifted by 1/τ, the largest a cosine over τ can be: a constant per row,
    so the loss is unchanged and exp stays at most 1. Multiplying by (1 - I) drops S_ii.
    """
    xp = get_array_module(z_a.data)
    n = z_a.shape[0]
    not_self = 1.0 - xp.eye(n, dtype=z_a.dtype)

    u_a, u_b = unit_rows_autograd(z_a), unit_rows_autograd(z_b)
    shift = 1.0 / temperature
    s_aa = u_a @ u_a.T / temperature - shift
    s_bb = u_b @ u_b.T / temperature - shift
    s_ab = u_a @ u_b.T / temperature - shift
    positive = (u_a * u_b).sum(axis=1) / temperature - shift  # S_ab[i, i] = S_ba[i, i]
    sum_exp_a = (s_aa.exp() * not_self).sum(axis=1) + s_ab.exp().sum(axis=1)
    sum_exp_b = (s_bb.exp() * not_self).sum(axis=1) + s_ab.T.exp().sum(axis=1)
    return (sum_exp_a.log() + sum_exp_b.log() - positive * 2.0).sum() / (2 * n)


# ----- the method -----
def objective(model, view_a, view_b, temperature=TEMPERATURE):
    """Both views through one network, NT-Xent over the 2N views; logs the mean cosine
    similarity of each view to its twin."""
    op = NTXentLoss()
    loss = op(model(view_a), model(view_b), temperature=temperature)
    return loss, {"positive_cosine": op.positive}


METHOD = Method(
    name="simclr",
    objective=objective,
    target_objective=None,
    correlation=standardized_correlation,
    options={
        "temperature": Option(
            TEMPERATURE, "τ of NT-Xent (0.5: the official code's CIFAR-10 value)", positive
        ),
    },
)
