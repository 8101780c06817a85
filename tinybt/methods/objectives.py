"""Each method's objective on one batch: two views in, the loss and what training logs out.

Every objective has the same signature, `(model, view_a, view_b, **hyperparameters)` with the
views as (N, 3, H, W) Tensors, and returns `(loss, terms)`: the scalar loss Tensor to
backpropagate and {name: float} of its parts. The recipe picks one by name (OBJECTIVES) and
binds the run's hyperparameters, so `tinybt.recipe.train_step` is the same for every method.

Two ways to get the embeddings compared:
- one network for both views (Barlow Twins, SimCLR, VICReg): Z_a, Z_b (N, D), and the
  gradient flows through both;
- an online network and a target network (BYOL; Barlow Twins and VICReg with --ema, the
  review's claim 5): `model` is a `tinybt.model.WithTarget`. The online network's embedding of
  one view, through the predictor P when there is one, is compared with the target's
  embedding of the other view, in both directions:  L(P(Z_a), Z'_b) + L(P(Z_b), Z'_a).
  The sum, not the mean: each online view then gets one gradient, as each view does in the
  one-network loss L(Z_a, Z_b), so the learning rate means the same with and without --ema
  (BYOL sums its two directions for the same reason); the logged loss is about twice the
  one-network one.

Every objective also logs `correlation_summary` of C for the online embeddings Z_a, Z_b (the
projector's outputs, before any predictor): a diagnostic of the representation that reads the
same for every method.
"""

from tinybt.loss import LAMBDA, barlow_twins, correlation_summary, cross_correlation
from tinybt.methods.byol import byol_loss
from tinybt.methods.simclr import TEMPERATURE, nt_xent_loss
from tinybt.methods.vicreg import COV_COEFF, SIM_COEFF, STD_COEFF, VICRegLoss


def online_and_target(model, view_a, view_b):
    """((Z_a, Z_b), (Q_a, Q_b), (Z'_a, Z'_b)) for a WithTarget model, all (N, D) Tensors.

    Z: the online network's embeddings. Q = P(Z), the predictor's outputs (Q = Z without a
    predictor). Z': the target network's embeddings, constants: its weights are Buffers and
    the views need no gradient, so autograd records nothing for them (the stop-gradient).
    """
    z_a, z_b = model.online(view_a), model.online(view_b)
    predict = (lambda z: z) if model.predictor is None else model.predictor
    return (z_a, z_b), (predict(z_a), predict(z_b)), (model.target(view_a), model.target(view_b))


def diagnostics(z_a, z_b):
    """correlation_summary of C (D, D) for two (N, D) embedding Tensors: diag_mean, off_diag_rms."""
    return correlation_summary(cross_correlation(z_a.data, z_b.data))


# ----- one network for both views -----
def barlow_twins_objective(model, view_a, view_b, lambd=LAMBDA, standardize=True):
    """Barlow Twins (tinybt/loss.py): L = Σ_i (1 - C_ii)² + λ Σ_{i≠j} C_ij², C of Z_a, Z_b.
    Logs the two terms and the summary of the loss's own C."""
    z_a, z_b = model(view_a), model(view_b)
    loss, _, terms = barlow_twins(z_a, z_b, lambd=lambd, standardized=standardize)
    return loss, terms


def simclr_objective(model, view_a, view_b, temperature=TEMPERATURE):
    """SimCLR (tinybt/methods/simclr.py): NT-Xent over the 2N views at temperature τ."""
    z_a, z_b = model(view_a), model(view_b)
    return nt_xent_loss(z_a, z_b, temperature=temperature), diagnostics(z_a, z_b)


def vicreg_objective(
    model, view_a, view_b, sim_coeff=SIM_COEFF, std_coeff=STD_COEFF, cov_coeff=COV_COEFF
):
    """VICReg (tinybt/methods/vicreg.py): μ_s s + μ_v v + μ_c c; logs the unweighted terms."""
    z_a, z_b = model(view_a), model(view_b)
    loss, terms = _vicreg(z_a, z_b, sim_coeff, std_coeff, cov_coeff)
    return loss, {**terms, **diagnostics(z_a, z_b)}


# ----- an online network and an EMA target -----
def byol_objective(model, view_a, view_b):
    """BYOL (tinybt/methods/byol.py): Σ over both directions of mean_n (2 - 2 cos(q_n, z'_n))."""
    (z_a, z_b), (q_a, q_b), (target_a, target_b) = online_and_target(model, view_a, view_b)
    return byol_loss(q_a, q_b, target_a, target_b), diagnostics(z_a, z_b)


def barlow_twins_ema_objective(model, view_a, view_b, lambd=LAMBDA, standardize=True):
    """Barlow Twins against an EMA target (--ema): L_BT(Q_a, Z'_b) + L_BT(Q_b, Z'_a)."""
    (z_a, z_b), (q_a, q_b), (target_a, target_b) = online_and_target(model, view_a, view_b)
    loss_ab, _, terms_ab = barlow_twins(q_a, target_b, lambd=lambd, standardized=standardize)
    loss_ba, _, terms_ba = barlow_twins(q_b, target_a, lambd=lambd, standardized=standardize)
    terms = {name: terms_ab[name] + terms_ba[name] for name in ("on_diag", "off_diag")}
    return loss_ab + loss_ba, {**terms, **diagnostics(z_a, z_b)}


def vicreg_ema_objective(
    model, view_a, view_b, sim_coeff=SIM_COEFF, std_coeff=STD_COEFF, cov_coeff=COV_COEFF
):
    """VICReg against an EMA target (--ema): L_VIC(Q_a, Z'_b) + L_VIC(Q_b, Z'_a). The target's
    variance and covariance terms are constants: only the online side's are learnt from."""
    (z_a, z_b), (q_a, q_b), (target_a, target_b) = online_and_target(model, view_a, view_b)
    loss_ab, terms_ab = _vicreg(q_a, target_b, sim_coeff, std_coeff, cov_coeff)
    loss_ba, terms_ba = _vicreg(q_b, target_a, sim_coeff, std_coeff, cov_coeff)
    terms = {name: terms_ab[name] + terms_ba[name] for name in terms_ab}
    return loss_ab + loss_ba, {**terms, **diagnostics(z_a, z_b)}


def _vicreg(z_a, z_b, sim_coeff, std_coeff, cov_coeff):
    """(loss, its unweighted terms) of VICReg's op on two (N, D) Tensors."""
    op = VICRegLoss()
    loss = op(z_a, z_b, sim_coeff=sim_coeff, std_coeff=std_coeff, cov_coeff=cov_coeff)
    return loss, {"invariance": op.invariance, "variance": op.variance, "covariance": op.covariance}


# The objective of each method, and of the two that can learn against an EMA target (--ema).
OBJECTIVES = {
    "barlow": barlow_twins_objective,
    "simclr": simclr_objective,
    "vicreg": vicreg_objective,
    "byol": byol_objective,
    "barlow+ema": barlow_twins_ema_objective,
    "vicreg+ema": vicreg_ema_objective,
}
