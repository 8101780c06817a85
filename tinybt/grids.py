"""The experiments that test the review's claims: named grids of runs, and running
them so that a grid can stop and resume across sessions and run in several processes at once.

    budget         the cifar10 preset as it stands (100 epochs), on the CIFAR-10 subset, for
                   each method and Barlow Twins --ema, seeds 0 and 1: whether every method
                   learns at the preset's budget (10 points linear over its random encoder)
    methods        (a) the four methods, and Barlow Twins without standardisation (claims 1
                   and 6), on the CIFAR-10 subset with the cifar10 preset's encoder,
                   projector and augmentations, the same budget for each, seeds 0 and 1
    augmentations  (b) all augmentations / no colour jitter / no grayscale / crop and flip
                   only, for each method (claim 2), shapes; seeds 0 and 1 for "all" and
                   "crop and flip only" (the two the verdict compares), seed 0 for the others
    dimension      (c) projector output D = 16, 64, 256, 1024, 2048 (hidden layers 256) for
                   Barlow Twins (λ = 0.0051 and λ = 1/D), Barlow Twins --ema, BYOL and
                   VICReg (claims 4 and 5), shapes, seed 0
    shuffle-cifar  (d) pixels shuffled (--shuffle-pixels), with colour jitter and with no
                   colour distortion, for each method (claim 3), on the CIFAR-10 subset as
                   the methods grid runs it (its runs are the real-image reference), seed 0
    shuffle        (d) the same on the shapes data, seeds 0 and 1: the control, since the
                   shapes' colours say nothing of their class, so shuffled pixels should
                   leave every method at chance
    sweeps-cifar   (e) on the CIFAR-10 subset, seeds 0 and 1, at one budget (below): all
                   augmentations / crop and flip only for Barlow Twins, BYOL, SimCLR and the
                   hybrid (claims 2 and 8); projector output D = 16, 64, 512, 2048 (hidden
                   layers 512) for Barlow Twins, BYOL, Barlow Twins --ema and the hybrid
                   (claims 4, 5 and 8); batch 32, 128, 256 for Barlow Twins, SimCLR and BYOL
                   (claim 7). The hybrid is Barlow Twins --ema --predictor, the nearest tinybt
                   comes to the review's proposal. The default run (D = 512, every
                   augmentation, batch 128) is one run in all three sweeps.

The augmentations and dimension grids on the shapes data decided claims 2, 4 and 5 before
sweeps-cifar existed; they are kept as a second, synthetic reading of the same claims.

The budget: the comparison grids (all but `budget`) in about two hours on a 2-core CPU, as two
processes with one BLAS thread each, so 2 x 7,200 = 14,400 process-seconds. Measured with one
thread on a shared 2-core machine: an epoch of the CIFAR-10 subset (5,170 images, the cifar10
preset) takes about 21 s for Barlow Twins, 20 s for SimCLR, 22 s for VICReg, 26 s for BYOL
(the target's forward), and evaluating a run (kNN and linear probe, learned and random
encoders) about 25 s; an epoch of the shapes preset (5,000 images) about 5 s for Barlow Twins,
SimCLR and VICReg, 7 s for BYOL and --ema, 9-16 s at D = 2048, and evaluation about 5 s.

    budget          5 runs x (100 epochs x ~23 s + 25 s)   ~11,600 s
    methods        10 runs x (15 epochs x ~22 s + 25 s)    ~ 3,550 s
    augmentations  24 runs x (20 epochs x ~5.8 s + 5 s)    ~ 2,900 s
    dimension      25 runs x (20 epochs x ~8 s + 5 s)      ~ 4,100 s
    shuffle        16 runs x (20 epochs x ~5.8 s + 5 s)    ~ 1,950 s
    shuffle-cifar   8 runs x (15 epochs x ~21 s + 25 s)    ~ 2,700 s
                                                   the comparison grids: ~15,200 s, 2 h
                                                   10 min as two processes; budget another
                                                   1 h 40 min. Measured when they ran: the
                                                   comparison grids 11,570 s, 1 h 36 min
                                                   as two processes; budget's runs 1,365 s
                                                   (SimCLR) to 1,869 s (BYOL) each

The sweeps-cifar grid's budget, from a pilot of BYOL (the method slowest to gain over its
random encoder) on the CIFAR-10 subset, seed 0, one BLAS thread: the cifar10 encoder
(32-64-128-256) for 30 epochs reached 48.7% linear against its random encoder's 39.3 (+9.4,
short of the 10 points every compared method must gain); half its width (16-32-64-128) for 60
epochs reached 48.2% against 36.0 (+12.2) at the same cost, an epoch being twice as fast. So:
the narrow encoder, 60 epochs. An epoch of it takes about 12.6 s for BYOL with one thread on a
quiet machine, less for the methods without a target, more at D = 2048 or batch 32; with
evaluation, about 700 s a run on average:

    sweeps-cifar   54 runs x ~700 s                        ~37,800 s
    budget, seed 1  5 runs x 1,365-1,869 s (seed 0's)       ~ 8,300 s
                                                   ~46,000 s: about 6 h 20 min as two
                                                   processes, spread over sessions. Measured
                                                   when they ran: sweeps-cifar's runs 41,700
                                                   s (a few resumed from a checkpoint count
                                                   only their last part), budget's seed 1
                                                   12,200 s (beside other work, 2,069-2,936
                                                   s a run): about 7 h 30 min as two
                                                   processes

What sweeps-cifar cuts to fit: "no colour jitter" alone (crop and flip only is the removal
claim 2 is judged on); D beyond 2048 (the paper goes to 16,384) and the hidden layers' width
(the paper widens them with D); batch sizes beyond 32-256; the encoder's width and epochs,
as the pilot says. Every setting it compares has two seeds.

What was cut to fit the older grids: the cifar10 preset trains 100 epochs, the methods grid 15
(the verdicts are about short runs: BYOL in particular is known to need long training); the
sweeps run on the shapes data (colour a label-independent nuisance) for 20 of the shapes
preset's 50 epochs, except the pixel-shuffle test, which needs images whose colours say
something of their class and so runs on CIFAR-10 too, with one seed; the dimension sweep has
one seed (its verdicts read the trend over five D, not one difference), varies only the last
layer (the paper widens the whole projector) and stops at 2048 (the paper goes to 16,384); "no
colour jitter" and "no grayscale" have one seed; the EMA rate starts at τ_base = 0.99 (solo-
learn's CIFAR value) rather than BYOL's 0.996, which suits hundreds of thousands of steps, not
the grids' 600 to 4,000.

`--fast` (tests, notebook 10's fast configuration): the tiny preset on the shapes data, 1
epoch, a few runs per grid, the same names and tags, so that everything downstream runs in
seconds. Its records and folders are its own (<grid>-fast.jsonl, <grid>-fast/), and each of
its lines says "fast": true, which `read_results` checks: a fast run never counts as a run of
the real grid.

Each run is trained in its own folder, <root>/<grid>/<name>/, and the grid's record is
<root>/<grid>.jsonl, under one rule: one JSON line per finished, evaluated run (its name, tags,
configuration, last epoch's metrics, evaluation and seconds), unique by name, read back
tolerant of a torn last line and checked against one schema (`check_record`). So:
- a run whose line is there is done and skipped; a run another process is training holds a
  lock file, <root>/<grid>/<name>.lock (tinybt/runfolder.py), and is skipped too;
- a run that fails (its data cannot be read, training diverges) writes no line: it is reported,
  the other runs go on, and the command ends with an error naming it;
- a run interrupted half-way resumes from its checkpoint, if the checkpoint was made with the
  run's configuration; otherwise the run is refused (a failure, as above) and its folder kept;
- a torn last line (a process killed while writing it) is cut off before the next line is
  appended, and every line is appended whole, on a fresh line (a write a full disk cuts short
  is cut back off).
"""

