"""Every method trains as Barlow Twins does: the loss falls, the files are written, BYOL's run
resumes exactly after Ctrl-C, no gradient reaches a target network, the EMA is the one BYOL
writes down, and `python -m tinybt.evaluate` reads every method's run."""

from dataclasses import asdict, replace

import numpy as np
import pytest

from tinybt import run as run_module
from tinybt.augment import shuffle_pixels
from tinybt.build import (
    build_correlation,
    build_model,
    build_objective,
    build_optimizer,
    load_split,
)
from tinybt.checkpoint import load_checkpoint
from tinybt.config import Config, has_target, stored_config, validate
from tinybt.evaluate import evaluate_checkpoint
from tinybt.methods.common import cross_correlation
from tinybt.methods.target import WithTarget, ema_tau
from tinybt.run import train
from tinybt.step import train_step
from tinybt.tensor import Tensor

from .test_train import interrupt_at

# (name, Config changes): every method, and the EMA variants of claim 5
VARIANTS = [
    ("barlow", {}),
    ("simclr", {"method": "simclr"}),
    ("vicreg", {"method": "vicreg"}),
    ("byol", {"method": "byol"}),
    ("simsiam", {"method": "simsiam"}),
    ("barlow --ema", {"ema": True}),
    ("barlow --ema --predictor", {"ema": True, "predictor": True}),
    ("vicreg --ema", {"method": "vicreg", "ema": True}),
]
# What each objective reports about its loss, which the run logs as it is.
TERMS = {
    "barlow": ("on_diag", "off_diag", "diag_mean", "off_diag_rms"),
    "barlow --ema": ("on_diag", "off_diag"),
    "barlow --ema --predictor": ("on_diag", "off_diag"),
    "simclr": ("positive_cosine",),
    "simsiam": ("cosine",),
    "vicreg": ("invariance", "variance", "covariance"),
    "vicreg --ema": ("invariance", "variance", "covariance"),
    "byol": ("cosine",),
}


def tiny_config(tmp_path, **changes):
    """Two epochs of the tiny preset; a higher learning rate and a faster EMA (τ_base 0.9)
    than the defaults, so that 16 steps move every method's loss."""
    data_dir = tmp_path.parent / "tinybt-data"
    settings = dict(lr=1e-2, warmup_epochs=0.5, evaluate=False)
    config = Config.preset(
        "tiny", data_dir=str(data_dir), out=str(tmp_path / "run"), **{**settings, **changes}
    )
    return replace(config, tau_base=0.9) if has_target(config) else config


def losses(result):
    return [record["loss"] for record in result["metrics"]]


def given(views):
    """An augment that returns `views` (2, N, 3, H, W), made beforehand, whatever the batch."""
    return lambda images, rng, rows: (views[0], views[1])


