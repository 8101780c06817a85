"""The experiments that test the review's claims: named grids of runs, and running
them so that a grid can stop and resume across sessions and run in several processes at once.

    budget         the cifar10 preset as it stands (100 epochs), on the CIFAR-10 subset, for
                   the review's four methods, SimSiam and Barlow Twins --ema, seeds 0 and 1:
                   whether every method learns at the preset's budget (10 points linear over
                   its random encoder); no verdict reads it
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

The grids' budgets, planned and measured, are in docs/CLAIMS.md.
"""

from dataclasses import replace

from tinybt.config import Config, has_target
from tinybt.errors import TinyBTError
from tinybt.study.tags import (
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
# The methods the review compares, pinned: a method registered later joins no grid and no
# verdict until it is written here (and its runs made).
METHOD_NAMES = ("barlow", "byol", "simclr", "vicreg")
CIFAR_EPOCHS = 15  # every run of methods and shuffle-cifar (the cifar10 preset: 100)
SHAPES_EPOCHS = 20  # every run of the shapes grids (the shapes preset: 50)
SEEDS = (0, 1)
DIMENSIONS = (16, 64, 256, 1024, 2048)
TAU_BASE = 0.99  # solo-learn's CIFAR BYOL value: short runs need a target that moves
FAST_TAU_BASE = 0.9  # --fast: a target that moves in a few steps
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
    that tinybt.study.comparison reads. shapes_dir: where the shapes images are cached; cifar: the
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
        config = replace(base, augment_changes=augment_changes, **changes)
        if has_target(config):  # τ_base only where there is a target to move
            config = replace(config, tau_base=FAST_TAU_BASE if fast else TAU_BASE)
        runs[run_name] = (tags, config)
    return runs


def _base(name, fast, shapes_dir, cifar):
    """The configuration every run of grid `name` starts from."""
    if fast:
        return Config.preset("tiny", epochs=1, lr=1e-2, warmup_epochs=0.5, data_dir=shapes_dir)
    if name == "budget":  # `python -m tinybt.train --preset cifar10 --method M` (--tau-base 0.99)
        return Config.preset("cifar10", data_dir=cifar)
    if name in ("methods", "shuffle-cifar"):
        return Config.preset("cifar10", epochs=CIFAR_EPOCHS, data_dir=cifar)
    if name == "sweeps-cifar":
        return Config.preset(
            "cifar10",
            epochs=SWEEP_EPOCHS,
            widths=SWEEP_WIDTHS,
            data_dir=cifar,
        )
    return Config.preset("shapes", epochs=SHAPES_EPOCHS, data_dir=shapes_dir)


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
            "simsiam": {"method": "simsiam"},
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
