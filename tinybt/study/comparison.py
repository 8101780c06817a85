"""The review's eight claims, each judged from the experiments' results (tinybt/study/grids.py).

A verdict is computed, never typed in: `verdicts(results)` reads the grids' result lines and
returns, per claim, "supported", "not supported" or "inconclusive", with the numbers behind
it, the runs it used, and the runs it still lacks. A claim is judged only from the runs it
needs (`needed_runs`), and only once all of them of seeds 0 and 1 are there: with any missing
it is inconclusive and names them (a further seed is read where it has a record). Notebook 10
draws the figures, and `python -m tinybt.experiments verdicts` prints the table.

When two results differ (`compare`), the one rule, which docs/CLAIMS.md and notebook 10 quote:

    Two groups of accuracies differ when their means are further apart than twice the larger
    of their spreads (the sample standard deviation over seeds), if both were measured over
    two or more seeds, or at least 3 points apart, if either is a single run. Means over seeds
    within twice the spread and under 3 points apart are the same; anything else is unclear.

The rule reads any number of seeds: a setting with a third seed (seed 2 of the sweeps-cifar
grid's tied settings) is read over all three, and `two_seed_verdicts` gives the verdicts from
seeds 0 and 1 alone, so that a verdict a third seed turns shows; `every_run_verdicts` gives
them with the runs under `LEARNS` counted too, so that a verdict the bar turns shows.

A dimension sweep is read as a trend, seed by seed: the least-squares slope of accuracy against
log2 D through one seed's runs, and the gain that line fits from the smallest D to the
largest; the seeds' gains are then a group like any other, quoted as mean ± spread.

A run counts only if its method learns (`LEARNS`: 10 points of linear accuracy over its own
random encoder), except the runs a claim expects to fall towards their random encoder
(`held_to_learn`). A run under the bar is left out of the comparison and named in the
evidence; a group it leaves with no run makes its comparison inconclusive.

Every claim is judged on CIFAR-10. Claims 1, 3 and 6 at the sweeps-cifar grid's budget (the
narrow encoder, 60 epochs: its default runs, with the methods-cifar60 and shuffle-cifar60
grids), where every method learns; `fifteen_epoch_verdicts` keeps their first reading, at 15
epochs (the methods and shuffle-cifar grids). Claims 2, 4, 5, 7 and 8 are judged in the
sweeps-cifar grid; claims 2, 4 and 5 were first judged on the shapes data (the augmentations
and dimension grids), and `shapes_verdicts` keeps that reading. Where two readings disagree,
the claims table (`table_cells`) shows both.
"""

import math
from dataclasses import dataclass

import numpy as np

from tinybt.study.grids import METHOD_NAMES, grid, sweep_defaults
from tinybt.study.tags import (
    ALL_AUGMENTATIONS,
    BARLOW_EMA,
    BARLOW_HYBRID,
    BARLOW_NOSTD,
    CROP_AND_FLIP,
    JITTER,
    NO_JITTER,
)

THRESHOLD = 0.03  # 3 points of accuracy
FIRST_SEEDS = (0, 1)  # every setting's seeds: a claim waits for these, and reads a third if there
SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE = "supported", "not supported", "inconclusive"

CLAIMS = {
    1: "Barlow Twins depends on standardising the embeddings along the batch",
    2: "Barlow Twins loses more than BYOL when augmentations are removed",
    3: "the methods learn colour histograms: shuffled pixels without colour jitter do as well "
    "as real images, and with colour jitter as badly as a random encoder",
    4: "Barlow Twins keeps improving as the projector's output grows while BYOL stays nearly "
    "flat, so BYOL wins at small dimension",
    5: "an EMA target (BYOL's) lets Barlow Twins close BYOL's lead at small dimension",
    6: "VICReg needs no standardisation of the embeddings to do as well as Barlow Twins",
    7: "Barlow Twins holds its accuracy down to small batches, where SimCLR, which needs many "
    "negatives, drops",
    8: "the hybrid, Barlow Twins with BYOL's EMA target and predictor, keeps Barlow Twins' "
    "accuracy at large dimension and gains BYOL's robustness to removed augmentations and at "
    "small dimension",
}


@dataclass
class Verdict:
    """One claim judged: its number, the claim, the verdict, the numbers that decided it, the
    runs it needs ("grid/run"), those of them it read, those that have no result yet (a further seed
    that has none is not missing), and those it left out because their method did not learn
    (`LEARNS`)."""

    claim: int
    statement: str
    verdict: str
    evidence: str
    runs: tuple = ()
    missing: tuple = ()
    unlearned: tuple = ()
    used: tuple = ()


