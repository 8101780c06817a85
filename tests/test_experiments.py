"""The experiments: grids of runs that resume and share work between processes, and the
verdicts on the review's claims, computed from made-up results with known answers."""

import json
import os
import subprocess
import sys
from dataclasses import asdict

import pytest

from tinybt import comparison
from tinybt.comparison import (
    INCONCLUSIVE,
    NOT_SUPPORTED,
    SUPPORTED,
    compare,
    trend,
    verdicts,
)
from tinybt.errors import TinyBTError
from tinybt.grids import METHOD_NAMES, grid, read_results, results_path, run_grid
from tinybt.recipe import Config

EXPERIMENTS = [sys.executable, "-m", "tinybt.experiments"]


# ----- the grids -----
def test_the_full_grids_hold_what_issue_13_asks_for():
    methods = grid("methods")
    assert {tags["method"] for tags, _ in methods.values()} >= {
        "barlow",
        "byol",
        "simclr",
        "vicreg",
    }
    assert {tags["seed"] for tags, _ in methods.values()} == {0, 1}
    assert {c.dataset for _, c in methods.values()} == {"cifar10"}
    assert len({(c.epochs, c.widths, c.augment) for _, c in methods.values()}) == 1  # one budget
    augmentations = grid("augmentations")
    assert len({tags["augment"] for tags, _ in augmentations.values()}) == 4
    dimension = grid("dimension")
    assert len({tags["dimension"] for tags, _ in dimension.values()}) >= 5
    for tags, config in dimension.values():
        assert config.projector.endswith(f"-{tags['dimension']}")
        if tags["method"] == "barlow-1/D":
            assert config.lambd == 1 / tags["dimension"]
    assert all(c.shuffle_pixels for _, c in grid("shuffle").values())
    # claim 3's real-image reference is the methods grid: the same data, encoder and budget
    for tags, config in grid("shuffle-cifar").values():
        assert config.shuffle_pixels and tags["method"] in METHOD_NAMES
        reference = methods[f"{tags['method']}-seed{tags['seed']}"][1]
        assert (config.dataset, config.epochs, config.widths, config.projector) == (
            reference.dataset,
            reference.epochs,
            reference.widths,
            reference.projector,
        )


def test_the_budget_grid_is_the_cifar10_preset_for_every_method_and_ema():
    preset = Config.preset("cifar10")
    budget = grid("budget")
    assert {tags["method"] for tags, _ in budget.values()} == {
        "barlow",
        "barlow-ema",
        "byol",
        "simclr",
        "vicreg",
    }
    for tags, config in budget.values():
        assert (config.dataset, config.epochs, config.batch_size) == ("cifar10", 100, 128)
        # everything the preset sets but the method, its EMA and the EMA's starting rate
        changed = {"method", "ema", "tau_base", "data_dir", "out"}
        for field in set(asdict(preset)) - changed:
            assert getattr(config, field) == getattr(preset, field), field
        assert config.ema == (tags["method"] == "barlow-ema")


def test_an_unknown_grid_or_run_is_refused_in_one_line(tmp_path):
    with pytest.raises(TinyBTError, match="unknown grid 'size'"):
        grid("size")
    with pytest.raises(TinyBTError, match="has no run nope"):
        run_grid("shuffle", tmp_path, fast=True, only=["nope"], log=None)


def test_a_grid_runs_once_appends_a_line_per_run_and_skips_finished_runs(tmp_path):
    data = {"shapes_dir": str(tmp_path.parent / "tinybt-data")}
    only = ["barlow-colour-jitter-seed0"]
    done = run_grid("shuffle", tmp_path, fast=True, only=only, log=None, **data)
    assert done == only
    lines = read_results(results_path(tmp_path, "shuffle"))
    assert [line["name"] for line in lines] == only
    line = lines[0]
    assert line["config"]["shuffle_pixels"] and line["tags"]["colour"] == "colour jitter"
    assert 0 <= line["evaluation"]["learned"]["linear"] <= 1 and line["seconds"] > 0
    assert not (tmp_path / "shuffle" / f"{only[0]}.lock").exists()
    assert run_grid("shuffle", tmp_path, fast=True, only=only, log=None, **data) == []


def test_a_run_locked_by_a_live_process_is_left_to_it_and_a_stale_lock_is_taken(tmp_path):
    data = {"shapes_dir": str(tmp_path.parent / "tinybt-data")}
    run = "byol-no-colour-jitter-seed0"
    lock = tmp_path / "shuffle" / f"{run}.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text(str(os.getppid()))  # a process that is alive
    assert run_grid("shuffle", tmp_path, fast=True, only=[run], log=None, **data) == []
    lock.write_text("999999999")  # no such process: a killed run's lock
    assert run_grid("shuffle", tmp_path, fast=True, only=[run], log=None, **data) == [run]


