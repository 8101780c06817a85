"""The grids' runs, pinned: every grid's run names in order, their tags and their configurations
as the grids defined them when the records in results/experiments/ were made. The records are
keyed by run name and configuration, and the runner takes a grid's runs in order, so a change to
how the grids are written must leave all three as they were.

grids_before.json holds, for each grid and its --fast version, the first run's configuration
("base") and each run as [name, tags, the configuration's fields that differ from the base].
"""

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from tinybt.study.grids import grid

pytestmark = pytest.mark.host

PINNED = json.loads((Path(__file__).parent / "grids_before.json").read_text())


@pytest.mark.parametrize("key", PINNED)
def test_every_pinned_grid_has_its_runs_in_order_with_their_tags_and_configs(key):
    name, fast = key.removesuffix("-fast"), key.endswith("-fast")
    runs = grid(name, fast)
    base = PINNED[key]["base"]
    expected = [(run, tags, {**base, **changes}) for run, tags, changes in PINNED[key]["runs"]]
    # through JSON, as the records hold them (tuples become lists)
    actual = json.loads(json.dumps([(run, tags, asdict(c)) for run, (tags, c) in runs.items()]))
    assert [run for run, _, _ in actual] == [run for run, _, _ in expected]
    for (run, tags, config), (_, pinned_tags, pinned_config) in zip(actual, expected, strict=True):
        assert list(tags.items()) == list(pinned_tags.items()), run  # the tags' order too
        assert config == pinned_config, run