# Which runs each claim needs: for each list of lines its judge reads, the (grid, {tag: the
# values it may take}) selections that make it. DEFAULT: the value of the sweeps-cifar run that
# all three of its sweeps share.
DEFAULT = "default"
AT_DEFAULT = {"dimension": DEFAULT, "augment": (ALL_AUGMENTATIONS,), "batch": DEFAULT}
AUGMENT_SWEEP = {**AT_DEFAULT, "augment": (ALL_AUGMENTATIONS, CROP_AND_FLIP)}
DIMENSION_SWEEP = {"augment": (ALL_AUGMENTATIONS,), "batch": DEFAULT}
BATCH_SWEEP = {"dimension": DEFAULT, "augment": (ALL_AUGMENTATIONS,)}
# Barlow Twins, BYOL and SimCLR at the 60-epoch budget are the sweeps-cifar grid's default runs.
SWEEP_DEFAULTS = ("sweeps-cifar", {"method": ("barlow", "byol", "simclr"), **AT_DEFAULT})
NEEDS = {
    1: [[SWEEP_DEFAULTS, ("methods-cifar60", {"method": (BARLOW_NOSTD,)})]],
    2: [[("sweeps-cifar", {"method": ("barlow", "byol", "simclr"), **AUGMENT_SWEEP})]],
    3: [[SWEEP_DEFAULTS, ("methods-cifar60", {"method": ("vicreg",)})], [("shuffle-cifar60", {})]],
    4: [[("sweeps-cifar", {"method": ("barlow", "byol"), **DIMENSION_SWEEP})]],
    5: [[("sweeps-cifar", {"method": ("barlow", BARLOW_EMA, "byol"), **DIMENSION_SWEEP})]],
    6: [[SWEEP_DEFAULTS, ("methods-cifar60", {"method": (BARLOW_NOSTD, "vicreg")})]],
    7: [[("sweeps-cifar", {"method": ("barlow", "simclr", "byol"), **BATCH_SWEEP})]],
    8: [
        [
            ("sweeps-cifar", {"method": ("barlow", "byol", BARLOW_HYBRID), **AUGMENT_SWEEP}),
            ("sweeps-cifar", {"method": ("barlow", "byol", BARLOW_HYBRID), **DIMENSION_SWEEP}),
        ]
    ],
}
# The first reading of claims 1, 3 and 6: at 15 epochs, the cifar10 preset's encoder.
FIFTEEN_EPOCH_NEEDS = {
    1: [[("methods", {"method": ("barlow", BARLOW_NOSTD)})]],
    3: [[("methods", {"method": METHOD_NAMES})], [("shuffle-cifar", {})]],
    6: [[("methods", {"method": ("barlow", BARLOW_NOSTD, "vicreg")})]],
}
# The shapes reading of claims 2, 4 and 5 (one seed a dimension, two for the augmentations).
SHAPES_NEEDS = {
    2: [
        [
            (
                "augmentations",
                {"method": ("barlow", "byol"), "augment": (ALL_AUGMENTATIONS, CROP_AND_FLIP)},
            )
        ]
    ],
    4: [[("dimension", {"method": ("barlow", "byol")})]],
    5: [[("dimension", {"method": ("barlow", BARLOW_EMA, "byol")})]],
}


def _selected(name, wanted, fast):
    """The runs of grid `name` whose tags take the values `wanted` allows, in the grid's order."""
    defaults = sweep_defaults(name, fast)
    wanted = {
        key: (defaults[key],) if values == DEFAULT else values for key, values in wanted.items()
    }
    return [
        run
        for run, (tags, _) in grid(name, fast).items()
        if all(tags.get(key) in values for key, values in wanted.items())
    ]


def needed_runs(claim, fast=False, needs=NEEDS):
    """{grid: [run names]} that claim `claim` is judged from, as the grids (or, with `fast`,
    the fast grids) define them."""
    needed = {}
    for argument in needs[claim]:
        for name, wanted in argument:
            runs = needed.setdefault(name, [])
            runs += [run for run in _selected(name, wanted, fast) if run not in runs]
    return needed


# ----- reading results -----
def accuracies(lines, metric="linear", encoder="learned", **tags):
    """The accuracies (floats) of the runs among `lines` whose tags match `tags`; runs that
    failed (diverged) are left out. encoder: "learned" or "random_init"."""
    return [
        line["evaluation"][encoder][metric]
        for line in lines
        if "error" not in line and all(line["tags"].get(k) == v for k, v in tags.items())
    ]