import errno
import json
import math
import os
import time
from dataclasses import asdict, replace
from pathlib import Path

from tinybt.checkpoint import load_checkpoint
from tinybt.errors import TinyBTError
from tinybt.methods import METHODS
from tinybt.recipe import Config
from tinybt.run import train
from tinybt.runfolder import claim, held_by_another, numbered_lines, release, wait_to_hold
from tinybt.tags import (
    ALL_AUGMENTATIONS,
    BARLOW_EMA,
    BARLOW_HYBRID,
    BARLOW_INVERSE_D,
    BARLOW_NOSTD,
    CROP_AND_FLIP,
    JITTER,
    NO_GRAYSCALE,
    NO_JITTER,
)

GRIDS = (
    "budget",
    "methods",
    "augmentations",
    "dimension",
    "shuffle",
    "shuffle-cifar",
    "sweeps-cifar",
)
METHOD_NAMES = tuple(METHODS)  # every registered method, in the registry's order
CIFAR_EPOCHS = 15  # every run of methods and shuffle-cifar (the cifar10 preset: 100)
SHAPES_EPOCHS = 20  # every run of the shapes grids (the shapes preset: 50)
SEEDS = (0, 1)
DIMENSIONS = (16, 64, 256, 1024, 2048)
TAU_BASE = 0.99  # solo-learn's CIFAR BYOL value: short runs need a target that moves
CIFAR_SUBSET = "../shared/datasets/cifar-10-python-subset.tar.gz"  # from the repository root

