"""One training step, the whole of it in one function: `train_step`.

A run of thousands of steps (tinybt/run.py) calls it once per batch. The method comes in only
through `objective`, the run's `Objective` (tinybt/build.py): its loss, and what follows the
update. So the step, like the run around it, is the same for every method.
"""

import numpy as np

from tinybt import distributed
from tinybt.divergence import check_finite
from tinybt.tensor import Tensor


def train_step(
    model,
    optimizer,
    objective,
    augment,
    images,
    rng,
    lr,
    step=0,
    total_steps=1,
    rows=slice(None),
    statistics=distributed.GLOBAL,
):
    """Train on one batch of `images` (N, H, W, 3); returns (the loss as a float, its terms).

        x_a, x_b = augment(images, rng)[rows]    two views, from the whole batch's draws
        L, terms = objective(model, x_a, x_b)    both views forward, the method's loss
        g        = Σ_p dL/dθ_p                   backward; the P processes' shares summed
        θ        ← update(θ, g, lr)              the optimiser's step at this step's rate
        after_step(model, step, total_steps)    a target network: θ' ← ρ θ' + (1 − ρ) θ
        check_finite(L, g, optimiser state, θ)  the first NaN or inf raises Overflow

    lr: this step's learning rate (the run's warm-up and cosine, `optim.warmup_cosine`).
    step, total_steps: where the run stands (the target's ρ follows a schedule over the run).
    rows, statistics: this process's rows of the batch, and whose batch statistics and C
    the loss standardises by (`distributed.whole_batch`); in one process, all the rows.

    Across P processes each makes the views of its rows from the whole batch's random draws,
    the loss is the whole batch's, and the backward gives each process its rows' share of
    dL/dθ; summed in one all-reduce of one buffer (averaged with per-process statistics),
    every process takes the same update and moves the same target.
    """
    view_a, view_b = augment(images, rng, rows=rows)
    # Overflow is checked at the end, step by step, so NumPy's warnings would only repeat it
    with (
        distributed.whole_batch(statistics),
        np.errstate(over="ignore", invalid="ignore", divide="ignore"),
    ):
        loss, terms = objective(model, Tensor(view_a), Tensor(view_b))
        optimizer.zero_grad()
        loss.backward()
        distributed.sum_gradients(model.parameters())
        optimizer.lr = lr
        optimizer.step()
        if objective.after_step is not None:
            objective.after_step(model, step, total_steps)
        loss = loss.item()
    check_finite(loss, model, optimizer)
    return loss, terms