def by_seed(lines, metric="linear", **tags):
    """{seed: accuracy} of the matching runs, for differences paired by seed."""
    return {
        line["tags"]["seed"]: line["evaluation"]["learned"][metric]
        for line in lines
        if "error" not in line and all(line["tags"].get(k) == v for k, v in tags.items())
    }


def mean_and_spread(values):
    """(mean, sample standard deviation over seeds; None with fewer than two values)."""
    if not values:
        return math.nan, None
    spread = float(np.std(values, ddof=1)) if len(values) > 1 else None
    return float(np.mean(values)), spread


def describe(values):
    """ "42.1% ± 1.3 (2 seeds)", the way the verdicts quote a group of runs."""
    mean, spread = mean_and_spread(values)
    if not values:
        return "no runs"
    if spread is None:
        return f"{mean:.1%} (1 run)"
    return f"{mean:.1%} ± {100 * spread:.1f} ({len(values)} seeds)"


def describe_drop(values, unit="points"):
    """ "13.6 ± 0.8 points (2 seeds)": a group of drops, each the difference of two accuracies of
    one seed, quoted in points (of accuracy, not a percentage of it), or in another `unit`
    ("points per doubling")."""
    mean, spread = mean_and_spread(values)
    if not values:
        return "no runs"
    if spread is None:
        return f"{100 * mean:.1f} {unit} (1 run)"
    return f"{100 * mean:.1f} ± {100 * spread:.1f} {unit} ({len(values)} seeds)"


# ----- whether each method learns -----
LEARNS = 0.10  # a method learns: 10 points of linear accuracy over its random-initialised encoder


def held_to_learn(tags):
    """Whether a run with these tags must gain `LEARNS` to count: every run but those a claim
    expects to fall towards their random encoder, which are what it measures (augmentations
    removed, pixels shuffled, Barlow Twins without standardisation)."""
    removed = tags.get("augment", ALL_AUGMENTATIONS) != ALL_AUGMENTATIONS
    return not (removed or "colour" in tags or tags["method"] == BARLOW_NOSTD)


def gain(line, metric="linear"):
    """How far training took a run's encoder from its random start (accuracy, not points)."""
    return line["evaluation"]["learned"][metric] - line["evaluation"]["random_init"][metric]


def gains(lines, metric="linear"):
    """[(method, learned, random encoder, learned - random)] for each run among `lines` that
    did not diverge, in their order: how far training took each encoder from its random
    start (the budget grid has one run per method)."""
    rows = []
    for line in lines:
        if "error" not in line:
            learned = line["evaluation"]["learned"][metric]
            random_init = line["evaluation"]["random_init"][metric]
            rows.append((line["tags"]["method"], learned, random_init, learned - random_init))
    return rows


# ----- comparing -----
def compare(a, b, threshold=THRESHOLD):
    """How accuracies `a` compare with `b` (lists over seeds), by the rule in the module
    docstring: "higher", "lower", "same", "unclear", or "missing" when either has no runs."""
    if not a or not b:
        return "missing"
    difference = float(np.mean(a) - np.mean(b))
    higher_or_lower = "higher" if difference > 0 else "lower"
    spread_a, spread_b = mean_and_spread(a)[1], mean_and_spread(b)[1]
    if spread_a is None or spread_b is None:  # a single run: only the 3 points count
        return higher_or_lower if abs(difference) >= threshold else "unclear"
    if abs(difference) > 2 * max(spread_a, spread_b):
        return higher_or_lower
    return "same" if abs(difference) < threshold else "unclear"


def paired_differences(a, b):
    """a[seed] - b[seed] for the seeds both {seed: accuracy} have."""
    return [a[seed] - b[seed] for seed in sorted(set(a) & set(b))]


def trend(dimensions, values):
    """The least-squares slope of accuracy against log2(D): the change per doubling of D."""
    x, y = np.log2(np.asarray(dimensions, float)), np.asarray(values, float)
    return float(np.polyfit(x, y, 1)[0])


def sweep(lines, method, metric="linear"):
    """{D: [accuracies over seeds]} of one variant of a dimension sweep, by increasing D."""
    curve = {}
    for line in sorted(lines, key=lambda line: line["tags"]["dimension"]):
        if "error" not in line and line["tags"]["method"] == method:
            curve.setdefault(line["tags"]["dimension"], []).append(
                line["evaluation"]["learned"][metric]
            )
    return curve


def dimensions(lines):
    """The set of D the runs among `lines` were trained at, a failed or left-out run's too: the
    sweep as the grid defines it, whatever its runs gave."""
    return {line["tags"]["dimension"] for line in lines}