# What the augmentation grid removes, on top of the preset's own changes (its crop scale).
REMOVALS = {
    ALL_AUGMENTATIONS: {},
    NO_JITTER: {"jitter_p": 0.0},
    NO_GRAYSCALE: {"grayscale_p": 0.0},
    CROP_AND_FLIP: {"jitter_p": 0.0, "grayscale_p": 0.0, "solarize_p": 0.0},
}
NO_COLOUR = {"jitter_p": 0.0, "grayscale_p": 0.0}  # the shuffle grid's "without colour jitter"

# The sweeps-cifar grid: one budget for every run (the pilot's, see the module docstring).
SWEEP_EPOCHS = 60
SWEEP_WIDTHS = "16-32-64-128"  # half the cifar10 preset's encoder: twice as fast an epoch
SWEEP_DIMENSIONS = (16, 64, 512, 2048)  # projector 512-512-D; 512 is the preset's
SWEEP_BATCHES = (32, 128, 256)  # 128 is the preset's
SWEEP_VARIANTS = {  # tag: Config changes
    "barlow": {"method": "barlow"},
    "byol": {"method": "byol"},
    "simclr": {"method": "simclr"},
    BARLOW_EMA: {"method": "barlow", "ema": True},
    BARLOW_HYBRID: {"method": "barlow", "ema": True, "predictor": True},
}
SWEPT = {  # what each sweep varies: the variants it runs
    "augment": ("barlow", "byol", "simclr", BARLOW_HYBRID),  # claims 2 and 8
    "dimension": ("barlow", "byol", BARLOW_EMA, BARLOW_HYBRID),  # claims 4, 5 and 8
    "batch": ("barlow", "simclr", "byol"),  # claim 7
}


def grid(name, fast=False, shapes_dir="data", cifar=CIFAR_SUBSET):
    """{run name: (tags, Config)} of grid `name`; `out` is set by `run_grid`.

    tags: what the grid varies for that run ({"method": ..., "seed": ..., ...}), the keys
    that tinybt.comparison reads. shapes_dir: where the shapes images are cached; cifar: the
    CIFAR-10 archive or folder (the methods grid).
    """
    if name not in GRIDS:
        raise TinyBTError(f"unknown grid {name!r}: choose one of {', '.join(GRIDS)} (or all)")
    runs = {}
    # The grids' runs were recorded without the kNN monitor, and their budgets planned so
    base = replace(_base(name, fast, shapes_dir, cifar), monitor_every=0)
    defaults = sweep_defaults(name, fast)
    for tags, changes in _variations(name, fast, base):
        # a tag at its default is left out of the name (only the sweeps-cifar grid has those)
        run_name = "-".join(_slug(k, v) for k, v in tags.items() if defaults.get(k) != v)
        augment_changes = {**base.augment_changes, **changes.pop("augment_changes", {})}
        runs[run_name] = (tags, replace(base, augment_changes=augment_changes, **changes))
    return runs


