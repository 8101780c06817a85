"""The experiments: grids of runs that resume and share work between processes, and the
verdicts on the review's claims, computed from made-up results with known answers."""

import json
import multiprocessing
import os
import re
import subprocess
import sys
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from tinybt.config import Config, has_target
from tinybt.errors import TinyBTError
from tinybt.study import comparison
from tinybt.study.comparison import (
    INCONCLUSIVE,
    NOT_SUPPORTED,
    SUPPORTED,
    compare,
    trend,
    verdicts,
)
from tinybt.study.grids import GRIDS, METHOD_NAMES, TAU_BASE, grid
from tinybt.study.records import append_result, read_results, results_path
from tinybt.study.runner import RunsFailed, run_grid
from tinybt.study.tags import (
    ALL_AUGMENTATIONS,
    BARLOW_EMA,
    BARLOW_HYBRID,
    BARLOW_NOSTD,
    CROP_AND_FLIP,
)

pytestmark = pytest.mark.host

EXPERIMENTS = [sys.executable, "-m", "tinybt.experiments"]


# ----- the grids -----
def test_the_full_grids_hold_what_the_claims_need():
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


def test_the_sweeps_share_one_default_run_and_one_budget():
    sweeps = grid("sweeps-cifar")
    assert {c.dataset for _, c in sweeps.values()} == {"cifar10"}
    assert len({(c.epochs, c.widths, c.strides) for _, c in sweeps.values()}) == 1
    # τ_base is given only where there is a target, and there it is the grids' one
    assert {c.tau_base for _, c in sweeps.values() if has_target(c)} == {TAU_BASE}
    assert {c.tau_base for _, c in sweeps.values() if not has_target(c)} == {Config().tau_base}
    settings = {}
    for tags, config in sweeps.values():
        assert config.projector == f"512-512-{tags['dimension']}"
        assert config.batch_size == tags["batch"]
        assert config.lr == pytest.approx(1e-3 * (tags["batch"] / 128) ** 0.5)
        assert (config.augment_changes == {}) == (tags["augment"] == ALL_AUGMENTATIONS)
        assert config.ema == (tags["method"] in (BARLOW_EMA, BARLOW_HYBRID))
        assert config.predictor == (tags["method"] == BARLOW_HYBRID)
        setting = tuple(value for key, value in tags.items() if key != "seed")
        settings.setdefault(setting, set()).add(tags["seed"])
    # two seeds for every setting, three for the seven the third seed repeats
    assert sorted(len(seeds) for seeds in settings.values()) == [2] * 20 + [3] * 7
    assert all(seeds >= {0, 1} for seeds in settings.values())
    # the default run is one run of every sweep: no second run at D = 512, batch 128, all
    defaults = [s for s in settings if s[1:] == (512, ALL_AUGMENTATIONS, 128)]
    assert sorted(s[0] for s in defaults) == sorted(
        ["barlow", "byol", "simclr", BARLOW_EMA, BARLOW_HYBRID]
    )
    assert sweeps["barlow-seed0"][0]["dimension"] == 512
    assert sweeps["barlow-d16-seed1"][0] == {
        "method": "barlow",
        "dimension": 16,
        "augment": ALL_AUGMENTATIONS,
        "batch": 128,
        "seed": 1,
    }
    assert len(sweeps) == 54 + 7


def test_the_budget_grid_is_the_cifar10_preset_for_every_method_and_ema():
    preset = Config.preset("cifar10")
    budget = grid("budget")
    assert {tags["method"] for tags, _ in budget.values()} == {
        "barlow",
        "barlow-ema",
        "byol",
        "simclr",
        "simsiam",
        "vicreg",
    }
    for tags, config in budget.values():
        assert (config.dataset, config.epochs, config.batch_size) == ("cifar10", 100, 128)
        # everything the preset sets but the method, its EMA, the EMA's starting rate, the seed,
        # and the kNN monitor, which the grids' recorded runs trained without
        changed = {"method", "ema", "tau_base", "data_dir", "out", "seed", "monitor_every"}
        assert config.monitor_every == 0
        for field in set(asdict(preset)) - changed:
            assert getattr(config, field) == getattr(preset, field), field
        assert config.ema == (tags["method"] == "barlow-ema")
        assert config.seed == tags["seed"]
    assert sorted(tags["seed"] for tags, _ in budget.values()) == [0] * 6 + [1] * 6


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
    lines = read_results(results_path(tmp_path, "shuffle", fast=True), fast=True)
    assert [line["name"] for line in lines] == only
    line = lines[0]
    assert line["config"]["shuffle_pixels"] and line["tags"]["colour"] == "colour jitter"
    assert 0 <= line["evaluation"]["learned"]["linear"] <= 1 and line["seconds"] > 0
    assert not (tmp_path / "shuffle-fast" / f"{only[0]}.lock").exists()
    assert run_grid("shuffle", tmp_path, fast=True, only=only, log=None, **data) == []