def fitted_gains(lines, method, metric="linear"):
    """({seed: slope}, {seed: gain}) of one variant of a dimension sweep, one line per seed: the
    slope through that seed's runs (`trend`) and the change it fits from the sweep's smallest D
    to its largest. Only seeds with a run at every D of the sweep are fitted (the sweeps-cifar
    grid's third seed runs at D = 16 alone)."""
    curves = {}
    for line in lines:
        if "error" not in line and line["tags"]["method"] == method:
            seed, d = line["tags"]["seed"], line["tags"]["dimension"]
            curves.setdefault(seed, {})[d] = line["evaluation"]["learned"][metric]
    every_d = dimensions(line for line in lines if line["tags"]["method"] == method)
    if len(every_d) < 2:
        return {}, {}
    octaves = math.log2(max(every_d) / min(every_d))
    slopes = {
        seed: trend(list(curve), list(curve.values()))
        for seed, curve in sorted(curves.items())
        if set(curve) == every_d
    }
    return slopes, {seed: slope * octaves for seed, slope in slopes.items()}


# ----- the eight claims -----
def claim_1(methods):
    barlow, without = (
        accuracies(methods, method="barlow"),
        accuracies(methods, method=BARLOW_NOSTD),
    )
    result = compare(barlow, without)
    verdict = {"higher": SUPPORTED, "same": NOT_SUPPORTED, "lower": NOT_SUPPORTED}
    evidence = f"standardised {describe(barlow)}, not standardised {describe(without)}: {result}"
    return _verdict(1, verdict.get(result, INCONCLUSIVE), evidence)


def claim_2(augmentations, removed=CROP_AND_FLIP):
    """Each method's drop from every augmentation to `removed`, paired by seed: Barlow Twins'
    against BYOL's (SimCLR's is quoted beside them where the grid has it)."""
    drops = {
        method: paired_differences(
            by_seed(augmentations, method=method, augment=ALL_AUGMENTATIONS),
            by_seed(augmentations, method=method, augment=removed),
        )
        for method in ("barlow", "byol", "simclr")
    }
    result = compare(drops["barlow"], drops["byol"])
    verdict = {"higher": SUPPORTED, "same": NOT_SUPPORTED, "lower": NOT_SUPPORTED}
    simclr = f", SimCLR {describe_drop(drops['simclr'])}" if drops["simclr"] else ""
    evidence = (
        f"drop from all augmentations to {removed}: Barlow Twins {describe_drop(drops['barlow'])}, "
        f"BYOL {describe_drop(drops['byol'])}{simclr}: Barlow Twins' drop is {result}"
    )
    return _verdict(2, verdict.get(result, INCONCLUSIVE), evidence)


def claim_3(real, shuffle):
    """Per method, on CIFAR-10: shuffled without colour jitter vs real images at the same
    budget (`real`: sweeps-cifar's default runs and methods-cifar60's VICReg, or, at 15 epochs,
    the methods grid), and shuffled with colour jitter vs the random encoder on shuffled
    images. (The shapes shuffle grid is a control, not evidence: shapes' colours carry no
    class, so there no histogram can do as well as real images.)"""
    verdicts, parts = [], []
    for method in sorted({line["tags"]["method"] for line in shuffle}):
        real_images = accuracies(real, method=method)
        plain = accuracies(shuffle, method=method, colour=NO_JITTER)
        jittered = accuracies(shuffle, method=method, colour=JITTER)
        random_init = accuracies(shuffle, encoder="random_init", method=method, colour=JITTER)
        as_real, as_random = compare(plain, real_images), compare(jittered, random_init)
        if as_real in ("same", "higher") and as_random in ("same", "lower"):
            verdicts.append(SUPPORTED)
        elif as_real == "lower" or as_random == "higher":
            verdicts.append(NOT_SUPPORTED)
        else:
            verdicts.append(INCONCLUSIVE)
        parts.append(
            f"{method}: shuffled {describe(plain)} vs real {describe(real_images)} ({as_real}); "
            f"shuffled with jitter {describe(jittered)} vs random {describe(random_init)} "
            f"({as_random})"
        )
    verdict = verdicts[0] if verdicts and len(set(verdicts)) == 1 else INCONCLUSIVE
    return _verdict(3, verdict, "; ".join(parts) or "no runs")


