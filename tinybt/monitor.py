"""Watching a long run learn: the kNN accuracy of the encoder every few epochs.

The loss of a run falls from the first epoch on, but says little about whether the features are
getting better; the kNN probe says it directly. Every `--monitor-every` K epochs (and after
the last), the run computes the kNN accuracy (tinybt/probe.py: k = 20, cosine similarity) of
a fixed sample of held-out images against a fixed sample of training images, the feature bank,
and logs it in metrics.jsonl as `knn_monitor`.

    bank     BANK = 5,000 training images (all of them where there are fewer), labels known
    queries  QUERIES = 1,000 held-out images

Both samples are drawn once from the run's seed, so every point of the curve is measured on the
same images, and in evaluation mode, so the run's training is left exactly as it would be
without the monitor. It costs one forward pass of 6,000 images on process 0, against the
2 x N forward and backward passes of each epoch's views, shared by every process: on all of
CIFAR-10 as two processes, measured at about 4 s against 110 s per epoch, so 3.5% of the run
with K = 1 and 0.7% with K = 5, the default (a point every 5 epochs draws a 100-epoch run's
curve in 20 points). The accuracy is below the final evaluation's, which uses every training
image as the bank, but it rises and falls with it.
"""

from dataclasses import dataclass, replace

import numpy as np

from tinybt.data import Dataset
from tinybt.probe import extract_features, knn_accuracy

BANK = 5000
QUERIES = 1000


@dataclass
class MonitorSample:
    """The fixed images the monitor measures: a bank of training images, held-out queries."""

    bank: Dataset
    queries: Dataset


def monitor_sample(train_set, test_set, seed):
    """The bank (up to BANK training images) and queries (up to QUERIES held-out images), drawn
    once from `seed` by their own generator: the run's random draws are left untouched."""
    rng = np.random.default_rng([seed, 4])
    bank = np.sort(rng.permutation(len(train_set))[:BANK])
    queries = np.sort(rng.permutation(len(test_set))[:QUERIES])
    return MonitorSample(_subset(train_set, bank), _subset(test_set, queries))


def _subset(dataset, rows):
    """The images `rows` of `dataset`, with its labels, mean and std."""
    return replace(dataset, images=dataset.images[rows], labels=dataset.labels[rows])


def monitor_accuracy(encoder, sample):
    """kNN accuracy (in [0, 1]) of the encoder's features of `sample.queries` against those of
    `sample.bank`, in evaluation mode (batch norm's running statistics: nothing is updated)."""
    bank = extract_features(encoder, sample.bank)
    queries = extract_features(encoder, sample.queries)
    return knn_accuracy(
        bank,
        sample.bank.labels,
        queries,
        sample.queries.labels,
        num_classes=len(sample.bank.classes),
    )
