"""The review's eight claims, each judged from the experiments' results (tinybt/study/grids.py).

A verdict is computed, never typed in: `verdicts(results)` reads the grids' result lines and
returns, per claim, "supported", "not supported" or "inconclusive", with the numbers behind
it, the runs it used, and the runs it still lacks. A claim is judged only from the runs it
needs (`needed_runs`), and only once all of them are there: with any missing it is
inconclusive and names them. Notebook 10 draws the figures, and
`python -m tinybt.experiments verdicts` prints the table.

When two results differ (`compare`), the one rule, which docs/CLAIMS.md and notebook 10 quote:

    Two groups of accuracies differ when their means are further apart than twice the larger
    of their spreads (the sample standard deviation over seeds), if both were measured over
    two or more seeds, or at least 3 points apart, if either is a single run. Means over seeds
    within twice the spread and under 3 points apart are the same; anything else is unclear.

A dimension sweep is read as a trend: the least-squares slope of accuracy against log2 D,
through every run (each seed a point), with its standard error.

Claims 2, 4, 5, 7 and 8 are judged on CIFAR-10 (the sweeps-cifar grid, two seeds a setting).
Claims 2, 4 and 5 were first judged on the shapes data (the augmentations and dimension grids);
`shapes_verdicts` keeps that reading beside the CIFAR one, so that where they disagree it shows.
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
    runs it read ("grid/run") and the runs it needs that have no result yet."""

    claim: int
    statement: str
    verdict: str
    evidence: str
    runs: tuple = ()
    missing: tuple = ()


# Which runs each claim needs: (grid, {tag: the values it may take}) for each set of runs it
# reads. DEFAULT: the value of the sweeps-cifar run that all three of its sweeps share.
DEFAULT = "default"
AT_DEFAULT = {"dimension": DEFAULT, "augment": (ALL_AUGMENTATIONS,), "batch": DEFAULT}
AUGMENT_SWEEP = {**AT_DEFAULT, "augment": (ALL_AUGMENTATIONS, CROP_AND_FLIP)}
DIMENSION_SWEEP = {"augment": (ALL_AUGMENTATIONS,), "batch": DEFAULT}
BATCH_SWEEP = {"dimension": DEFAULT, "augment": (ALL_AUGMENTATIONS,)}
NEEDS = {
    1: [("methods", {"method": ("barlow", BARLOW_NOSTD)})],
    2: [("sweeps-cifar", {"method": ("barlow", "byol", "simclr"), **AUGMENT_SWEEP})],
    3: [("methods", {"method": METHOD_NAMES}), ("shuffle-cifar", {})],
    4: [("sweeps-cifar", {"method": ("barlow", "byol"), **DIMENSION_SWEEP})],
    5: [("sweeps-cifar", {"method": ("barlow", BARLOW_EMA, "byol"), **DIMENSION_SWEEP})],
    6: [("methods", {"method": ("barlow", BARLOW_NOSTD, "vicreg")})],
    7: [("sweeps-cifar", {"method": ("barlow", "simclr", "byol"), **BATCH_SWEEP})],
    8: [
        ("sweeps-cifar", {"method": ("barlow", "byol", BARLOW_HYBRID), **AUGMENT_SWEEP}),
        ("sweeps-cifar", {"method": ("barlow", "byol", BARLOW_HYBRID), **DIMENSION_SWEEP}),
    ],
}
# The shapes reading of claims 2, 4 and 5 (one seed a dimension, two for the augmentations).
SHAPES_NEEDS = {
    2: [
        (
            "augmentations",
            {"method": ("barlow", "byol"), "augment": (ALL_AUGMENTATIONS, CROP_AND_FLIP)},
        )
    ],
    4: [("dimension", {"method": ("barlow", "byol")})],
    5: [("dimension", {"method": ("barlow", BARLOW_EMA, "byol")})],
}


def needed_runs(claim, fast=False, needs=NEEDS):
    """{grid: [run names]} that claim `claim` is judged from, as the grids (or, with `fast`,
    the fast grids) define them."""
    needed = {}
    for name, wanted in needs[claim]:
        defaults = sweep_defaults(name, fast)
        wanted = {
            key: (defaults[key],) if values == DEFAULT else values for key, values in wanted.items()
        }
        runs = needed.setdefault(name, [])
        runs += [
            run
            for run, (tags, _) in grid(name, fast).items()
            if all(tags.get(key) in values for key, values in wanted.items()) and run not in runs
        ]
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


