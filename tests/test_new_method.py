"""The seam a new method plugs into: a method written here, in the test, registered in
`tinybt.methods.METHODS`, trains and is evaluated through the command line's own code path,
with no file of the library edited."""

import json
from dataclasses import replace

import pytest

from tinybt import distributed, methods
from tinybt.evaluate import evaluate_checkpoint
from tinybt.methods.common import constant, standardized_correlation, unit_rows
from tinybt.methods.method import Method, Option
from tinybt.methods.target import follow, online_and_target
from tinybt.tensor import Function
from tinybt.train import main

from .test_distributed import needs_mpi
from .test_distributed_training import LOSS_RTOL, finish, launch, losses


class CosineLoss(Function):
    """mean_n (2 - 2 cos(q_n, z'_n)) for Q, Z' (N, D), Z' a constant; the mean is the whole
    batch's (distributed.batch_mean), so P processes train one process's gradient.

    cos = q̂ · ẑ with q̂ = q/|q|  =>  dL/dq = -2 (ẑ - q̂ cos) / (N |q|), row by row."""

    def forward(self, q, target):
        self.q_unit, self.q_norms, _ = unit_rows(q)
        self.target_unit = unit_rows(target)[0]
        self.cos = (self.q_unit * self.target_unit).sum(axis=1, keepdims=True)  # (N, 1)
        return distributed.batch_mean(2 - 2 * self.cos)

    def backward(self, grad):
        n = distributed.batch_count(len(self.q_unit))
        dq = -2 * grad * (self.target_unit - self.q_unit * self.cos) / (n * self.q_norms)
        return dq, None


def cosine_objective(model, view_a, view_b):
    """Each online embedding towards the EMA target's embedding of the other view, both ways;
    logs the mean cosine."""
    (z_a, z_b), _, (target_a, target_b) = online_and_target(model, view_a, view_b)
    ab, ba = CosineLoss(), CosineLoss()
    loss = ab(z_a, constant(target_b)) + ba(z_b, constant(target_a))
    return loss, {
        "cosine": float(distributed.batch_mean(ab.cos) + distributed.batch_mean(ba.cos)) / 2
    }


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
    """A method's options are fields of Config, one line each in tinybt/config.py: a method
    whose options are not there is told so, in one line."""
    scaled = replace(COSINE, name="scaled", options={"scale": Option(1.0, "the loss's weight")})
    monkeypatch.setitem(methods.METHODS, "scaled", scaled)
    assert main(["--preset", "tiny", "--method", "scaled", "--out", str(tmp_path)]) == 2
    assert "options (scale) are not fields of Config: add one line" in capsys.readouterr().err


def test_a_new_method_is_refused_until_it_is_registered(tmp_path, capsys):
    assert main(["--preset", "tiny", "--method", "cosine", "--out", str(tmp_path)]) == 2
    expected = "--method 'cosine' is not one of barlow, byol, simclr, vicreg, simsiam"
    assert expected in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(methods.METHODS))
def test_every_registered_method_says_what_it_is(name):
    method = methods.METHODS[name]
    assert method.name == name
    assert method.objective or method.target_objective
    assert (method.after_step is not None) == (method.target_objective is not None)
    for option in method.options.values():
        assert option.help and (option.check is None or option.check(option.default) is None)


# Two processes register the method as the test does, then run the command line's code.
REGISTERED = (
    "import sys; from tinybt import methods; from tests.test_new_method import COSINE; "
    "methods.METHODS['cosine'] = COSINE; from tinybt.train import main; "
    "sys.exit(main(sys.argv[1:]))"
)


@needs_mpi
@pytest.mark.slow
def test_a_new_method_trains_the_one_process_losses_in_two_processes(tmp_path, monkeypatch):
    """Its loss takes the whole batch's mean, so `mpiexec -n 2` trains the one-process run."""
    monkeypatch.setitem(methods.METHODS, "cosine", COSINE)
    data = tmp_path.parent / "tinybt-data"
    argv = ["--preset", "tiny", "--method", "cosine", "--epochs", "2", "--tau-base", "0.9"]
    argv += ["--train-size", "128", "--no-evaluate", "--data-dir", str(data)]
    assert main([*argv, "--out", str(tmp_path / "one")]) == 0
    status, _, err = finish(launch(2, "-c", REGISTERED, *argv, "--out", str(tmp_path / "two")))
    assert status == 0, err
    assert losses(tmp_path / "two") == pytest.approx(losses(tmp_path / "one"), rel=LOSS_RTOL)
