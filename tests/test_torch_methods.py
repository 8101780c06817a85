"""The other methods' losses against PyTorch's autograd, each written in torch from its paper's
formulas (and, for VICReg, the official code's), in float64: values and gradients must agree to
rounding. Skipped where torch is not installed; the library itself never imports it."""

import numpy as np
import pytest

from tinybt.methods.byol import byol_loss
from tinybt.methods.simclr import nt_xent_loss
from tinybt.methods.simsiam import simsiam_loss
from tinybt.methods.vicreg import vicreg_loss
from tinybt.tensor import Tensor

from .conftest import assert_close
from .test_methods import SHAPES, embeddings, vicreg_embeddings

torch = pytest.importorskip("torch")
F = torch.nn.functional


def compare(ours_fn, torch_fn, arrays, what, constants=()):
    """Loss and gradients of ours and of torch's on the same float64 inputs; `constants` are
    further inputs that get no gradient (BYOL's targets)."""
    ours = [Tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    loss = ours_fn(*ours, *(Tensor(c) for c in constants))
    expected = torch_fn(*theirs, *(torch.tensor(c) for c in constants))
    loss.backward()
    expected.backward()
    assert_close(loss.data, expected.item(), rtol=1e-10, what=f"{what}: loss")
    for i, (mine, reference) in enumerate(zip(ours, theirs, strict=True)):
        assert_close(
            mine.grad, reference.grad.numpy(), rtol=1e-8, atol=1e-12, what=f"{what}: d/dinput{i}"
        )


def torch_nt_xent(z_a, z_b, temperature):
    """SimCLR's Eq. 1 and Algorithm 1: cross-entropy over the 2N - 1 other views."""
    n = z_a.shape[0]
    z = F.normalize(torch.cat([z_a, z_b]), dim=1)
    similarity = z @ z.T / temperature
    similarity = similarity.masked_fill(torch.eye(2 * n, dtype=torch.bool), float("-inf"))
    twins = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    return F.cross_entropy(similarity, twins)


def torch_vicreg(z_a, z_b, sim_coeff=25.0, std_coeff=25.0, cov_coeff=1.0):
    """The paper's Eqs. 1-6, as the official main_vicreg.py writes them."""
    n, d = z_a.shape
    invariance = F.mse_loss(z_a, z_b)
    z_a, z_b = z_a - z_a.mean(dim=0), z_b - z_b.mean(dim=0)
    std_a, std_b = torch.sqrt(z_a.var(dim=0) + 1e-4), torch.sqrt(z_b.var(dim=0) + 1e-4)
    variance = F.relu(1 - std_a).mean() / 2 + F.relu(1 - std_b).mean() / 2
    off = ~torch.eye(d, dtype=torch.bool)
    cov_a, cov_b = z_a.T @ z_a / (n - 1), z_b.T @ z_b / (n - 1)
    covariance = cov_a[off].pow(2).sum() / d + cov_b[off].pow(2).sum() / d
    return sim_coeff * invariance + std_coeff * variance + cov_coeff * covariance


def torch_byol(q_a, q_b, target_a, target_b):
    """BYOL's Eq. 2, symmetrised: 2 - 2 cos(q, z') for both directions, mean over the batch."""

    def direction(q, target):
        return (2 - 2 * F.cosine_similarity(q, target.detach(), dim=1)).mean()

    return direction(q_a, target_b) + direction(q_b, target_a)


@pytest.mark.parametrize("n, d", SHAPES)
@pytest.mark.parametrize("temperature", [0.5, 0.1])
def test_nt_xent_matches_torch(n, d, temperature):
    compare(
        lambda a, b: nt_xent_loss(a, b, temperature),
        lambda a, b: torch_nt_xent(a, b, temperature),
        embeddings(n, d, seed=3),
        f"NT-Xent N={n} D={d} τ={temperature}",
    )


@pytest.mark.parametrize("n, d", SHAPES)
def test_vicreg_matches_torch(n, d):
    compare(vicreg_loss, torch_vicreg, vicreg_embeddings(n, d, seed=3), f"VICReg N={n} D={d}")


@pytest.mark.parametrize("n, d", SHAPES)
def test_byol_matches_torch(n, d):
    compare(
        byol_loss,
        torch_byol,
        embeddings(n, d, seed=3),
        f"BYOL N={n} D={d}",
        constants=embeddings(n, d, seed=4),
    )


def test_vicreg_torch_reference_is_not_trivially_equal():
    # the hinge must be active in some dimensions and not others, or half the formula is idle
    z_a, _ = vicreg_embeddings(16, 8, seed=3)
    std = z_a.std(axis=0, ddof=1)
    assert (std < 1).any() and (std > 1).any()
    assert np.abs(std - 1).min() > 0.1


def torch_simsiam(p1, p2, z1, z2):
    """As facebookresearch/simsiam writes it (main_simsiam.py, builder.py): the model returns
    z1.detach(), z2.detach(), and criterion = nn.CosineSimilarity(dim=1)."""
    criterion = torch.nn.CosineSimilarity(dim=1)
    z1, z2 = z1.detach(), z2.detach()
    return -(criterion(p1, z2).mean() + criterion(p2, z1).mean()) * 0.5


@pytest.mark.parametrize("n, d", SHAPES)
def test_simsiam_matches_torch(n, d):
    compare(
        simsiam_loss,
        torch_simsiam,
        embeddings(n, d, seed=3),
        f"SimSiam N={n} D={d}",
        constants=embeddings(n, d, seed=4),
    )