def _base(name, fast, shapes_dir, cifar):
    """The configuration every run of grid `name` starts from."""
    if fast:
        return Config.preset(
            "tiny", epochs=1, lr=1e-2, warmup_epochs=0.5, tau_base=0.9, data_dir=shapes_dir
        )
    if name == "budget":  # `python -m tinybt.train --preset cifar10 --method M --tau-base 0.99`
        return Config.preset("cifar10", tau_base=TAU_BASE, data_dir=cifar)
    if name in ("methods", "shuffle-cifar"):
        return Config.preset("cifar10", epochs=CIFAR_EPOCHS, tau_base=TAU_BASE, data_dir=cifar)
    if name == "sweeps-cifar":
        return Config.preset(
            "cifar10",
            epochs=SWEEP_EPOCHS,
            widths=SWEEP_WIDTHS,
            tau_base=TAU_BASE,
            data_dir=cifar,
        )
    return Config.preset("shapes", epochs=SHAPES_EPOCHS, tau_base=TAU_BASE, data_dir=shapes_dir)


def _variations(name, fast, base):
    """(tags, Config changes) for each run of grid `name`, whose runs start from `base`."""
    seeds = SEEDS[:1] if fast else SEEDS
    if name == "sweeps-cifar":
        yield from _sweeps(seeds, fast, base)
    elif name == "budget":
        # the longest first, so that two processes sharing the grid finish together
        variants = {
            "byol": {"method": "byol"},
            BARLOW_EMA: {"method": "barlow", "ema": True},
            "vicreg": {"method": "vicreg"},
            "simclr": {"method": "simclr"},
            "barlow": {"method": "barlow"},
        }
        for seed in seeds:
            for variant, changes in variants.items():
                if not fast or variant in ("barlow", "byol"):
                    yield {"method": variant, "seed": seed}, {**changes, "seed": seed}
    elif name == "methods":
        variants = [({"method": m}, {"method": m}) for m in METHOD_NAMES]
        variants.append(({"method": BARLOW_NOSTD}, {"standardize": False}))
        for tags, changes in variants:
            for seed in seeds:
                yield {**tags, "seed": seed}, {**changes, "seed": seed}
    elif name == "augmentations":
        methods = ("barlow", "byol") if fast else METHOD_NAMES
        removals = (ALL_AUGMENTATIONS, CROP_AND_FLIP) if fast else REMOVALS
        for method in methods:
            for removal in removals:
                # claim 2 is judged on these two, so they get the seeds; the others one
                judged = removal in (ALL_AUGMENTATIONS, CROP_AND_FLIP)
                for seed in seeds if judged else seeds[:1]:
                    tags = {"method": method, "augment": removal, "seed": seed}
                    yield (
                        tags,
                        {"method": method, "augment_changes": REMOVALS[removal], "seed": seed},
                    )
    elif name == "dimension":
        variants = {
            "barlow": {"method": "barlow"},
            BARLOW_INVERSE_D: {"method": "barlow"},
            BARLOW_EMA: {"method": "barlow", "ema": True},
            "byol": {"method": "byol"},
            "vicreg": {"method": "vicreg"},
        }
        dimensions = (8, 32) if fast else DIMENSIONS
        for variant, changes in variants.items():
            if fast and variant in (BARLOW_INVERSE_D, "vicreg"):
                continue
            for d in dimensions:
                hidden = 16 if fast else 256  # the preset's projector width; D varies alone
                lambd = {"lambd": 1.0 / d} if variant == BARLOW_INVERSE_D else {}
                tags = {"method": variant, "dimension": d, "seed": 0}
                yield tags, {**changes, **lambd, "projector": f"{hidden}-{hidden}-{d}"}
    else:  # shuffle, shuffle-cifar (one seed: a CIFAR run costs four shapes runs)
        methods = ("barlow", "byol") if fast else METHOD_NAMES
        for method in methods:
            for colour, changes in ((JITTER, {}), (NO_JITTER, NO_COLOUR)):
                for seed in seeds if name == "shuffle" else seeds[:1]:
                    tags = {"method": method, "colour": colour, "seed": seed}
                    config = {"method": method, "shuffle_pixels": True, "seed": seed}
                    yield tags, {**config, "augment_changes": changes}