@pytest.mark.parametrize("name, changes", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_every_method_lowers_its_loss_and_writes_its_files(tmp_path, name, changes):
    config = tiny_config(tmp_path, **changes)
    result = train(config, progress=False, log=None)
    history = losses(result)
    assert history[-1] < history[0], f"{name}: loss did not fall: {history}"
    record = result["metrics"][-1]
    standard = {"epoch", "step", "loss", "lr", "seconds", "images_per_second"}
    assert set(record) - standard == set(TERMS[name])
    assert all(np.isfinite(record[key]) for key in TERMS[name])
    for file in ("checkpoint.npz", "metrics.jsonl", "snapshots.npz", "cross_correlation.png"):
        assert (tmp_path / "run" / file).exists(), file
    model = load_checkpoint(tmp_path / "run" / "checkpoint.npz")[0]
    has_target = config.method == "byol" or config.ema
    assert any(key.startswith("target.") for key in model) == has_target
    assert any(key.startswith("predictor.") for key in model) == (
        config.method in ("byol", "simsiam") or config.predictor
    )


RESUMED = [v for v in VARIANTS if v[0] in ("byol", "simclr", "simsiam", "vicreg --ema")]


@pytest.mark.parametrize("name, changes", RESUMED, ids=[v[0] for v in RESUMED])
def test_every_kind_of_method_resumes_exactly_after_ctrl_c(tmp_path, monkeypatch, name, changes):
    """Target, predictor and the EMA schedule (a function of the step) all come back."""
    whole = train(tiny_config(tmp_path / "whole", **changes), progress=False, log=None)
    config = tiny_config(tmp_path / "split", **changes)
    real_step = interrupt_at(monkeypatch, 3)  # mid-way through the first epoch
    with pytest.raises(KeyboardInterrupt):
        train(config, progress=False, log=None)
    monkeypatch.setattr(run_module, "train_step", real_step)
    meta = load_checkpoint(tmp_path / "split" / "run" / "checkpoint.npz")[2]
    assert (meta["epoch"], meta["batch"]) == (0, 3)

    resumed = train(config, resume=True, progress=False, log=None)
    assert losses(resumed) == losses(whole)
    final = [
        load_checkpoint(p / "run" / "checkpoint.npz")[0]
        for p in (tmp_path / "whole", tmp_path / "split")
    ]
    for key in final[0]:
        assert np.array_equal(final[0][key], final[1][key]), key


def test_no_gradient_reaches_byols_target_and_the_optimiser_does_not_hold_it(tmp_path):
    config = tiny_config(tmp_path, method="byol")
    model = build_model(config)
    optimizer = build_optimizer(config, model)
    target = list(model.target.named_buffers().values())
    held = {id(p) for p in optimizer.params}
    assert not held & {id(t) for t in target}
    trained = model.online.parameters() + model.predictor.parameters()
    assert held == {id(p) for p in trained}

    views = np.random.default_rng(0).standard_normal((2, 8, 3, 32, 32)).astype(np.float32)
    before = {name: b.numpy().copy() for name, b in model.target.named_buffers().items()}
    objective = build_objective(replace(config, tau_base=1.0))  # τ = 1: the EMA keeps the target
    train_step(
        model, optimizer, objective, given(views), None, None, config.lr, step=0, total_steps=10
    )
    assert all(t.grad is None and not t.requires_grad for t in target)
    assert all(p.grad is not None for p in trained)
    weights = {n for n in model.online.named_parameters()}
    for name, buffer in model.target.named_buffers().items():
        if name in weights:  # τ = 1 keeps the weights; the running statistics are its own
            assert np.array_equal(buffer.numpy(), before[name]), name


def test_the_ema_step_in_training_is_the_hand_written_update(tmp_path):
    """θ' <- τ θ' + (1 - τ) θ after the optimiser's step, τ from BYOL's cosine schedule."""
    config = tiny_config(tmp_path, method="barlow", ema=True)
    model = build_model(config)
    optimizer = build_optimizer(config, model)
    views = np.random.default_rng(1).standard_normal((2, 8, 3, 32, 32)).astype(np.float32)
    target_before = [w.numpy().copy() for w in model.target_weights()]
    tau = ema_tau(3, 10, config.tau_base)
    train_step(
        model,
        optimizer,
        build_objective(config),
        given(views),
        None,
        None,
        config.lr,
        step=3,
        total_steps=10,
    )
    for before, after, online in zip(
        target_before, model.target_weights(), model.online.parameters(), strict=True
    ):
        np.testing.assert_allclose(
            after.numpy(), tau * before + (1 - tau) * online.numpy(), rtol=1e-6
        )
    assert not np.array_equal(target_before[0], model.online.parameters()[0].numpy())


def test_the_target_starts_as_the_online_network_and_the_online_network_as_barlows(tmp_path):
    """The same seed gives the same online network with or without a target, so the random
    baseline of every method is the same encoder."""
    plain = build_model(tiny_config(tmp_path))
    byol = build_model(tiny_config(tmp_path, method="byol"))
    assert isinstance(byol, WithTarget)
    for (name, weight), target in zip(
        byol.online.named_parameters().items(), byol.target_weights(), strict=True
    ):
        assert np.array_equal(weight.numpy(), target.numpy()), name
        assert np.array_equal(weight.numpy(), plain.named_parameters()[name].numpy()), name


def test_evaluate_reads_a_byol_run(tmp_path):
    config = tiny_config(tmp_path, method="byol", epochs=1)
    train(config, progress=False, log=None)
    result = evaluate_checkpoint(tmp_path / "run", probe_epochs=2, log=None)
    assert 0 <= result["learned"]["linear"] <= 1 and 0 <= result["random_init"]["knn"] <= 1


def test_shuffled_pixels_shuffle_both_splits_alike(tmp_path):
    """One permutation for the run, from its seed: both splits lose the same structure."""
    config = tiny_config(tmp_path, shuffle_pixels=True)
    for split in ("train", "test"):
        original = load_split(tiny_config(tmp_path), split).images
        expected = shuffle_pixels(original, np.random.default_rng([config.seed, 3]))
        assert np.array_equal(load_split(config, split).images, expected)
        assert not np.array_equal(expected, original)


@pytest.mark.parametrize("name, changes", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_every_objective_keeps_the_networks_float32(tmp_path, name, changes):
    """A float64 gradient from a loss would run the whole backward pass in float64 (VICReg's
    variance hinge once did: a bool mask times a Python float is float64), twice as slow."""
    config = tiny_config(tmp_path, **changes)
    model = build_model(config)
    views = np.random.default_rng(2).standard_normal((2, 8, 3, 32, 32)).astype(np.float32)
    loss, _ = build_objective(config)(model, *(Tensor(v) for v in views))
    loss.backward()
    assert {p.grad.dtype for p in model.parameters()} == {np.dtype(np.float32)}


@pytest.mark.parametrize(
    "changes, standardized",
    [({}, True), ({"standardize": False}, False), ({"method": "vicreg"}, True)],
    ids=["barlow", "barlow --no-standardize", "vicreg"],
)
def test_the_snapshot_is_the_methods_own_c(tmp_path, changes, standardized):
    """Barlow Twins snapshots the C its loss forms (only centred with --no-standardize);
    VICReg, whose loss forms none, the standardised cross-correlation."""
    z_a, z_b = (3.0 * v + 1.0 for v in np.random.default_rng(3).standard_normal((2, 16, 4)))
    matrix = build_correlation(tiny_config(tmp_path, **changes))(z_a, z_b)
    np.testing.assert_allclose(matrix, cross_correlation(z_a, z_b, standardized=standardized))
    other = cross_correlation(z_a, z_b, standardized=not standardized)
    assert not np.allclose(matrix, other)  # std 3: centred and standardised C differ


def test_a_stored_tau_base_without_a_target_is_read_as_the_default():
    """Runs without a target once stored the --tau-base they were given (the grids gave every
    run 0.99); read back, it is the default, so those folders still resume and evaluate."""
    stored = {**asdict(Config()), "tau_base": 0.99}
    assert stored_config(stored).tau_base == Config().tau_base
    validate(stored_config(stored))
    with_target = stored_config({**stored, "method": "byol"})
    assert with_target.tau_base == 0.99
