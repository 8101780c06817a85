"""The tags that name the grids' variants, defined once: tinybt/study/grids.py gives them to its
runs and tinybt/study/comparison.py picks runs by them, so a tag renamed here is renamed on both
sides.

A run's tags are {"method": ..., "seed": ...} plus what its grid varies: "augment",
"dimension", "colour", or, in the sweeps-cifar grid, all of "dimension", "augment" and "batch"
(one run stands for the defaults of all three sweeps). The method tag is a method's name, or
one of these variants of it.
"""

BARLOW_NOSTD = "barlow-nostd"  # Barlow Twins without standardising the embeddings
BARLOW_EMA = "barlow-ema"  # Barlow Twins with an EMA target (--ema)
BARLOW_HYBRID = "barlow-ema-pred"  # with BYOL's EMA target and predictor: the review's hybrid
BARLOW_INVERSE_D = "barlow-1/D"  # Barlow Twins with lambda = 1/D

# the augmentation grid's "augment" tag: what is removed
ALL_AUGMENTATIONS = "all"
NO_JITTER = "no colour jitter"  # also the shuffle grids' "colour" tag without colour distortion
NO_GRAYSCALE = "no grayscale"
CROP_AND_FLIP = "crop and flip only"

# the shuffle grids' "colour" tag
JITTER = "colour jitter"
