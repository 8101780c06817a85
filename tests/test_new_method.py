"""The seam a new method plugs into: a method written here, in the test, registered in
`tinybt.methods.METHODS`, trains and is evaluated through the command line's own code path,
with no file of the library edited."""

import json
from dataclasses import replace

import pytest

from tinybt import methods
from tinybt.evaluate import evaluate_checkpoint
from tinybt.methods.common import standardized_correlation
from tinybt.methods.method import Method, Option
from tinybt.methods.target import follow, online_and_target
from tinybt.train import main


def unit(z):
    """Rows of an (N, D) Tensor divided by their norms."""
    return z * ((z**2).sum(axis=1, keepdims=True) ** -0.5)


def cosine_objective(model, view_a, view_b):
    """mean_n (2 - 2 cos(z_a,n, z'_b,n)) + the same with the views swapped: each online
    embedding towards the EMA target's embedding of the other view."""
    (z_a, z_b), _, (target_a, target_b) = online_and_target(model, view_a, view_b)
    cosine_ab = (unit(z_a) * unit(target_b)).sum(axis=1).mean()
    cosine_ba = (unit(z_b) * unit(target_a)).sum(axis=1).mean()
    loss = 4 - 2 * (cosine_ab + cosine_ba)
    return loss, {"cosine": (cosine_ab.item() + cosine_ba.item()) / 2}


COSINE = Method(
    name="cosine",
    objective=None,  # always against a target network
    target_objective=cosine_objective,
    correlation=standardized_correlation,
    after_step=follow,
)


def test_a_method_defined_outside_the_library_trains_and_is_evaluated(tmp_path, monkeypatch):
    monkeypatch.setitem(methods.METHODS, "cosine", COSINE)
    out = tmp_path / "run"
    data = tmp_path.parent / "tinybt-data"
    argv = ["--preset", "tiny", "--method", "cosine", "--epochs", "1", "--tau-base", "0.9"]
    assert main([*argv, "--data-dir", str(data), "--out", str(out)]) == 0

    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert set(records[0]) >= {"loss", "cosine"} and "diag_mean" not in records[0]
    evaluation = json.loads((out / "evaluation.json").read_text())
    assert 0 <= evaluation["learned"]["linear"] <= 1
    checkpoint = evaluate_checkpoint(out, probe_epochs=2, log=None)  # python -m tinybt.evaluate
    assert 0 <= checkpoint["learned"]["knn"] <= 1
    with (out / "cross_correlation.png").open("rb") as figure:
        assert figure.read(4) == b"\x89PNG"


def test_a_method_with_options_registered_too_late_is_refused_in_one_line(
    tmp_path, monkeypatch, capsys
):
    """Options become fields of Config when tinybt.recipe is imported: a method registered
    afterwards can have none of its own, and is told so."""
    scaled = replace(COSINE, name="scaled", options={"scale": Option(1.0, "the loss's weight")})
    monkeypatch.setitem(methods.METHODS, "scaled", scaled)
    assert main(["--preset", "tiny", "--method", "scaled", "--out", str(tmp_path)]) == 2
    assert "options (scale) are not fields of Config: register" in capsys.readouterr().err


def test_a_new_method_is_refused_until_it_is_registered(tmp_path, capsys):
    assert main(["--preset", "tiny", "--method", "cosine", "--out", str(tmp_path)]) == 2
    assert "--method 'cosine' is not one of barlow, byol, simclr, vicreg" in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(methods.METHODS))
def test_every_registered_method_says_what_it_is(name):
    method = methods.METHODS[name]
    assert method.name == name
    assert method.objective or method.target_objective
    assert (method.after_step is not None) == (method.target_objective is not None)
    for option in method.options.values():
        assert option.help and (option.check is None or option.check(option.default) is None)