def test_a_run_locked_by_a_live_process_is_left_to_it_and_a_stale_lock_is_taken(tmp_path):
    data = {"shapes_dir": str(tmp_path.parent / "tinybt-data")}
    run = "byol-no-colour-jitter-seed0"
    lock = tmp_path / "shuffle-fast" / f"{run}.lock"
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
    assert not (tmp_path / "dimension-fast.jsonl").exists()
    for arguments, phrase in (
        (["run", "colours"], "invalid choice"),
        (["run", "all", "--only", "x"], "name that grid"),
        (["run", "methods", "--fast", "--only", "x", "--root", str(tmp_path)], "has no run x"),
    ):
        failed = subprocess.run([*EXPERIMENTS, *arguments], capture_output=True, text=True, env=env)
        message = failed.stderr.strip()
        assert failed.returncode == 2 and "\n" not in message and phrase in message, message


# ----- the grids' records -----
RUN = "barlow-colour-jitter-seed0"  # one run of the fast shuffle grid


def shapes(tmp_path):
    return {"shapes_dir": str(tmp_path.parent / "tinybt-data")}


def test_a_failed_run_is_reported_not_recorded_and_trained_once_fixed(tmp_path):
    bad = tmp_path / "not-a-folder"
    bad.write_text("a file where the shapes images should go")
    logged = []
    with pytest.raises(RunsFailed, match=f"1 run.*failed and are not recorded: {RUN}"):
        run_grid("shuffle", tmp_path, fast=True, only=[RUN], log=logged.append, shapes_dir=str(bad))
    assert any(entry.startswith("  failed: ") for entry in logged)
    assert read_results(results_path(tmp_path, "shuffle", fast=True), fast=True) == []
    assert run_grid("shuffle", tmp_path, fast=True, only=[RUN], log=None, **shapes(tmp_path)) == [
        RUN
    ]


def test_the_program_exits_non_zero_and_records_nothing_when_runs_fail(tmp_path):
    command = [*EXPERIMENTS, "run", "methods", "--only", "barlow-seed0", "--root", str(tmp_path)]
    failed = subprocess.run(
        [*command, "--cifar", str(tmp_path / "mistyped.tar.gz")], capture_output=True, text=True
    )
    assert failed.returncode == 1, failed.stderr
    assert failed.stderr.startswith("error: grid methods: 1 run(s) failed and are not recorded")
    assert "Traceback" not in failed.stderr
    assert read_results(results_path(tmp_path, "methods")) == []
    listed = subprocess.run([*command, "--dry-run"], capture_output=True, text=True)
    assert "1 to do" in listed.stdout, "a failed run is still to do"


def finished(name):
    """The smallest line a record takes: a finished run's name, tags and evaluation."""
    accuracies = {"knn": 0.5, "linear": 0.5}
    evaluation = {"learned": accuracies, "random_init": accuracies}
    return {"name": name, "tags": {"method": "barlow", "seed": 0}, "evaluation": evaluation}


@pytest.mark.parametrize(
    "tail, kept",
    [
        ('{"name": "torn', 1),  # a process killed while writing: cut off
        (json.dumps(finished("whole")), 2),  # complete, only its newline missing: kept
        ("", 1),
    ],
)
def test_every_append_starts_on_a_fresh_line(tmp_path, tail, kept):
    path = tmp_path / "grid.jsonl"
    path.write_text(json.dumps(finished("first")) + "\n" + tail)
    append_result(path, finished("next"))
    assert path.read_text().endswith(json.dumps(finished("next")) + "\n")
    assert [line["name"] for line in read_results(path)][-1] == "next"
    assert len(read_results(path)) == kept + 1


def _append_many(path, worker, count):
    for index in range(count):
        append_result(path, finished(f"{worker}-{index}"))


