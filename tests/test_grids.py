"""The grids' runs, pinned: every grid's run names in order, their tags and their configurations
as the grids defined them when the records in results/experiments/ were made. The records are
keyed by run name and configuration, and the runner takes a grid's runs in order, so a change to
how the grids are written must leave all three as they were; a grid grows only at its end.
Then the runs added since: two grids at sweeps-cifar's budget, and a third seed in sweeps-cifar.

grids_before.json holds, for each grid and its --fast version, the first run's configuration
("base") and each run as [name, tags, the configuration's fields that differ from the base].
"""

import json
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from tinybt.config import Config, has_target
from tinybt.study.grids import FAST_TAU_BASE, GRIDS, METHOD_NAMES, NO_COLOUR, TAU_BASE, grid
from tinybt.study.tags import BARLOW_HYBRID, BARLOW_NOSTD, JITTER, NO_JITTER

pytestmark = pytest.mark.host

PINNED = json.loads((Path(__file__).parent / "grids_before.json").read_text())
APPENDED = {"sweeps-cifar": 7}  # runs added after the pinned ones: the third seed


@pytest.mark.parametrize("key", PINNED)
def test_every_pinned_grid_has_its_runs_in_order_with_their_tags_and_configs(key):
    name, fast = key.removesuffix("-fast"), key.endswith("-fast")
    runs = grid(name, fast)
    base = PINNED[key]["base"]
    expected = [(run, tags, {**base, **changes}) for run, tags, changes in PINNED[key]["runs"]]
    # through JSON, as the records hold them (tuples become lists)
    actual = json.loads(json.dumps([(run, tags, asdict(c)) for run, (tags, c) in runs.items()]))
    assert len(actual) == len(expected) + APPENDED.get(key, 0)
    actual = actual[: len(expected)]
    assert [run for run, _, _ in actual] == [run for run, _, _ in expected]
    for (run, tags, config), (_, pinned_tags, pinned_config) in zip(actual, expected, strict=True):
        assert list(tags.items()) == list(pinned_tags.items()), run  # the tags' order too
        assert config == pinned_config, run


def sweeps_default(seed):
    """sweeps-cifar's default run of Barlow Twins (every augmentation, D = 512, batch 128)."""
    return grid("sweeps-cifar")[f"barlow-seed{seed}"][1]


def with_target(config):
    """`config` with the grids' τ_base where it has a target, as the grids give it."""
    return replace(config, tau_base=TAU_BASE) if has_target(config) else config


def test_methods_cifar60_is_sweeps_cifars_default_run_but_for_the_method():
    runs = grid("methods-cifar60")
    assert list(runs) == [
        f"{method}-seed{seed}" for method in (BARLOW_NOSTD, "vicreg") for seed in (0, 1)
    ]
    for run, (tags, config) in runs.items():
        assert list(tags) == ["method", "seed"], run
        changes = {"standardize": False} if tags["method"] == BARLOW_NOSTD else {"method": "vicreg"}
        assert config == with_target(replace(sweeps_default(tags["seed"]), **changes)), run


def test_shuffle_cifar60_is_sweeps_cifars_default_run_with_pixels_shuffled():
    runs = grid("shuffle-cifar60")
    assert len(runs) == 16 and next(iter(runs)).startswith("byol-")  # the longest first
    # named and tagged as shuffle-cifar's runs, for both seeds
    shuffle_cifar = grid("shuffle-cifar")
    assert set(shuffle_cifar) < set(runs)
    for run, (tags, config) in runs.items():
        assert list(tags) == ["method", "colour", "seed"], run
        assert tags["method"] in METHOD_NAMES and tags["seed"] in (0, 1), run
        if tags["seed"] == 0:
            assert shuffle_cifar[run][0] == tags, run
        colour = {JITTER: {}, NO_JITTER: NO_COLOUR}[tags["colour"]]
        expected = replace(
            sweeps_default(tags["seed"]),
            method=tags["method"],
            shuffle_pixels=True,
            augment_changes=colour,
        )
        assert config == with_target(expected), run
    assert {tags["method"] for tags, c in runs.values() if c.tau_base == TAU_BASE} == {"byol"}


def test_sweeps_cifars_third_seed_repeats_three_tied_settings_after_every_other_run():
    runs = grid("sweeps-cifar")
    third = list(runs)[-7:]
    assert sorted(third) == sorted(
        [
            "barlow-d16-seed2",
            "byol-d16-seed2",
            f"{BARLOW_HYBRID}-d16-seed2",
            "barlow-b32-seed2",
            "simclr-b32-seed2",
            "barlow-b256-seed2",
            "simclr-b256-seed2",
        ]
    )
    assert [run for run, (tags, _) in runs.items() if tags["seed"] == 2] == third
    for run in third:
        tags, config = runs[run]
        seed0_tags, seed0_config = runs[run.replace("seed2", "seed0")]
        assert tags == {**seed0_tags, "seed": 2}, run
        assert config == replace(seed0_config, seed=2), run


@pytest.mark.parametrize("name", GRIDS)
def test_every_fast_grid_is_tiny_and_tagged_as_its_real_grid(name):
    real, fast = grid(name), grid(name, fast=True)
    assert fast
    real_keys = {tuple(tags) for tags, _ in real.values()}
    for run, (tags, config) in fast.items():
        assert tuple(tags) in real_keys, run
        assert (config.dataset, config.epochs, config.widths) == (
            "shapes",
            1,
            Config.preset("tiny").widths,
        )
        assert tags["seed"] == 0 and config.seed == 0, run
        assert config.tau_base == (FAST_TAU_BASE if has_target(config) else Config().tau_base), run
        # the grid's own changes are kept: pixels shuffled where its runs shuffle them
        assert config.shuffle_pixels == next(iter(real.values()))[1].shuffle_pixels, run


@pytest.mark.parametrize("name", ["methods-cifar60", "shuffle-cifar60"])
def test_the_new_grids_fast_runs_are_some_of_their_real_runs(name):
    real, fast = grid(name), grid(name, fast=True)
    for run, (tags, _) in fast.items():
        assert real[run][0] == tags, run