def claim_4(dimension):
    """Three parts, each "holds", "fails" or "unclear" (see `_judged_in_parts`), each read by
    `compare` from the seeds' fitted gains (`fitted_gains`) or accuracies.

    Barlow Twins keeps improving: its gains are higher than none (holds), or the same as none
    or lower (fails). BYOL stays nearly flat: its gains are the same as none or lower, or lower
    than Barlow Twins' (holds), or higher than none and not lower than Barlow Twins' (fails).
    BYOL wins at the smallest D: higher there than Barlow Twins (fails: the same or lower).
    """
    (slopes, barlow), (_, byol) = fitted_gains(dimension, "barlow"), fitted_gains(dimension, "byol")
    if not barlow or not byol:
        return _verdict(4, INCONCLUSIVE, "the dimension sweep has too few runs")
    curves = {m: sweep(dimension, m) for m in ("barlow", "byol")}
    smallest, largest = min(dimensions(dimension)), max(dimensions(dimension))
    barlow, byol, slopes = list(barlow.values()), list(byol.values()), list(slopes.values())
    improving = compare(barlow, [0.0] * len(barlow))
    byol_against_none, byol_against_barlow = compare(byol, [0.0] * len(byol)), compare(byol, barlow)
    if byol_against_none in ("same", "lower") or byol_against_barlow == "lower":
        flat = ("flat", "holds")
    elif byol_against_none == "higher":
        flat = ("rising", "fails")
    else:
        flat = ("unclear", "unclear")
    small = compare(curves["byol"].get(smallest, []), curves["barlow"].get(smallest, []))
    numbers = (
        f"over D = {smallest}..{largest} the fitted gain is {describe_drop(barlow)} for "
        f"Barlow Twins (slope {describe_drop(slopes, 'points per doubling')}), "
        f"{describe_drop(byol)} for BYOL; at D = {smallest} BYOL "
        f"{describe(curves['byol'].get(smallest, []))}, Barlow Twins "
        f"{describe(curves['barlow'].get(smallest, []))}"
    )
    parts = {
        "Barlow Twins keeps improving": _part(improving, ("higher",), ("same", "lower")),
        "BYOL stays nearly flat": flat,
        f"BYOL wins at D = {smallest}": _part(small, ("higher",), ("same", "lower")),
    }
    return _judged_in_parts(4, numbers, parts)


def claim_5(dimension):
    """At the smallest D: Barlow Twins --ema against Barlow Twins and against BYOL."""
    curves = {m: sweep(dimension, m) for m in ("barlow", BARLOW_EMA, "byol")}
    d = min(dimensions(dimension))
    barlow, ema, byol = (curves[m].get(d, []) for m in ("barlow", BARLOW_EMA, "byol"))
    evidence = (
        f"at D = {d}: Barlow Twins {describe(barlow)}, with EMA {describe(ema)}, "
        f"BYOL {describe(byol)}"
    )
    if not (barlow and ema and byol):
        return _verdict(5, INCONCLUSIVE, evidence + ": a method has no run that learns here")
    if compare(byol, barlow) != "higher":
        return _verdict(5, INCONCLUSIVE, evidence + ": BYOL has no lead to close here")
    if compare(ema, barlow) == "higher" and compare(ema, byol) != "lower":
        return _verdict(5, SUPPORTED, evidence)
    if compare(ema, byol) == "lower":
        return _verdict(5, NOT_SUPPORTED, evidence + ": the gap stays open")
    return _verdict(5, INCONCLUSIVE, evidence)


def claim_6(methods):
    vicreg, barlow = accuracies(methods, method="vicreg"), accuracies(methods, method="barlow")
    without = accuracies(methods, method=BARLOW_NOSTD)
    against_barlow, against_without = compare(vicreg, barlow), compare(vicreg, without)
    evidence = (
        f"VICReg {describe(vicreg)}, Barlow Twins {describe(barlow)} ({against_barlow}), "
        f"Barlow Twins not standardised {describe(without)} ({against_without})"
    )
    if against_barlow in ("same", "higher") and against_without == "higher":
        return _verdict(6, SUPPORTED, evidence)
    if against_barlow == "lower":
        return _verdict(6, NOT_SUPPORTED, evidence)
    return _verdict(6, INCONCLUSIVE, evidence)