def sweep_defaults(name, fast=False):
    """{tag: value} of the run of grid `name` that all its sweeps share: the sweeps-cifar grid's
    base configuration's dimension and batch, with every augmentation ({} for other grids)."""
    if name != "sweeps-cifar":
        return {}
    base = _base(name, fast, "data", CIFAR_SUBSET)
    dimension = int(base.projector.split("-")[-1])
    return {"dimension": dimension, "augment": ALL_AUGMENTATIONS, "batch": base.batch_size}


def _sweeps(seeds, fast, base):
    """(tags, Config changes) of the sweeps-cifar grid: three sweeps (augmentations, projector
    dimension, batch size) around one default run per variant, which all three share.

    Every run is tagged with its dimension, augmentations and batch, so each claim picks its
    runs by tags; its name gives only what differs from the defaults (barlow-seed0,
    barlow-d16-seed0, barlow-crop-and-flip-only-seed0, barlow-b32-seed0). The learning rate
    follows the square root of the batch, Adam's rule: Adam's step does not grow with the
    gradient, and the gradient's noise falls as 1/sqrt(B), so lr ∝ sqrt(B) keeps a step's noise
    the same (SGD's linear rule, which the paper's LARS follows, would overshoot with Adam).
    """
    dimensions = (8, 32) if fast else SWEEP_DIMENSIONS  # the tiny preset's projector: 32-32
    batches = (16, 32) if fast else SWEEP_BATCHES  # the tiny preset's batch: 32
    default = sweep_defaults("sweeps-cifar", fast)
    all_default = (default["dimension"], ALL_AUGMENTATIONS, default["batch"])
    # In the order they run: the defaults first (the budget's check that every variant
    # learns), then each sweep's runs together, so that verdicts come in as the grid goes.
    settings = [(variant, *all_default) for variant in SWEEP_VARIANTS]
    settings += [
        (variant, default["dimension"], CROP_AND_FLIP, default["batch"])
        for variant in SWEPT["augment"]
    ]
    settings += [
        (variant, dimension, ALL_AUGMENTATIONS, default["batch"])
        for dimension in dimensions
        for variant in SWEPT["dimension"]
    ]
    settings += [
        (variant, default["dimension"], ALL_AUGMENTATIONS, batch)
        for batch in batches
        for variant in SWEPT["batch"]
    ]
    hidden = base.projector.rsplit("-", 1)[0]
    for variant, dimension, augment, batch in dict.fromkeys(settings):  # each setting once
        for seed in seeds:
            tags = {"method": variant, "dimension": dimension, "augment": augment}
            yield (
                {**tags, "batch": batch, "seed": seed},
                {
                    **SWEEP_VARIANTS[variant],
                    "projector": f"{hidden}-{dimension}",
                    "augment_changes": REMOVALS[augment],
                    "batch_size": batch,
                    "lr": base.lr * (batch / default["batch"]) ** 0.5,
                    "seed": seed,
                },
            )


def _slug(key, value):
    """A tag as part of a folder name: 'crop and flip only' -> 'crop-and-flip-only', seed 1
    -> 'seed1', dimension 64 -> 'd64', batch 32 -> 'b32'."""
    prefix = {"seed": "seed", "dimension": "d", "batch": "b"}.get(key, "")
    return prefix + str(value).replace(" ", "-").replace("/", "_")


# ----- the grid's record -----
def results_path(root, name, fast=False):
    """The record of grid `name` under `root`: <name>.jsonl, or <name>-fast.jsonl for --fast."""
    return Path(root) / f"{_folder_name(name, fast)}.jsonl"


def _folder_name(name, fast):
    return f"{name}-fast" if fast else name


def read_results(path, fast=False):
    """The lines of a grid's record ([] if there is none yet), one per finished run.

    A torn last line, from a process killed while writing it, is dropped; so are lines of runs
    that failed ({"error": ...}, no "evaluation"), which older versions of tinybt wrote. Every
    other line must follow the schema of `check_record`. A line of a --fast run in the record of
    a real grid (or the other way round), or a second line for one run, is refused.
    """
    path = Path(path)
    if path.is_dir():
        raise TinyBTError(f"{path} is a folder, not a grid's record: move it out of the way")
    lines, names = [], set()
    for number, line in numbered_lines(path):
        if isinstance(line, dict) and "error" in line and "evaluation" not in line:
            continue
        check_record(line, f"line {number} of {path}")
        if line.get("fast", False) != fast:
            kind = "a --fast run" if line.get("fast") else "a run of the real grid"
            raise TinyBTError(
                f"line {number} of {path} is {kind} ({line['name']}): keep --fast records "
                "apart (the fast grids write <grid>-fast.jsonl); move that line out"
            )
        if line["name"] in names:
            raise TinyBTError(
                f"line {number} of {path} repeats run {line['name']}: delete one of its lines"
            )
        names.add(line["name"])
        lines.append(line)
    return lines