def describe_drop(values):
    """ "13.6 ± 0.8 points (2 seeds)": a group of drops, each the difference of two accuracies of
    one seed, quoted in points (of accuracy, not a percentage of it)."""
    mean, spread = mean_and_spread(values)
    if not values:
        return "no runs"
    if spread is None:
        return f"{100 * mean:.1f} points (1 run)"
    return f"{100 * mean:.1f} ± {100 * spread:.1f} points ({len(values)} seeds)"


# ----- whether each method learns -----
LEARNS = 0.10  # a method learns: 10 points of linear accuracy over its random-initialised encoder


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
    """(slope, standard error) of accuracy against log2(D) by least squares: the change per
    doubling of D. The standard error is nan with fewer than three points."""
    x, y = np.log2(np.asarray(dimensions, float)), np.asarray(values, float)
    slope, intercept = np.polyfit(x, y, 1)
    if len(x) < 3:
        return float(slope), math.nan
    residuals = y - (slope * x + intercept)
    error = math.sqrt((residuals**2).sum() / (len(x) - 2) / ((x - x.mean()) ** 2).sum())
    return float(slope), error


def sweep(lines, method, metric="linear"):
    """{D: [accuracies over seeds]} of one variant of a dimension sweep, by increasing D."""
    curve = {}
    for line in sorted(lines, key=lambda line: line["tags"]["dimension"]):
        if "error" not in line and line["tags"]["method"] == method:
            curve.setdefault(line["tags"]["dimension"], []).append(
                line["evaluation"]["learned"][metric]
            )
    return curve


def fitted_gain(curve):
    """(gain, slope, standard error) of a sweep's {D: accuracies}: the least-squares line through
    every run against log2 D, and the change it fits from the smallest D to the largest."""
    dimensions = [d for d, values in curve.items() for _ in values]
    slope, error = trend(dimensions, [a for values in curve.values() for a in values])
    return slope * math.log2(max(curve) / min(curve)), slope, error


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


def claim_3(methods, shuffle):
    """Per method, on CIFAR-10: shuffled without colour jitter vs real images (the methods
    grid, the same budget), and shuffled with colour jitter vs the random encoder on shuffled
    images. (The shapes shuffle grid is a control, not evidence: shapes' colours carry no
    class, so there no histogram can do as well as real images.)"""
    verdicts, parts = [], []
    for method in sorted({line["tags"]["method"] for line in shuffle}):
        real = accuracies(methods, method=method)
        plain = accuracies(shuffle, method=method, colour=NO_JITTER)
        jittered = accuracies(shuffle, method=method, colour=JITTER)
        random_init = accuracies(shuffle, encoder="random_init", method=method, colour=JITTER)
        as_real, as_random = compare(plain, real), compare(jittered, random_init)
        if as_real in ("same", "higher") and as_random in ("same", "lower"):
            verdicts.append(SUPPORTED)
        elif as_real == "lower" or as_random == "higher":
            verdicts.append(NOT_SUPPORTED)
        else:
            verdicts.append(INCONCLUSIVE)
        parts.append(
            f"{method}: shuffled {describe(plain)} vs real {describe(real)} ({as_real}); "
            f"shuffled with jitter {describe(jittered)} vs random {describe(random_init)} "
            f"({as_random})"
        )
    verdict = verdicts[0] if verdicts and len(set(verdicts)) == 1 else INCONCLUSIVE
    return _verdict(3, verdict, "; ".join(parts) or "no runs")


def claim_4(dimension):
    """Three parts, each "holds", "fails" or "unclear" (see `_judged_in_parts`).

    Barlow Twins keeps improving: its fitted gain over the sweep is 3 points or more, with a
    slope above twice its standard error (fails: under 3 points with a slope within twice its
    error, or a slope below minus twice its error). BYOL stays nearly flat: its fitted gain is
    under 3 points, or 3 below Barlow Twins' (fails otherwise). BYOL wins at the smallest D:
    higher there than Barlow Twins (fails: the same or lower).
    """
    barlow, byol = sweep(dimension, "barlow"), sweep(dimension, "byol")
    if len(barlow) < 2 or len(byol) < 2:
        return _verdict(4, INCONCLUSIVE, "the dimension sweep has too few runs")
    (gain, slope, error), (byol_gain, _, _) = fitted_gain(barlow), fitted_gain(byol)
    smallest = min(barlow)
    if gain >= THRESHOLD and slope > 2 * error:
        improving = ("improves", "holds")
    elif (abs(gain) < THRESHOLD and abs(slope) <= 2 * error) or slope < -2 * error:
        improving = ("does not improve", "fails")
    else:
        improving = ("unclear", "unclear")
    flat = abs(byol_gain) < THRESHOLD or byol_gain <= gain - THRESHOLD
    small = compare(byol[smallest], barlow[smallest])
    numbers = (
        f"over D = {smallest}..{max(barlow)} the fitted gain is {100 * gain:+.1f} points for "
        f"Barlow Twins (slope {100 * slope:+.1f} ± {100 * error:.1f} per doubling), "
        f"{100 * byol_gain:+.1f} for BYOL; at D = {smallest} BYOL {describe(byol[smallest])}, "
        f"Barlow Twins {describe(barlow[smallest])}"
    )
    parts = {
        "Barlow Twins keeps improving": improving,
        "BYOL stays nearly flat": ("flat", "holds") if flat else ("not flat", "fails"),
        f"BYOL wins at D = {smallest}": _part(small, ("higher",), ("same", "lower")),
    }
    return _judged_in_parts(4, numbers, parts)