def claim_7(batch):
    """Two parts, each "holds", "fails" or "unclear" (see `_judged_in_parts`): Barlow Twins at
    the smallest batch against itself at the largest (holds: the same or higher), and SimCLR's
    drop between them against Barlow Twins' (paired by seed; holds: higher). With the learning
    rate following sqrt(B) (tinybt/study/grids.py), a small batch also means more steps per
    epoch; and at batch N, Barlow Twins' C is estimated from N samples for D x D entries (rank
    at most N - 1), which is the catch in the claim."""
    batches = sorted({line["tags"]["batch"] for line in batch})
    small, large = batches[0], batches[-1]
    at = {
        (m, b): by_seed(batch, method=m, batch=b)
        for m in ("barlow", "simclr", "byol")
        for b in (small, large)
    }
    drops = {
        m: paired_differences(at[m, large], at[m, small]) for m in ("barlow", "simclr", "byol")
    }
    holds = compare(list(at["barlow", small].values()), list(at["barlow", large].values()))
    simclr_drops_more = compare(drops["simclr"], drops["barlow"])
    numbers = (
        f"drop from batch {large} to {small}: Barlow Twins {describe_drop(drops['barlow'])}, "
        f"SimCLR {describe_drop(drops['simclr'])}, BYOL {describe_drop(drops['byol'])}"
    )
    parts = {
        f"Barlow Twins at batch {small}, against itself at {large}": _part(
            holds, ("same", "higher"), ("lower",)
        ),
        "SimCLR's drop, against Barlow Twins'": _part(
            simclr_drops_more, ("higher",), ("same", "lower")
        ),
    }
    return _judged_in_parts(7, numbers, parts)


def claim_8(sweeps):
    """Three parts, each "holds", "fails" or "unclear" (see `_judged_in_parts`): the hybrid
    against Barlow Twins at the largest D (holds: the same or higher); its drop from removing
    augmentations against BYOL's (holds: the same or lower); the hybrid against BYOL at the
    smallest D (holds: the same or higher)."""
    default = [line for line in sweeps if line["tags"]["augment"] == ALL_AUGMENTATIONS]
    curves = {m: sweep(default, m) for m in ("barlow", "byol", BARLOW_HYBRID)}
    largest, smallest = max(dimensions(default)), min(dimensions(default))
    removed = [line for line in sweeps if line["tags"]["augment"] == CROP_AND_FLIP]
    d = removed[0]["tags"]["dimension"]  # the augmentation sweep's one dimension
    drops = {
        m: paired_differences(
            by_seed(sweeps, method=m, augment=ALL_AUGMENTATIONS, dimension=d),
            by_seed(sweeps, method=m, augment=CROP_AND_FLIP),
        )
        for m in ("barlow", "byol", BARLOW_HYBRID)
    }
    at_large = compare(curves[BARLOW_HYBRID].get(largest, []), curves["barlow"].get(largest, []))
    drop = compare(drops[BARLOW_HYBRID], drops["byol"])
    at_small = compare(curves[BARLOW_HYBRID].get(smallest, []), curves["byol"].get(smallest, []))
    numbers = (
        f"hybrid {describe(curves[BARLOW_HYBRID].get(largest, []))} at D = {largest} (Barlow Twins "
        f"{describe(curves['barlow'].get(largest, []))}); drop to crop and flip only: hybrid "
        f"{describe_drop(drops[BARLOW_HYBRID])}, BYOL {describe_drop(drops['byol'])}, Barlow Twins "
        f"{describe_drop(drops['barlow'])}; at D = {smallest} hybrid "
        f"{describe(curves[BARLOW_HYBRID].get(smallest, []))}, BYOL "
        f"{describe(curves['byol'].get(smallest, []))}"
    )
    parts = {
        f"at D = {largest}, against Barlow Twins": _part(at_large, ("same", "higher"), ("lower",)),
        "drop to crop and flip only, against BYOL's": _part(drop, ("same", "lower"), ("higher",)),
        f"at D = {smallest}, against BYOL": _part(at_small, ("same", "higher"), ("lower",)),
    }
    return _judged_in_parts(8, numbers, parts)


def _part(result, holds, fails):
    """A part of a claim as `compare`'s `result` decides it: (result, "holds") if it is one of
    `holds`, (result, "fails") if one of `fails`, (result, "unclear") otherwise."""
    return result, "holds" if result in holds else "fails" if result in fails else "unclear"


def _judged_in_parts(claim, numbers, parts):
    """The verdict of a claim made of parts: supported when every part holds, not supported when
    any fails, inconclusive otherwise. parts: {part: (what was found, its outcome)}; the
    evidence is `numbers`, then each part as "part: found, outcome", so that a claim that holds
    in part says which part."""
    outcomes = [outcome for _, outcome in parts.values()]
    evidence = f"{numbers}. " + "; ".join(
        f"{part}: {found}, {outcome}" for part, (found, outcome) in parts.items()
    )
    if all(outcome == "holds" for outcome in outcomes):
        return _verdict(claim, SUPPORTED, evidence)
    if "fails" in outcomes:
        return _verdict(claim, NOT_SUPPORTED, evidence)
    return _verdict(claim, INCONCLUSIVE, evidence)