def check_record(line, where):
    """Refuse, in one line naming `where` (its file and line), a record's line that breaks the
    schema of a finished run, instead of a verdict it would change quietly. A line is an object
    with:

    - "name": a non-empty string;
    - "tags": an object with "method" (a string) and "seed" (an integer), and perhaps
      "dimension" and "batch" (positive integers), "augment" (a key of REMOVALS) and "colour"
      (JITTER or NO_JITTER); no other tag;
    - "evaluation": an object whose "learned" and "random_init" are objects with "knn" and
      "linear", each an accuracy: a finite fraction in [0, 1] (0.562, not 56.2);
    - "fast": true or false, if present (false when absent);
    - "config": an object, if present (records of tinybt's grids have one), whose settings
      imply each tag: "seed" its seed, "dimension" its projector's last width, "batch" its
      batch size, "method" its method and variant (`_implied_method`), "augment" the removal
      its augmentation changes make, "colour" whether they turn colour distortion off.
    """
    if not isinstance(line, dict):
        raise TinyBTError(f"{where} is {json.dumps(line)}, not a run's record: delete that line")
    _expect(where, "name", line.get("name"), lambda name: isinstance(name, str) and name)
    _check_tags(line.get("tags"), where)
    evaluation = line.get("evaluation")
    _expect(where, "evaluation", evaluation, lambda value: isinstance(value, dict))
    for encoder in ("learned", "random_init"):
        accuracies = evaluation.get(encoder)
        _expect(where, f"evaluation.{encoder}", accuracies, lambda value: isinstance(value, dict))
        for metric in ("knn", "linear"):
            _expect(where, f"evaluation.{encoder}.{metric}", accuracies.get(metric), _accuracy)
    _expect(where, "fast", line.get("fast", False), lambda value: isinstance(value, bool))
    if "config" in line:
        _expect(where, "config", line["config"], lambda value: isinstance(value, dict))
        _check_implied_tags(line["tags"], line["config"], where)


TAG_RULES = {  # tag: whether a value is one it can take
    "method": lambda value: isinstance(value, str) and value,
    "seed": lambda value: _integer(value) and value >= 0,
    "dimension": lambda value: _integer(value) and value > 0,
    "batch": lambda value: _integer(value) and value > 0,
    "augment": lambda value: value in REMOVALS,
    "colour": lambda value: value in (JITTER, NO_JITTER),
}


def _check_tags(tags, where):
    _expect(where, "tags", tags, lambda value: isinstance(value, dict))
    for key in ("method", "seed"):
        if key not in tags:
            raise TinyBTError(f"{where} has no tags.{key}: repair or delete that line")
    for key, value in tags.items():
        if key not in TAG_RULES:
            raise TinyBTError(f"{where} has an unknown tag {key!r}: repair or delete that line")
        _expect(where, f"tags.{key}", value, TAG_RULES[key])


def _check_implied_tags(tags, config, where):
    """Each tag of a line against the value its configuration implies."""
    implied = {
        "seed": lambda: config["seed"],
        "dimension": lambda: int(config["projector"].split("-")[-1]),
        "batch": lambda: config["batch_size"],
        "method": lambda: _implied_method(config),
        "augment": lambda: _implied_removal(config["augment_changes"]),
        "colour": lambda: (
            NO_JITTER if NO_COLOUR.items() <= config["augment_changes"].items() else JITTER
        ),
    }
    for key, value in tags.items():
        try:
            expected = implied[key]()
        except KeyError as error:  # a setting an older or newer tinybt did not write
            raise TinyBTError(
                f"{where} has no config.{error.args[0]}, which tags.{key} is made from: the "
                "line was written by another version of tinybt; delete it, and `python -m "
                "tinybt.experiments run` trains that run again"
            ) from None
        except (AttributeError, TypeError, ValueError):
            raise TinyBTError(
                f"{where} has a config without what tags.{key} is made from: repair or delete "
                "that line"
            ) from None
        if value != expected:
            raise TinyBTError(
                f"{where} has tags.{key} {json.dumps(value)}, but its config says "
                f"{json.dumps(expected)}: repair or delete that line"
            )