def claim_5(dimension):
    """At the smallest D: Barlow Twins --ema against Barlow Twins and against BYOL."""
    curves = {m: sweep(dimension, m) for m in ("barlow", BARLOW_EMA, "byol")}
    shared = sorted(set(curves["barlow"]) & set(curves[BARLOW_EMA]) & set(curves["byol"]))
    if not shared:
        return _verdict(5, INCONCLUSIVE, "the dimension sweep has too few runs")
    d = shared[0]
    barlow, ema, byol = (curves[m][d] for m in ("barlow", BARLOW_EMA, "byol"))
    evidence = (
        f"at D = {d}: Barlow Twins {describe(barlow)}, with EMA {describe(ema)}, "
        f"BYOL {describe(byol)}"
    )
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
    largest, smallest = max(curves[BARLOW_HYBRID]), min(curves[BARLOW_HYBRID])
    removed = [line for line in sweeps if line["tags"]["augment"] == CROP_AND_FLIP]
    d = removed[0]["tags"]["dimension"]  # the augmentation sweep's one dimension
    drops = {
        m: paired_differences(
            by_seed(sweeps, method=m, augment=ALL_AUGMENTATIONS, dimension=d),
            by_seed(sweeps, method=m, augment=CROP_AND_FLIP),
        )
        for m in ("barlow", "byol", BARLOW_HYBRID)
    }
    at_large = compare(curves[BARLOW_HYBRID][largest], curves["barlow"][largest])
    drop = compare(drops[BARLOW_HYBRID], drops["byol"])
    at_small = compare(curves[BARLOW_HYBRID][smallest], curves["byol"][smallest])
    numbers = (
        f"hybrid {describe(curves[BARLOW_HYBRID][largest])} at D = {largest} (Barlow Twins "
        f"{describe(curves['barlow'][largest])}); drop to crop and flip only: hybrid "
        f"{describe_drop(drops[BARLOW_HYBRID])}, BYOL {describe_drop(drops['byol'])}, Barlow Twins "
        f"{describe_drop(drops['barlow'])}; at D = {smallest} hybrid "
        f"{describe(curves[BARLOW_HYBRID][smallest])}, BYOL "
        f"{describe(curves['byol'][smallest])}"
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


def verdicts(results, fast=False, needs=NEEDS):
    """The Verdicts of the claims in `needs` (the eight, on CIFAR-10 where a grid can do it), from
    {grid name: result lines} (grids.read_results of each record).

    Each claim reads only the runs `needed_runs` names (of the fast grids, with `fast`), given
    to its judge one list per grid it reads; if any is missing, its verdict is inconclusive and
    says which."""
    judged = []
    for claim in needs:
        needed = needed_runs(claim, fast, needs)
        used = {
            name: [line for line in results.get(name, []) if line["name"] in runs]
            for name, runs in needed.items()
        }
        present = {(name, line["name"]) for name, lines in used.items() for line in lines}
        runs = tuple(f"{name}/{run}" for name, names in needed.items() for run in names)
        missing = tuple(
            f"{name}/{run}"
            for name, names in needed.items()
            for run in names
            if (name, run) not in present
        )
        if missing:
            evidence = f"{len(missing)} of its {len(runs)} runs missing: {', '.join(missing)}"
            verdict = _verdict(claim, INCONCLUSIVE, evidence)
        else:
            verdict = JUDGES[claim](*used.values())
        verdict.runs, verdict.missing = runs, missing
        judged.append(verdict)
    return judged


def shapes_verdicts(results, fast=False):
    """Claims 2, 4 and 5 as the shapes grids (augmentations, dimension) judge them: the
    synthetic reading, set beside the CIFAR-10 one."""
    return verdicts(results, fast, SHAPES_NEEDS)