def _verdict(claim, verdict, evidence):
    return Verdict(claim, CLAIMS[claim], verdict, evidence)


JUDGES = {
    1: claim_1, 2: claim_2, 3: claim_3, 4: claim_4, 5: claim_5, 6: claim_6, 7: claim_7,
    8: claim_8,
}  # fmt: skip


def verdicts(results, fast=False, needs=NEEDS, learns=LEARNS):
    """The Verdicts of the claims in `needs` (the eight, on CIFAR-10), from {grid name: result
    lines} (records.read_results of each record).

    Each claim reads only the runs `needed_runs` names (of the fast grids, with `fast`), given
    to its judge one list per argument its needs list; if any is missing, its verdict is
    inconclusive and says which. A run held to the bar (`held_to_learn`) that gains less than
    `learns` is left out, as a run that failed is, and the evidence names it."""
    judged = []
    for claim in needs:
        needed = needed_runs(claim, fast, needs)
        present = {(name, line["name"]) for name in needed for line in results.get(name, [])}
        runs = tuple(f"{name}/{run}" for name, names in needed.items() for run in names)
        # a further seed (the sweeps-cifar grid's seed 2) is read where it has a record
        seeds = {
            name: {run: tags["seed"] for run, (tags, _) in grid(name, fast).items()}
            for name in needed
        }
        missing = tuple(
            f"{name}/{run}"
            for name, names in needed.items()
            for run in names
            if (name, run) not in present and seeds[name][run] in FIRST_SEEDS
        )
        arguments, unlearned, used = [], {}, []
        for argument in needs[claim]:
            lines, seen = [], set()
            for name, wanted in argument:
                selected = _selected(name, wanted, fast)
                for line in results.get(name, []):
                    if line["name"] not in selected or (name, line["name"]) in seen:
                        continue
                    seen.add((name, line["name"]))
                    if "error" not in line and held_to_learn(line["tags"]) and gain(line) < learns:
                        # kept as a failed run: no judge reads its accuracy, its tags still
                        # say which settings the grid ran
                        unlearned[f"{name}/{line['name']}"] = gain(line)
                        lines.append({**line, "error": "its method did not learn"})
                    else:
                        lines.append(line)
                        used.append(f"{name}/{line['name']}")
            arguments.append(lines)
        if missing:
            evidence = f"{len(missing)} of its {len(runs)} runs missing: {', '.join(missing)}"
            verdict = _verdict(claim, INCONCLUSIVE, evidence)
        else:
            verdict = JUDGES[claim](*arguments)
            if unlearned:
                left_out = ", ".join(f"{run} (+{100 * g:.1f})" for run, g in unlearned.items())
                verdict.evidence = (
                    f"without {left_out}, under the {100 * learns:.0f} points over its random "
                    f"encoder a method must gain: {verdict.evidence}"
                )
        verdict.runs, verdict.missing, verdict.unlearned = runs, missing, tuple(unlearned)
        verdict.used = tuple(used)
        judged.append(verdict)
    return judged


def fifteen_epoch_verdicts(results, fast=False):
    """Claims 1, 3 and 6 as the 15-epoch grids (methods, shuffle-cifar) judge them: the first
    reading, set beside the one at the sweeps-cifar grid's budget."""
    return verdicts(results, fast, FIFTEEN_EPOCH_NEEDS)


def shapes_verdicts(results, fast=False):
    """Claims 2, 4 and 5 as the shapes grids (augmentations, dimension) judge them: the
    synthetic reading, set beside the CIFAR-10 one."""
    return verdicts(results, fast, SHAPES_NEEDS)


def two_seed_verdicts(results, fast=False, needs=NEEDS):
    """The verdicts from seeds 0 and 1 alone: set beside `verdicts`, they show where a third
    seed turns one."""
    two_seeds = {
        name: [line for line in lines if line["tags"]["seed"] in (0, 1)]
        for name, lines in results.items()
    }
    return verdicts(two_seeds, fast, needs)


def every_run_verdicts(results, fast=False, needs=NEEDS):
    """The verdicts with every run counted, the ones under `LEARNS` too: set beside `verdicts`,
    they show where leaving those runs out turns one."""
    return verdicts(results, fast, needs, learns=-math.inf)