def _implied_method(config):
    """The method tag a configuration makes: its method, or Barlow Twins' variant."""
    if config["method"] != "barlow":
        return config["method"]
    if not config["standardize"]:
        return BARLOW_NOSTD
    if config["ema"]:
        return BARLOW_HYBRID if config["predictor"] else BARLOW_EMA
    dimension = int(config["projector"].split("-")[-1])
    return BARLOW_INVERSE_D if math.isclose(config["lambd"], 1.0 / dimension) else "barlow"


def _implied_removal(augment_changes):
    """The augment tag of the largest removal that `augment_changes` makes (on top of the
    preset's own changes)."""
    made = [tag for tag, removal in REMOVALS.items() if removal.items() <= augment_changes.items()]
    return max(made, key=lambda tag: len(REMOVALS[tag]))


def _integer(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _accuracy(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1


def _expect(where, field, value, rule):
    """A one-line error naming `where` unless `value` of `field` passes `rule`."""
    if value is None or not rule(value):
        shown = "missing" if value is None else json.dumps(value)
        raise TinyBTError(f"{where} has {field} {shown}: repair or delete that line")


def append_result(path, line):
    """Append `line` (a dict) to the record at `path` as one JSON line. Processes sharing the
    record take turns (a flock on it): each cuts off a torn last line, or ends a complete last
    line that lacks its newline, so its line starts on a fresh line, then appends it whole.
    A write that fails part way (a full disk) is cut back off, so the record keeps only whole
    lines, and raised as a one-line TinyBTError."""
    with open(path, "a+b") as file:
        wait_to_hold(file)
        try:
            _repair_tail(file)
            end = file.seek(0, os.SEEK_END)
            try:
                _write_all(file, (json.dumps(line) + "\n").encode())
            except OSError:
                file.truncate(end)
                raise
        except OSError as error:
            raise TinyBTError(
                f"could not write a run's line to {path} ({error.strerror or error}): "
                "free some space and run the grid again (the run is not recorded)"
            ) from None


def _write_all(file, data):
    """Write all of `data` at the end of `file`: os.write may write only part of it (a disk
    that fills up), and says so only in the count it returns."""
    while data:
        written = os.write(file.fileno(), data)
        if written == 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        data = data[written:]


def _repair_tail(file):
    """Make the record open as `file` ("a+b") end with a complete line, or be empty."""
    file.seek(0)
    data = file.read()
    if not data or data.endswith(b"\n"):
        return
    start = data.rfind(b"\n") + 1
    try:
        json.loads(data[start:])
    except ValueError:  # torn: cut it off
        file.truncate(start)
        return
    _write_all(file, b"\n")  # complete, only its newline missing


# ----- running a grid -----
class RunsFailed(TinyBTError):
    """Runs of a grid that failed: each was reported as it failed, and none is in the record."""


def check_root(root, path, write):
    """One-line errors for a --root that cannot hold the grids, before any run trains: a
    file, a folder this process cannot write to (when `write`), a record that is a folder or
    that this process cannot read (and write)."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise TinyBTError(f"--root {root} is a file, not a folder: give a folder for the grids")
    if path.is_dir():
        raise TinyBTError(f"{path} is a folder, not a grid's record: move it out of the way")
    if path.exists():
        access = "read and write" if write else "read"
        try:
            open(path, "r+b" if write else "rb").close()
        except OSError as error:
            raise TinyBTError(
                f"cannot {access} the record {path} ({error.strerror}): give yourself {access} "
                "access to it"
            ) from None
    if not write:
        return
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise TinyBTError(
            f"cannot write to --root {root} ({error.strerror}): choose a folder you can write to"
        ) from None


def run_grid(name, root, fast=False, only=None, dry_run=False, log=print, **data):
    """Train every run of grid `name` that has no line in its record and no other process
    claims; record each that finishes (see the module docstring for the rule).

    only: run names to restrict it to. dry_run: only say what would run. log: where progress
    lines go (None: nowhere). data: shapes_dir and cifar, as `grid` takes them. Returns the
    names of the runs this call finished (or, with dry_run, would start); raises RunsFailed at
    the end, after every other run, if any failed.
    """
    runs = grid(name, fast, **data)
    log = log or (lambda *_: None)
    unknown = sorted(set(only or ()) - set(runs))
    if unknown:
        raise TinyBTError(
            f"grid {name} has no run {', '.join(unknown)}: `--dry-run` lists its runs"
        )
    path = results_path(root, name, fast)
    check_root(root, path, write=not dry_run)
    finished = {line["name"] for line in read_results(path, fast)}
    todo = [run for run in runs if run not in finished and (not only or run in only)]
    log(f"grid {name}: {len(runs)} runs, {len(finished & set(runs))} finished, {len(todo)} to do")
    folder = Path(root) / _folder_name(name, fast)
    if dry_run:
        for run in todo:
            busy = held_by_another(folder / f"{run}.lock")
            log(f"  {run}{' (running elsewhere)' if busy else ''}")
        return todo
    done, failed = [], []
    for index, run in enumerate(todo, 1):
        tags, config = runs[run]
        config = replace(config, out=str(folder / run))
        lock = folder / f"{run}.lock"
        folder.mkdir(parents=True, exist_ok=True)
        if not claim(lock):
            continue
        try:
            # another process may have finished it since the record was read
            if run in {line["name"] for line in read_results(path, fast)}:
                continue
            log(f"[{index}/{len(todo)}] {name}/{run}")
            try:
                line = _train_one(run, tags, config, fast)
            except TinyBTError as error:
                log(f"  failed: {error}")
                failed.append(f"{run} ({error})")
                continue
            append_result(path, line)
            log(f"  {_summary(line)}")
            done.append(run)
        finally:
            release(lock)
    if failed:
        raise RunsFailed(
            f"grid {name}: {len(failed)} run(s) failed and are not recorded: "
            f"{'; '.join(failed)}; fix the cause and run the grid again"
        )
    return done


def _train_one(run, tags, config, fast):
    """One run trained and evaluated (resumed if a killed process left its checkpoint, made
    with this configuration), as the line its grid's record gets."""
    start = time.perf_counter()
    resume = (Path(config.out) / "checkpoint.npz").exists()
    if resume:
        _check_checkpoint_config(config)
    result = train(config, resume=resume, overwrite=not resume, progress=False, log=None)
    return {
        "name": run,
        "tags": tags,
        "fast": fast,
        "config": asdict(config),
        "final": result["metrics"][-1],
        "evaluation": result["evaluation"],
        "seconds": time.perf_counter() - start,
    }


# The fields a checkpoint may differ in from its grid's configuration and still be resumed.
RESUMABLE_DIFFERENCES = ("out", "backend")


def _check_checkpoint_config(config):
    """Refuse to resume a run folder whose checkpoint was made with another configuration (an
    edited grid, another --cifar or --shapes-dir): its result would not be this run's. A
    field the checkpoint lacks (one added to Config since) has its default there, as
    resuming gives it."""
    checkpoint = Path(config.out) / "checkpoint.npz"
    saved = {**asdict(Config()), **load_checkpoint(checkpoint)[2].get("config", {})}
    wanted = asdict(config)
    differences = [
        f"{key} {saved.get(key)!r} there, {wanted[key]!r} here"
        for key in wanted
        if key not in RESUMABLE_DIFFERENCES and saved.get(key) != wanted[key]
    ]
    if differences:
        raise TinyBTError(
            f"not resumed: {checkpoint} was made with another configuration "
            f"({'; '.join(differences)}); delete {config.out} to train the run afresh"
        )


def _summary(line):
    learned, random_init = line["evaluation"]["learned"], line["evaluation"]["random_init"]
    return (
        f"linear {learned['linear']:.1%} (random encoder {random_init['linear']:.1%}), "
        f"kNN {learned['knn']:.1%}, {line['seconds']:.0f} s"
    )