def test_the_program_lists_a_grid_and_refuses_bad_input(tmp_path):
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    listed = subprocess.run(
        [*EXPERIMENTS, "run", "dimension", "--fast", "--dry-run", "--root", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert listed.returncode == 0 and "barlow-ema-d8-seed0" in listed.stdout
    assert not (tmp_path / "dimension.jsonl").exists()
    for arguments, phrase in (
        (["run", "colours"], "invalid choice"),
        (["run", "all", "--only", "x"], "name that grid"),
        (["run", "methods", "--fast", "--only", "x", "--root", str(tmp_path)], "has no run x"),
    ):
        failed = subprocess.run([*EXPERIMENTS, *arguments], capture_output=True, text=True, env=env)
        message = failed.stderr.strip()
        assert failed.returncode == 2 and "\n" not in message and phrase in message, message


# ----- comparing -----
def test_compare_needs_three_points_or_the_spread_over_seeds():
    assert compare([0.50], [0.45]) == "higher"  # 5 points, one seed
    assert compare([0.50], [0.49]) == "unclear"  # 1 point, one seed: no telling
    assert compare([0.50, 0.51], [0.49, 0.50]) == "same"  # 1 point, spread 0.7
    assert compare([0.500, 0.502], [0.490, 0.492]) == "higher"  # 1 point, spread 0.14
    assert compare([0.40, 0.60], [0.45, 0.47]) == "unclear"  # 4 points, spread 14
    assert compare([], [0.5]) == "missing"


def test_trend_is_the_slope_per_doubling():
    slope, error = trend([16, 64, 256, 1024], [0.30, 0.34, 0.38, 0.42])
    assert slope == pytest.approx(0.02) and error == pytest.approx(0, abs=1e-9)


def line(accuracy, random_accuracy=0.2, **tags):
    tags.setdefault("seed", 0)
    evaluation = {"learned": {"linear": accuracy, "knn": accuracy}}
    evaluation["random_init"] = {"linear": random_accuracy, "knn": random_accuracy}
    return {"name": json.dumps(tags), "tags": tags, "evaluation": evaluation}


def test_verdicts_follow_the_numbers():
    seeds = (0, 1)
    results = {
        "methods": [
            *(line(0.60 + 0.002 * s, method="barlow", seed=s) for s in seeds),
            *(line(0.45 + 0.002 * s, method="barlow-nostd", seed=s) for s in seeds),
            *(line(0.40 + 0.002 * s, method="vicreg", seed=s) for s in seeds),
        ],
        "augmentations": [
            *(line(0.60, method="barlow", augment="all", seed=s) for s in seeds),
            *(
                line(0.40 + 0.01 * s, method="barlow", augment="crop and flip only", seed=s)
                for s in seeds
            ),
            *(line(0.60, method="byol", augment="all", seed=s) for s in seeds),
            *(
                line(0.55 + 0.01 * s, method="byol", augment="crop and flip only", seed=s)
                for s in seeds
            ),
        ],
        "shuffle-cifar": [
            *(
                line(0.30 + 0.001 * s, method="barlow", colour="no colour jitter", seed=s)
                for s in seeds
            ),
            *(
                line(0.25 + 0.001 * s, 0.25, method="barlow", colour="colour jitter", seed=s)
                for s in seeds
            ),
        ],
        "dimension": [
            *(
                line(0.40 + 0.02 * i, method="barlow", dimension=d)
                for i, d in enumerate((16, 64, 256, 1024))
            ),
            *(line(0.55, method="byol", dimension=d) for d in (16, 64, 256, 1024)),
            *(line(0.41, method="barlow-ema", dimension=d) for d in (16, 64, 256, 1024)),
        ],
    }
    found = {v.claim: v.verdict for v in verdicts(results)}
    assert found == {
        1: SUPPORTED,  # 15 points
        2: SUPPORTED,  # Barlow Twins drops 19.5 points, BYOL 4.5
        3: NOT_SUPPORTED,  # shuffled 30% against real (the methods grid) 60%
        4: SUPPORTED,  # +12 points for Barlow Twins, flat BYOL, BYOL ahead at D = 16
        5: NOT_SUPPORTED,  # the EMA adds 1 point; BYOL stays 14 ahead
        6: NOT_SUPPORTED,  # VICReg 20 points below Barlow Twins
    }
    assert all(v.statement == comparison.CLAIMS[v.claim] for v in verdicts(results))


def test_missing_results_are_inconclusive():
    assert {v.verdict for v in verdicts({})} == {INCONCLUSIVE}


def test_gains_are_measured_from_each_runs_random_encoder_and_skip_diverged_runs():
    lines = [
        line(0.55, 0.40, method="byol"),
        {"name": "x", "tags": {"method": "vicreg", "seed": 0}, "error": "loss became NaN"},
        line(0.45, 0.39, method="simclr"),
    ]
    rows = comparison.gains(lines)
    assert [r[0] for r in rows] == ["byol", "simclr"]
    assert rows[0][1:] == (0.55, 0.40, pytest.approx(0.15))
    assert rows[1][3] == pytest.approx(0.06) and rows[1][3] < comparison.LEARNS