def turned(results, other_verdicts, fast=False):
    """{claim: its verdict in `other_verdicts`} for each claim whose verdict there differs from
    its verdict in `verdicts`: where a third seed (`two_seed_verdicts`) or the runs under the
    bar (`every_run_verdicts`) turn one. A claim still waiting for runs is not turned."""
    return {
        v.claim: other.verdict
        for v, other in zip(verdicts(results, fast), other_verdicts(results, fast), strict=True)
        if v.verdict != other.verdict and not v.missing
    }


# ----- the claims table -----
SECOND_READINGS = {
    1: "15 epochs",
    3: "15 epochs",
    6: "15 epochs",
    2: "shapes",
    4: "shapes",
    5: "shapes",
}
FIRST_READING = {1: "60 epochs", 3: "60 epochs", 6: "60 epochs"}  # the others: "CIFAR-10"


def readings(results, fast=False):
    """{claim: [(reading, Verdict)]}: each claim's verdict, then its second reading where it has
    one (at 15 epochs for claims 1, 3 and 6, on shapes for claims 2, 4 and 5)."""
    second = {v.claim: v for v in fifteen_epoch_verdicts(results, fast)}
    second.update({v.claim: v for v in shapes_verdicts(results, fast)})
    return {
        v.claim: [(FIRST_READING.get(v.claim, "CIFAR-10"), v)]
        + ([(SECOND_READINGS[v.claim], second[v.claim])] if v.claim in second else [])
        for v in verdicts(results, fast)
    }


def pending(verdict):
    """ "18 of its 24 runs have no record yet (methods-cifar60 2, shuffle-cifar60 16)"."""
    grids = {}
    for run in verdict.missing:
        name = run.split("/")[0]
        grids[name] = grids.get(name, 0) + 1
    counts = ", ".join(f"{name} {count}" for name, count in grids.items())
    runs = len(verdict.runs)
    return f"{len(verdict.missing)} of its {runs} runs have no record yet ({counts})"


def table_cells(results, fast=False):
    """{claim: (the numbers, the verdict)}: the two cells of a claim's row in docs/CLAIMS.md's
    claims table, rendered from the records by the code that judges them. The numbers are each
    reading's evidence (or which runs it still waits for); the verdict is the first reading's,
    then the second reading's, and, where a third seed turns it, the verdict of seeds 0 and 1
    alone, or of every run counted where the runs under `LEARNS` turn it."""
    by_third_seed = turned(results, two_seed_verdicts, fast)
    by_the_bar = turned(results, every_run_verdicts, fast)
    cells = {}
    for claim, judged in readings(results, fast).items():
        numbers = ". ".join(
            f"{reading}: {pending(v) if v.missing else v.evidence}" for reading, v in judged
        )
        first = judged[0][1]
        verdict = first.verdict + (": its runs are pending" if first.missing else "")
        verdict += "".join(f"; {reading}: {v.verdict}" for reading, v in judged[1:])
        if claim in by_third_seed:
            verdict += f"; a third seed turns it: seeds 0 and 1 alone give {by_third_seed[claim]}"
        if claim in by_the_bar:
            verdict += f"; the runs under the bar turn it: counted, they give {by_the_bar[claim]}"
        cells[claim] = (numbers, verdict)
    return cells


def table(results, fast=False):
    """docs/CLAIMS.md's table of the numbers and verdicts, as markdown lines."""
    rows = ["| | the numbers | verdict |", "| --- | --- | --- |"]
    rows += [
        f"| {claim} | {numbers} | {verdict} |"
        for claim, (numbers, verdict) in table_cells(results, fast).items()
    ]
    return rows


def _listed(claims):
    """[1, 3, 6] -> "1, 3 and 6"."""
    names = [str(claim) for claim in claims]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def summary(results, fast=False):
    """The README's line of verdicts: the claims grouped by verdict, those whose first reading
    waits for runs named with their second reading's."""
    groups, waiting = {}, []
    for claim, judged in readings(results, fast).items():
        first = judged[0][1]
        if first.missing and len(judged) > 1:
            waiting.append((claim, judged[1]))
        else:
            groups.setdefault(first.verdict, []).append(claim)
    order = (SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE)
    text = ", ".join(f"{_listed(groups[v])} {v}" for v in order if v in groups)
    if waiting:
        by_verdict = {}
        for claim, (_, v) in waiting:
            by_verdict.setdefault(v.verdict, []).append(claim)
        second = ", ".join(f"{_listed(c)} {v}" for v in order if (c := by_verdict.get(v)))
        reading = waiting[0][1][0]
        text += (
            f"; {_listed([claim for claim, _ in waiting])} wait for their "
            f"{FIRST_READING[waiting[0][0]].replace(' epochs', '-epoch')} runs "
            f"(at {reading}: {second})"
        )
    return text