def test_processes_appending_together_lose_no_line(tmp_path):
    """Ten processes append 20 lines each to one record that starts with a torn tail: every
    line is there, once."""
    context = multiprocessing.get_context("fork")
    path = tmp_path / "grid.jsonl"
    path.write_text('{"name": "torn", "evalu')
    workers = [context.Process(target=_append_many, args=(path, w, 20)) for w in range(10)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert len(read_results(path)) == 200


def test_a_torn_record_does_not_swallow_the_next_run(tmp_path):
    path = results_path(tmp_path, "shuffle", fast=True)
    path.write_text('{"name": "byol-colour-jitter-seed0", "tags": {"meth')
    assert run_grid("shuffle", tmp_path, fast=True, only=[RUN], log=None, **shapes(tmp_path)) == [
        RUN
    ]
    assert [line["name"] for line in read_results(path, fast=True)] == [RUN]
    assert run_grid("shuffle", tmp_path, fast=True, only=[RUN], log=None, **shapes(tmp_path)) == []


def test_a_record_refuses_repeated_runs_and_failed_lines_do_not_count(tmp_path):
    path = tmp_path / "grid.jsonl"
    path.write_text('{"name": "a", "error": "diverged"}\n' + json.dumps(finished("a")) + "\n")
    assert [line["name"] for line in read_results(path)] == ["a"]
    append_result(path, finished("a"))
    with pytest.raises(TinyBTError, match="line 3 of .* repeats run a"):
        read_results(path)


def test_fast_results_are_kept_apart_from_the_real_grids(tmp_path):
    run_grid("shuffle", tmp_path, fast=True, only=[RUN], log=None, **shapes(tmp_path))
    fast_path = results_path(tmp_path, "shuffle", fast=True)
    assert fast_path.name == "shuffle-fast.jsonl" and (tmp_path / "shuffle-fast" / RUN).is_dir()
    assert not results_path(tmp_path, "shuffle").exists()
    assert read_results(fast_path, fast=True)[0]["fast"] is True
    results_path(tmp_path, "shuffle").write_text(fast_path.read_text())  # copied by hand
    with pytest.raises(TinyBTError, match="is a --fast run"):
        read_results(results_path(tmp_path, "shuffle"))


def test_a_checkpoint_of_another_configuration_is_not_resumed(tmp_path, monkeypatch):
    from tinybt.study import grids

    run_grid("shuffle", tmp_path, fast=True, only=[RUN], log=None, **shapes(tmp_path))
    results_path(tmp_path, "shuffle", fast=True).unlink()  # as if killed before recording
    base = grids.FAST_BASE
    monkeypatch.setattr(grids, "FAST_BASE", replace(base, epochs=2))  # the grid edited
    with pytest.raises(RunsFailed, match="not resumed: .* another configuration \\(epochs 1 "):
        run_grid("shuffle", tmp_path, fast=True, only=[RUN], log=None, **shapes(tmp_path))
    assert (tmp_path / "shuffle-fast" / RUN / "checkpoint.npz").exists(), "its folder is kept"
    monkeypatch.setattr(grids, "FAST_BASE", base)
    # the same configuration resumes the finished run: evaluated and recorded, no training
    assert run_grid("shuffle", tmp_path, fast=True, only=[RUN], log=None, **shapes(tmp_path)) == [
        RUN
    ]


def bad_roots(tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    folder_record = tmp_path / "folder-record"
    (folder_record / "shuffle-fast.jsonl").mkdir(parents=True)
    return [
        (["run", "shuffle", "--fast", "--root", str(a_file)], "is a file, not a folder"),
        (["verdicts", "--root", str(a_file)], "is a file, not a folder"),
        (["run", "shuffle", "--fast", "--root", str(folder_record)], "is a folder, not a grid"),
        (["run", "shuffle", "--fast", "--root", "/proc/tinybt"], "cannot write to --root"),
        (["run", "methods", "--fast", "--cifar", "x.tar.gz"], "drop --cifar"),
    ]


def test_bad_roots_and_options_are_refused_in_one_line(tmp_path):
    for arguments, phrase in bad_roots(tmp_path):
        failed = subprocess.run([*EXPERIMENTS, *arguments], capture_output=True, text=True)
        message = failed.stderr.strip()
        assert failed.returncode == 2 and "\n" not in message and phrase in message, message


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_root_is_refused_in_one_line(tmp_path):
    tmp_path.chmod(0o500)
    try:
        failed = subprocess.run(
            [*EXPERIMENTS, "run", "shuffle", "--fast", "--root", str(tmp_path)],
            capture_output=True,
            text=True,
        )
    finally:
        tmp_path.chmod(0o700)
    assert failed.returncode == 2 and "cannot write to --root" in failed.stderr


def test_the_fast_grids_give_every_claim_all_its_runs():
    """The fast grids (a tiny budget, fewer settings) still hold every run each claim reads,
    named and tagged as the claims look for them. (Notebook 10, in the slow tests, trains them
    all through `python -m tinybt.experiments` and finds no claim short of a run.)"""
    results = made_up_results(lambda tags: (0.5 + 0.01 * tags["seed"], 0.2), fast=True)
    readings = (verdicts, comparison.fifteen_epoch_verdicts, comparison.shapes_verdicts)
    for reading in readings:
        judged = reading(results, fast=True)
        assert all(v.runs and not v.missing for v in judged), [v.missing for v in judged]


def test_a_reading_where_no_method_learns_is_inconclusive_and_names_every_run():
    """One epoch teaches the fast grids' methods little: where no run gains `LEARNS`, every
    claim still comes out, inconclusive where it has nothing to compare, with the runs it
    left out named."""
    results = made_up_results(lambda tags: (0.25 + 0.01 * tags["seed"], 0.2), fast=True)
    for reading in (verdicts, comparison.fifteen_epoch_verdicts, comparison.shapes_verdicts):
        for v in reading(results, fast=True):
            assert v.unlearned and all(run in v.evidence for run in v.unlearned), v.evidence
            assert not set(v.used) & set(v.unlearned)
            assert v.verdict in (INCONCLUSIVE, NOT_SUPPORTED), (v.claim, v.evidence)


def test_the_verdicts_program_names_missing_runs(tmp_path):
    judged = subprocess.run(
        [*EXPERIMENTS, "verdicts", "--root", str(tmp_path)], capture_output=True, text=True
    )
    assert judged.returncode == 1
    assert "methods/barlow-seed0" in judged.stdout.splitlines()[-1]
    assert judged.stdout.count("verdict: inconclusive") == 8 + 3 + 3
    markdown = subprocess.run(
        [*EXPERIMENTS, "verdicts", "--markdown", "--root", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert markdown.returncode == 1
    assert markdown.stdout.startswith("| | the numbers | verdict |\n")


# ----- comparing -----
@pytest.mark.parametrize(
    "a, b, expected",
    [
        ([0.50], [0.45], "higher"),  # 5 points, one seed
        ([0.45], [0.50], "lower"),
        ([0.50], [0.49], "unclear"),  # 1 point, one seed: no telling
        ([0.50, 0.51], [0.30], "higher"),  # one side a single run: the 3 points count
        ([0.50, 0.51], [0.49, 0.50], "same"),  # 1 point, spread 0.7
        ([0.500, 0.502], [0.490, 0.492], "higher"),  # 1 point, spread 0.14
        ([0.40, 0.60], [0.45, 0.47], "unclear"),  # 4 points, spread 14
        ([0.40, 0.60], [0.30, 0.31], "unclear"),  # 20 points, but within twice the spread 14
        # the methods grid's VICReg against Barlow Twins: 2.9 points, spreads 0.9 and 1.1
        ([0.5152, 0.5280], [0.5005, 0.4848], "higher"),
        ([], [0.5], "missing"),
    ],
)
def test_compare_follows_the_one_rule(a, b, expected):
    assert compare(a, b) == expected


def test_trend_is_the_slope_per_doubling():
    assert trend([16, 64, 256, 1024], [0.30, 0.34, 0.38, 0.42]) == pytest.approx(0.02)


def test_a_sweep_is_fitted_seed_by_seed_and_quoted_as_mean_and_spread():
    """Seed 0 gains 2 points a doubling, seed 1 one point: gains over D = 16..128 (3 doublings)
    of 6 and 3 points, quoted as mean ± spread over the two seeds. Seed 2, at D = 16 alone, is
    not fitted."""
    barlow = [
        line(0.30 + slope * doublings, method="barlow", dimension=d, seed=seed)
        for seed, slope in ((0, 0.02), (1, 0.01))
        for doublings, d in enumerate((16, 32, 64, 128))
    ]
    barlow.append(line(0.30, method="barlow", dimension=16, seed=2))
    slopes, gains = comparison.fitted_gains(barlow, "barlow")
    assert slopes == {0: pytest.approx(0.02), 1: pytest.approx(0.01)}
    assert gains == {0: pytest.approx(0.06), 1: pytest.approx(0.03)}
    byol = [line(0.5, method="byol", dimension=d, seed=s) for s in (0, 1) for d in (16, 128)]
    evidence = comparison.claim_4(barlow + byol).evidence
    assert "gain is 4.5 ± 2.1 points (2 seeds) for Barlow Twins" in evidence, evidence
    assert "slope 1.5 ± 0.7 points per doubling (2 seeds)" in evidence, evidence


def line(accuracy, random_accuracy=0.2, name=None, **tags):
    tags.setdefault("seed", 0)
    evaluation = {"learned": {"linear": accuracy, "knn": accuracy}}
    evaluation["random_init"] = {"linear": random_accuracy, "knn": random_accuracy}
    return {"name": name or json.dumps(tags), "tags": tags, "evaluation": evaluation}


def made_up_results(accuracy, fast=False):
    """{grid: lines} for every run of the grids the claims read, named as the grids name
    them, with accuracy(tags) -> (learned, random encoder)."""
    return {
        name: [
            line(*accuracy(tags), name=run, **tags) for run, (tags, _) in grid(name, fast).items()
        ]
        for name in (
            "methods",
            "augmentations",
            "dimension",
            "shuffle-cifar",
            "sweeps-cifar",
            "methods-cifar60",
            "shuffle-cifar60",
        )
    }


def known_sweep(tags, drops=None, batch_drops=None, hybrid=None, curves=None, noise=None):
    """Made-up accuracies of the sweeps-cifar grid: 60% at the defaults; a drop per method
    without colour augmentations (`drops`), at batch 32 (`batch_drops`); Barlow Twins 2 points
    a doubling of D, BYOL flat at 55%, or `curves` {method: {D: accuracy}}; the hybrid `hybrid`
    {D: accuracy} (default: Barlow Twins'). Seed 1 is noise[method] (default 1 point) above
    seed 0, and seed 2 (the third seed of a few settings) as far below."""
    drops = drops or {"barlow": 0.20, "byol": 0.05, "simclr": 0.25, BARLOW_HYBRID: 0.05}
    batch_drops = batch_drops or {"barlow": 0.01, "simclr": 0.10, "byol": 0.02}
    method, d, seed = tags["method"], tags["dimension"], tags["seed"]
    barlow = 0.60 + 0.02 * (d.bit_length() - 10)  # 2 points a doubling, 60% at D = 512
    curve = {"barlow": barlow, "byol": 0.55, BARLOW_EMA: barlow + 0.01}
    curve.update({m: values[d] for m, values in (curves or {}).items()})
    accuracy = (hybrid or {}).get(d, barlow) if method == BARLOW_HYBRID else curve.get(method)
    accuracy = 0.60 if accuracy is None else accuracy
    if tags["augment"] == CROP_AND_FLIP:
        accuracy -= drops[method]
    if tags["batch"] == 32:
        accuracy -= batch_drops[method]
    return accuracy + (noise or {}).get(method, 0.01) * {0: 0, 1: 1, 2: -1}[seed], 0.2


def known_accuracy(tags):
    """Accuracies with known verdicts (see the test below)."""
    method, seed = tags["method"], tags["seed"]
    if "batch" in tags:
        return known_sweep(tags)
    if "colour" in tags:  # shuffled: 30% without jitter, at the random encoder's 25% with it
        return (0.30 if tags["colour"] == "no colour jitter" else 0.25) + 0.001 * seed, 0.25
    if "augment" in tags:
        drop = {"barlow": 0.20, "byol": 0.05}.get(method, 0.0) + 0.01 * seed
        return 0.60 - (drop if tags["augment"] == CROP_AND_FLIP else 0.0), 0.2
    if "dimension" in tags:
        steps = {16: 0, 64: 1, 256: 2, 1024: 3, 2048: 4}[tags["dimension"]]
        return {"barlow": 0.40 + 0.02 * steps, "byol": 0.55}.get(method, 0.41), 0.2
    return {"barlow": 0.60, BARLOW_NOSTD: 0.45, "vicreg": 0.40}.get(method, 0.5) + 0.002 * seed, 0.2


def test_verdicts_follow_the_numbers():
    judged = verdicts(made_up_results(known_accuracy))
    assert {v.claim: v.verdict for v in judged} == {
        1: SUPPORTED,  # sweeps-cifar's Barlow Twins 60%, not standardised 45%: 15 points
        2: SUPPORTED,  # Barlow Twins drops 20 points, BYOL 5
        3: NOT_SUPPORTED,  # shuffled 30% against real (sweeps-cifar, methods-cifar60) 40-60%
        4: SUPPORTED,  # +14 points for Barlow Twins, flat BYOL, BYOL 5 ahead at D = 16
        5: NOT_SUPPORTED,  # the EMA adds 1 point; BYOL stays 10 ahead
        6: NOT_SUPPORTED,  # VICReg 20 points below Barlow Twins
        7: SUPPORTED,  # Barlow Twins loses 1 point at batch 32 (seeds 1 apart), SimCLR 10
        8: NOT_SUPPORTED,  # the hybrid is Barlow Twins' curve: 5 below BYOL at D = 16
    }
    assert all(v.statement == comparison.CLAIMS[v.claim] for v in judged)
    assert all(v.runs and not v.missing and not v.unlearned for v in judged)
    at_15 = comparison.fifteen_epoch_verdicts(made_up_results(known_accuracy))
    assert {v.claim: v.verdict for v in at_15} == {
        1: SUPPORTED,  # the methods grid: 60% against 45%
        3: NOT_SUPPORTED,  # shuffled 30% against real 50-60%
        6: NOT_SUPPORTED,  # VICReg 20 points below Barlow Twins
    }
    assert all(run.startswith(("methods/", "shuffle-cifar/")) for v in at_15 for run in v.runs)
    on_shapes = comparison.shapes_verdicts(made_up_results(known_accuracy))
    assert {v.claim: v.verdict for v in on_shapes} == {
        2: SUPPORTED,  # Barlow Twins drops 20.5 points, BYOL 5.5
        4: SUPPORTED,  # +8 points for Barlow Twins, flat BYOL, BYOL ahead at D = 16
        5: NOT_SUPPORTED,  # the EMA adds 1 point; BYOL stays 14 ahead
    }


def sweeps(**known):
    """The sweeps-cifar grid's lines, with known_sweep(tags, **known) accuracies."""
    return [
        line(*known_sweep(tags, **known), name=run, **tags)
        for run, (tags, _) in grid("sweeps-cifar").items()
    ]


def found_parts(judged):
    """The outcome of each part of a claim judged in parts, from its evidence."""
    return tuple(p.rsplit(", ", 1)[1] for p in judged.evidence.rsplit(". ", 1)[1].split("; "))


ON_D = {16: 0.50, 64: 0.54, 512: 0.60, 2048: 0.64}  # Barlow Twins' made-up curve: 50% to 64%


@pytest.mark.parametrize(
    "curves, byol_noise, expected, parts",
    [
        # +14 points for Barlow Twins, BYOL flat at 55%: 5 points ahead at D = 16
        ({}, 0.01, SUPPORTED, ("holds", "holds", "holds")),
        # BYOL level with Barlow Twins at D = 16 (seeds 1 point apart): it does not win there
        ({"byol": {**dict.fromkeys(ON_D, 0.55), 16: 0.505}}, 0.01, NOT_SUPPORTED,
         ("holds", "holds", "fails")),
        # Barlow Twins flat at 50%, a point lower at D = 512 (its seeds' gains are the same, no
        # spread, so a gain of exactly none would be "higher" or "lower" by float rounding)
        ({"barlow": {**dict.fromkeys(ON_D, 0.50), 512: 0.49}}, 0.01, NOT_SUPPORTED,
         ("fails", "holds", "holds")),
        # BYOL rises with Barlow Twins, 5 points above it at every D
        ({"byol": {d: a + 0.05 for d, a in ON_D.items()}}, 0.01, NOT_SUPPORTED,
         ("holds", "fails", "holds")),
        # BYOL 7.5 points ahead at D = 16, but its seeds 6 points apart: unclear
        ({}, 0.06, INCONCLUSIVE, ("holds", "holds", "unclear")),
    ],
)  # fmt: skip
def test_claim_4_says_which_of_its_parts_hold(curves, byol_noise, expected, parts):
    lines = [
        line
        for line in sweeps(curves=curves, noise={"byol": byol_noise})
        if line["tags"]["augment"] == ALL_AUGMENTATIONS and line["tags"]["batch"] == 128
    ]
    judged = comparison.claim_4(lines)
    assert judged.verdict == expected
    assert found_parts(judged) == parts


@pytest.mark.parametrize(
    "batch_drops, expected, parts",
    [
        ({"barlow": 0.01, "simclr": 0.10, "byol": 0.02}, SUPPORTED, ("holds", "holds")),
        # Barlow Twins drops 8 points: SimCLR's 10 is more, but Barlow Twins does not hold
        ({"barlow": 0.08, "simclr": 0.10, "byol": 0.02}, NOT_SUPPORTED, ("fails", "holds")),
        # nothing drops: Barlow Twins holds, SimCLR does not drop more
        ({"barlow": 0.00, "simclr": 0.00, "byol": 0.00}, NOT_SUPPORTED, ("holds", "fails")),
        # SimCLR gains at the small batch, Barlow Twins holds
        ({"barlow": 0.00, "simclr": -0.10, "byol": 0.00}, NOT_SUPPORTED, ("holds", "fails")),
        # Barlow Twins 4 points lower at batch 32, but its seeds 6 points apart: unclear (its
        # drop, paired by seed, is still 4 points, under SimCLR's 10)
        ({"barlow": 0.04, "simclr": 0.10, "byol": 0.02}, INCONCLUSIVE, ("unclear", "holds")),
    ],
)
def test_claim_7_reads_barlow_twins_drop_at_small_batch_against_simclrs(
    batch_drops, expected, parts
):
    noise = {"barlow": 0.06 if expected == INCONCLUSIVE else 0.01}
    judged = comparison.claim_7(sweeps(batch_drops=batch_drops, noise=noise))
    assert judged.verdict == expected
    assert found_parts(judged) == parts


@pytest.mark.parametrize(
    "hybrid, hybrid_drop, expected, parts",
    [
        # BYOL's 55% at D = 16, above Barlow Twins' 64% at D = 2048, BYOL's drop: all hold
        ({16: 0.55, 2048: 0.72}, 0.05, SUPPORTED, ("holds", "holds", "holds")),
        ({16: 0.55, 2048: 0.60}, 0.05, NOT_SUPPORTED, ("fails", "holds", "holds")),
        ({16: 0.55, 2048: 0.72}, 0.20, NOT_SUPPORTED, ("holds", "fails", "holds")),
        ({16: 0.48, 2048: 0.72}, 0.05, NOT_SUPPORTED, ("holds", "holds", "fails")),
        # 4.5 points under BYOL at D = 16 over two seeds (4 over three), but the hybrid's seeds
        # 6 points apart: unclear
        ({16: 0.46, 2048: 0.72}, 0.05, INCONCLUSIVE, ("holds", "holds", "unclear")),
    ],
)
def test_claim_8_holds_only_where_every_part_of_it_holds(hybrid, hybrid_drop, expected, parts):
    drops = {"barlow": 0.20, "byol": 0.05, "simclr": 0.25, BARLOW_HYBRID: hybrid_drop}
    noise = {BARLOW_HYBRID: 0.06 if expected == INCONCLUSIVE else 0.01}
    judged = comparison.claim_8(sweeps(hybrid=hybrid, drops=drops, noise=noise))
    assert judged.verdict == expected
    assert found_parts(judged) == parts


def test_missing_results_are_inconclusive_and_named():
    """With no records every claim waits for all its runs of seeds 0 and 1; a further seed
    is read where it has a record, and not waited for."""
    judged = verdicts({})
    assert {v.verdict for v in judged} == {INCONCLUSIVE}
    for v in judged:
        first_seeds = tuple(run for run in v.runs if not run.endswith("-seed2"))
        assert v.missing == first_seeds and "missing" in v.evidence and not v.used


def test_a_third_seed_is_read_where_recorded():
    """Seed 2 of BYOL at D = 16 far over its seeds 0 and 1 (55%, 56%): BYOL's lead at D = 16
    (5 points over two seeds) becomes unclear over three (9 points, a spread of 8), and the
    claims table says that a third seed turned claim 4, which seeds 0 and 1 alone support."""
    results = made_up_results(known_accuracy)
    seed2 = [line for line in results["sweeps-cifar"] if line["tags"]["seed"] == 2]
    assert {line["tags"]["method"] for line in seed2} >= {"barlow", "byol", "simclr"}
    assert verdicts(results)[3].verdict == SUPPORTED
    for line_ in seed2:
        if line_["tags"]["method"] == "byol":
            line_["evaluation"]["learned"]["linear"] = 0.70
    assert "byol-d16-seed2" in " ".join(verdicts(results)[3].used)
    assert verdicts(results)[3].verdict == INCONCLUSIVE
    assert comparison.two_seed_verdicts(results)[3].verdict == SUPPORTED
    _, verdict = comparison.table_cells(results)[4]
    turned = "a third seed turns it: seeds 0 and 1 alone give supported"
    assert verdict == f"inconclusive; shapes: supported; {turned}"


def test_a_run_whose_method_does_not_learn_is_left_out_and_named():
    """Barlow Twins' seed 1 at 9 points over its random encoder: claim 1 is judged from seed 0
    alone and names seed 1. VICReg under the bar in both seeds: claim 6 has no VICReg to
    judge, and the claims table says what it would be with them counted. Barlow Twins without
    standardisation is what claim 1 expects not to learn, so it counts however little it
    gains."""
    results = made_up_results(known_accuracy)
    for line_ in results["sweeps-cifar"] + results["methods-cifar60"]:
        tags, random_init = line_["tags"], line_["evaluation"]["random_init"]
        if tags["method"] in ("vicreg", BARLOW_NOSTD) or line_["name"] == "barlow-seed1":
            random_init["linear"] = line_["evaluation"]["learned"]["linear"] - 0.09
    claim_1, claim_6 = verdicts(results)[0], verdicts(results)[5]
    assert claim_1.verdict == SUPPORTED and claim_1.unlearned == ("sweeps-cifar/barlow-seed1",)
    assert "without sweeps-cifar/barlow-seed1 (+9.0)" in claim_1.evidence
    assert "standardised 60.0% (1 run)" in claim_1.evidence
    assert claim_6.verdict == INCONCLUSIVE and "VICReg no runs" in claim_6.evidence
    assert set(claim_6.unlearned) == {
        "sweeps-cifar/barlow-seed1",
        "methods-cifar60/vicreg-seed0",
        "methods-cifar60/vicreg-seed1",
    }
    counted = comparison.every_run_verdicts(results)[5]
    assert counted.verdict != INCONCLUSIVE and not counted.unlearned
    _, verdict = comparison.table_cells(results)[6]
    turned = f"; the runs under the bar turn it: counted, they give {counted.verdict}"
    assert verdict.endswith(turned)
    assert comparison.held_to_learn({"method": "barlow", "augment": ALL_AUGMENTATIONS})
    assert not comparison.held_to_learn({"method": "barlow", "augment": CROP_AND_FLIP})
    assert not comparison.held_to_learn({"method": "byol", "colour": "colour jitter"})


def test_a_partial_grid_gives_no_firm_verdict():
    """Two of shuffle-cifar60's runs (and the rest of every grid): claim 3 is not judged
    on them, and names the others."""
    results = made_up_results(known_accuracy)
    results["shuffle-cifar60"] = results["shuffle-cifar60"][:2]
    claim_3 = verdicts(results)[2]
    assert claim_3.verdict == INCONCLUSIVE
    assert len(claim_3.missing) == len(grid("shuffle-cifar60")) - 2
    for run in claim_3.missing:
        assert run.startswith("shuffle-cifar60/") and run in claim_3.evidence


def test_a_verdict_reads_only_the_runs_its_claim_needs():
    """A stray line (a run no grid defines) changes nothing."""
    results = made_up_results(known_accuracy)
    results["methods-cifar60"].append(line(0.01, name="vicreg-seed7", method="vicreg", seed=7))
    assert [v.verdict for v in verdicts(results)] == [
        v.verdict for v in verdicts(made_up_results(known_accuracy))
    ]


CLAIMS = Path(__file__).resolve().parent.parent / "docs" / "CLAIMS.md"  # the claims, the budget


def committed_records():
    root = Path(__file__).resolve().parent.parent / "results" / "experiments"
    return {name: read_results(results_path(root, name)) for name in GRIDS}


def claims_table_rows(path):
    """{claim: its row's cells} of the file's table whose rows start "| <claim> | " and that
    has a column "the numbers"."""
    text = path.read_text()
    table = text[text.index("| | the numbers | verdict |") :].split("\n\n")[0]
    rows = [row for row in table.splitlines() if re.match(r"\| \d \| ", row)]
    return {int(row.split(" | ")[0].strip("| ")): row for row in rows}


def test_the_claims_table_is_the_one_the_committed_records_give():
    """Every number and verdict of docs/CLAIMS.md's claims table is what the committed records
    give, rounded as the table rounds it: each row is the one `experiments verdicts --markdown`
    prints, character for character. The README's line of verdicts is theirs too."""
    results = committed_records()
    table = comparison.table(results)
    quoted = claims_table_rows(CLAIMS)
    assert sorted(quoted) == list(range(1, 9))
    for claim, row in zip(range(1, 9), table[2:], strict=True):
        assert quoted[claim] == row, f"claim {claim}: the records give\n{row}"
    readme = " ".join((CLAIMS.parent.parent / "README.md").read_text().split())
    assert comparison.summary(results) in readme
    on_shapes = comparison.shapes_verdicts(results)
    assert all(not v.missing for v in on_shapes)


BUDGET_ROWS = {
    "Barlow Twins": "barlow",
    "Barlow Twins `--ema`": "barlow-ema",
    "BYOL": "byol",
    "SimCLR": "simclr",
    "VICReg": "vicreg",
    "SimSiam": "simsiam",
}  # docs/CLAIMS.md's budget table: its label of each variant of the budget grid


def in_points(values, percent):
    """A table cell: the mean over seeds in points, "± spread" where there are two or more."""
    mean, spread = comparison.mean_and_spread(values)
    cell = f"{100 * mean:.1f}%" if percent else f"{100 * mean:+.1f}"
    return cell if spread is None else f"{cell} ± {100 * spread:.1f}"


def test_the_budget_table_gives_the_budget_records():
    """Every method at the preset's budget, as docs/CLAIMS.md's table quotes it: kNN, linear probe
    and the gain over the random encoder, mean ± spread over the committed runs."""
    root = Path(__file__).resolve().parent.parent / "results" / "experiments"
    budget = read_results(results_path(root, "budget"))
    claims = CLAIMS.read_text()
    table = claims[claims.index("| method, 100 epochs |") :].split("\n\n")[0].splitlines()[2:]
    quoted = {row.split(" | ")[0].strip("| "): row.strip("| ").split(" | ")[1:] for row in table}
    assert sorted(quoted) == sorted(BUDGET_ROWS)
    for label, variant in BUDGET_ROWS.items():
        lines = [line for line in budget if line["tags"]["method"] == variant]
        knn = [line["evaluation"]["learned"]["knn"] for line in lines]
        rows = comparison.gains(lines)  # (method, linear, random encoder's, gain) per run
        linear, gain = [row[1] for row in rows], [row[3] for row in rows]
        expected = [in_points(knn, True), in_points(linear, True), in_points(gain, False)]
        assert quoted[label] == expected, label


def test_a_group_is_quoted_as_accuracies_and_a_drop_in_points():
    """The sample standard deviation of 0.532 and 0.518 is 0.0099: "± 1.0" in points."""
    assert comparison.describe([0.532, 0.518]) == "52.5% ± 1.0 (2 seeds)"
    assert comparison.describe([0.532]) == "53.2% (1 run)"
    assert comparison.describe_drop([0.136, 0.122]) == "12.9 ± 1.0 points (2 seeds)"
    assert comparison.describe_drop([-0.018]) == "-1.8 points (1 run)"
    assert comparison.describe_drop([]) == "no runs"


def test_gains_are_measured_from_each_runs_random_encoder():
    lines = [
        line(0.55, 0.40, method="byol"),
        line(0.45, 0.39, method="simclr"),
    ]
    rows = comparison.gains(lines)
    assert [r[0] for r in rows] == ["byol", "simclr"]
    assert rows[0][1:] == (0.55, 0.40, pytest.approx(0.15))
    assert rows[1][3] == pytest.approx(0.06) and rows[1][3] < comparison.LEARNS


def test_the_claims_page_and_notebook_10_quote_the_rule_as_the_code_states_it():
    """One definition of when two results differ: comparison's docstring, quoted verbatim."""
    docstring = comparison.__doc__
    start = docstring.index("    Two groups of accuracies differ")
    rule = " ".join(docstring[start : docstring.index("unclear.", start) + 8].split())
    repository = Path(__file__).resolve().parent.parent
    claims = " ".join(CLAIMS.read_text().replace("\n>", "\n").split())
    notebook = json.loads((repository / "notebooks" / "10_comparison.ipynb").read_text())
    markdown = " ".join(
        "".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "markdown"
    )
    assert rule in claims and rule in " ".join(markdown.split())


@pytest.mark.parametrize(
    "arguments",
    [["run", "all", "--fast", "--dry-run"], ["verdicts"]],
    ids=["run", "verdicts"],
)
def test_output_piped_into_a_reader_that_stops_early_gives_no_traceback(tmp_path, arguments):
    command = " ".join([*EXPERIMENTS, *arguments, "--root", str(tmp_path)])
    for reader in ("head -1", "true"):  # `true` stops before the program has written a line
        piped = subprocess.run(
            ["bash", "-c", f"{command} 2>{tmp_path / 'stderr'} | {reader}"], capture_output=True
        )
        assert piped.returncode == 0 and len(piped.stdout.splitlines()) <= 1
        assert (tmp_path / "stderr").read_text() == ""


# A method registered before the study is imported: the program's output and every grid, as JSON.
WITH_A_NEW_METHOD = """
import dataclasses, json, sys
from tinybt.methods import METHODS
if sys.argv[1] == "register":
    METHODS["throwaway"] = dataclasses.replace(METHODS["simclr"], name="throwaway")
from tinybt.experiments import main
from tinybt.study.grids import GRIDS, grid
try:
    main(["verdicts"])
except SystemExit as stop:
    print("exit", stop.code)
grids = {name: {run: [tags, dataclasses.asdict(c)] for run, (tags, c) in grid(name).items()}
         for name in GRIDS}
print(json.dumps(grids, sort_keys=True))
"""


def test_registering_a_method_changes_no_grid_and_no_verdict():
    """The review's methods are pinned in the study: a fifth method in the registry joins no
    grid, so the committed records give the same eight verdicts."""

    def output(register):
        return subprocess.run(
            [sys.executable, "-c", WITH_A_NEW_METHOD, register],
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    before, after = output("no"), output("register")
    assert before.count("  verdict: ") >= 8, before
    assert after == before
