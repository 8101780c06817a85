"""The review's six claims, each judged from the experiments' results (tinybt/grids.py).

A verdict is computed, never typed in: `verdicts(results)` reads the grids' result lines and
returns, per claim, "supported", "not supported" or "inconclusive", with the numbers behind
it, the runs it used, and the runs it still lacks. A claim is judged only from the runs it
needs (`needed_runs`), and only once all of them are there: with any missing it is
inconclusive and names them. Notebook 10 draws the figures, and
`python -m tinybt.experiments verdicts` prints the table.

When two results differ (`compare`), the one rule, which the README and notebook 10 quote:

    Two groups of accuracies differ when their means are further apart than twice the larger
    of their spreads (the sample standard deviation over seeds), if both were measured over
    two or more seeds, or at least 3 points apart, if either is a single run. Means over seeds
    within twice the spread and under 3 points apart are the same; anything else is unclear.

The dimension sweep has one seed per point, so it is read as a trend: the least-squares slope
of accuracy against log2 D, with its standard error.
"""

import math
from dataclasses import dataclass

import numpy as np

from tinybt.grids import METHOD_NAMES, grid
from tinybt.tags import (
    ALL_AUGMENTATIONS,
    BARLOW_EMA,
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


# Which runs each claim needs: (grid, {tag: the values it may take}) for each grid it reads.
NEEDS = {
    1: [("methods", {"method": ("barlow", BARLOW_NOSTD)})],
    2: [
        (
            "augmentations",
            {"method": ("barlow", "byol"), "augment": (ALL_AUGMENTATIONS, CROP_AND_FLIP)},
        )
    ],
    3: [("methods", {"method": METHOD_NAMES}), ("shuffle-cifar", {})],
    4: [("dimension", {"method": ("barlow", "byol")})],
    5: [("dimension", {"method": ("barlow", BARLOW_EMA, "byol")})],
    6: [("methods", {"method": ("barlow", BARLOW_NOSTD, "vicreg")})],
}


def needed_runs(claim, fast=False):
    """{grid: [run names]} that claim `claim` is judged from, as the grids (or, with `fast`,
    the fast grids) define them."""
    needed = {}
    for name, wanted in NEEDS[claim]:
        needed[name] = [
            run
            for run, (tags, _) in grid(name, fast).items()
            if all(tags.get(key) in values for key, values in wanted.items())
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
    """(dimensions, accuracies) of one variant of the dimension grid, by increasing D."""
    points = sorted(
        (line["tags"]["dimension"], line["evaluation"]["learned"][metric])
        for line in lines
        if "error" not in line and line["tags"]["method"] == method
    )
    return [d for d, _ in points], [a for _, a in points]


# ----- the six claims -----
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
    drops = {
        method: paired_differences(
            by_seed(augmentations, method=method, augment=ALL_AUGMENTATIONS),
            by_seed(augmentations, method=method, augment=removed),
        )
        for method in ("barlow", "byol")
    }
    result = compare(drops["barlow"], drops["byol"])
    verdict = {"higher": SUPPORTED, "same": NOT_SUPPORTED, "lower": NOT_SUPPORTED}
    evidence = (
        f"drop from all augmentations to {removed}: Barlow Twins {describe(drops['barlow'])}, "
        f"BYOL {describe(drops['byol'])}: Barlow Twins' drop is {result}"
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
    (dims, barlow), (byol_dims, byol) = sweep(dimension, "barlow"), sweep(dimension, "byol")
    if len(dims) < 2 or len(byol_dims) < 2:
        return _verdict(4, INCONCLUSIVE, "the dimension sweep has too few runs")
    doublings = math.log2(dims[-1] / dims[0])
    (slope, error), (byol_slope, _) = trend(dims, barlow), trend(byol_dims, byol)
    gain, byol_gain = slope * doublings, byol_slope * doublings
    improves = gain >= THRESHOLD and not abs(slope) <= 2 * error
    flatter = byol_gain <= gain - THRESHOLD or abs(byol_gain) < THRESHOLD
    small = compare([byol[0]], [barlow[0]])
    evidence = (
        f"over D = {dims[0]}..{dims[-1]} the fitted gain is {100 * gain:+.1f} points for "
        f"Barlow Twins (slope {100 * slope:+.1f} ± {100 * error:.1f} per doubling), "
        f"{100 * byol_gain:+.1f} for BYOL; at D = {dims[0]} BYOL {byol[0]:.1%}, Barlow "
        f"Twins {barlow[0]:.1%} ({small})"
    )
    if improves and flatter and small == "higher":
        return _verdict(4, SUPPORTED, evidence)
    if (abs(gain) < THRESHOLD and abs(slope) <= 2 * error) or small == "lower":
        return _verdict(4, NOT_SUPPORTED, evidence)
    return _verdict(4, INCONCLUSIVE, evidence)


def claim_5(dimension):
    curves = {
        m: dict(zip(*sweep(dimension, m), strict=True)) for m in ("barlow", BARLOW_EMA, "byol")
    }
    shared = sorted(set(curves["barlow"]) & set(curves[BARLOW_EMA]) & set(curves["byol"]))
    if not shared:
        return _verdict(5, INCONCLUSIVE, "the dimension sweep has too few runs")
    d = shared[0]
    barlow, ema, byol = (curves[m][d] for m in ("barlow", BARLOW_EMA, "byol"))
    evidence = f"at D = {d}: Barlow Twins {barlow:.1%}, with EMA {ema:.1%}, BYOL {byol:.1%}"
    if compare([byol], [barlow]) != "higher":
        return _verdict(5, INCONCLUSIVE, evidence + ": BYOL has no lead to close here")
    if compare([ema], [barlow]) == "higher" and compare([ema], [byol]) != "lower":
        return _verdict(5, SUPPORTED, evidence)
    if compare([ema], [byol]) == "lower":
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


def _verdict(claim, verdict, evidence):
    return Verdict(claim, CLAIMS[claim], verdict, evidence)


JUDGES = {  # claim: (its judge, the grids it reads, in the judge's order)
    1: (claim_1, ("methods",)),
    2: (claim_2, ("augmentations",)),
    3: (claim_3, ("methods", "shuffle-cifar")),
    4: (claim_4, ("dimension",)),
    5: (claim_5, ("dimension",)),
    6: (claim_6, ("methods",)),
}


def verdicts(results, fast=False):
    """The six Verdicts from {grid name: result lines} (grids.read_results of each record).

    Each claim reads only the runs `needed_runs` names (of the fast grids, with `fast`); if
    any is missing, its verdict is inconclusive and says which."""
    judged = []
    for claim, (judge, grids) in JUDGES.items():
        needed = needed_runs(claim, fast)
        used = {
            name: [line for line in results.get(name, []) if line["name"] in needed[name]]
            for name in grids
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
            verdict = judge(*(used[name] for name in grids))
        verdict.runs, verdict.missing = runs, missing
        judged.append(verdict)
    return judged
