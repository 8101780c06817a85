"""How good are the learned representations?  python -m tinybt.evaluate runs/NAME

Self-supervised training never sees a label; we judge it by how well labels can be read off the
frozen encoder's features y (N, F) afterwards:

  kNN        each test image votes among its k = 20 most similar training images (cosine
             similarity s), each vote weighted by exp(s / T), T = 0.07 (Wu et al., 2018).
  linear     a logistic regression on the frozen, standardised features, trained with
             tinybt's own engine; its test accuracy is the "linear probe" of the literature.

Both are always reported beside the same numbers for the encoder at its random
initialisation: that gap is what self-supervision bought.
"""

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from tinybt import backend, nn
from tinybt.augment import to_model_input
from tinybt.checkpoint import load_checkpoint
from tinybt.errors import TinyBTError
from tinybt.optim import Adam
from tinybt.tensor import Tensor, no_grad


def extract_features(encoder, images, mean, std, batch_size=500):
    """Frozen features y = encoder(x) of uint8 images (N, H, W, 3) -> (N, F) array.

    Evaluation mode: batch norm uses its running statistics, so a feature does not depend on
    which other images share its batch.
    """
    encoder.eval()
    features = []
    with no_grad():
        for start in range(0, len(images), batch_size):
            x = to_model_input(backend.to_device(images[start : start + batch_size]), mean, std)
            features.append(encoder(Tensor(x)).data)
    encoder.train()
    return backend.xp().concatenate(features)


def knn_accuracy(
    train_features,
    train_labels,
    test_features,
    test_labels,
    k=20,
    temperature=0.07,
    num_classes=None,
    chunk=256,
):
    """Accuracy of weighted kNN with cosine similarity.  features: (N, F), labels: (N,).

    score(class) = Σ over the k nearest training images of that class of exp(s / T).
    """
    xp = backend.xp()
    train_labels, test_labels = xp.asarray(train_labels), xp.asarray(test_labels)
    num_classes = num_classes or int(train_labels.max()) + 1
    k = min(k, len(train_features))
    train_unit = _unit_rows(train_features)
    test_unit = _unit_rows(test_features)
    correct = 0
    for start in range(0, len(test_unit), chunk):  # chunks bound the (chunk, N_train) memory
        similarity = test_unit[start : start + chunk] @ train_unit.T
        nearest = xp.argpartition(-similarity, k - 1, axis=1)[:, :k]
        weights = xp.exp(xp.take_along_axis(similarity, nearest, axis=1) / temperature)
        votes = xp.zeros((len(similarity), num_classes), dtype=weights.dtype)
        rows = xp.arange(len(similarity))[:, None].repeat(k, axis=1)
        backend.scatter_add(votes, (rows, train_labels[nearest]), weights)
        correct += int((votes.argmax(axis=1) == test_labels[start : start + chunk]).sum())
    return correct / len(test_unit)


def _unit_rows(features):
    norms = backend.xp().linalg.norm(features, axis=1, keepdims=True)
    return features / backend.xp().maximum(norms, 1e-12)


def softmax_cross_entropy(logits, labels):
    """Mean of -log softmax(logits)[label].  logits: (N, K) Tensor, labels: (N,) ints.

    log softmax(x)_k = x_k - m - log Σ_j exp(x_j - m) for any constant m; m = max_j x_j keeps
    exp from overflowing. m is a constant here, so it needs no gradient.
    """
    shifted = logits - Tensor(logits.data.max(axis=1, keepdims=True))
    log_probs = shifted - shifted.exp().sum(axis=1, keepdims=True).log()
    rows = backend.xp().arange(len(labels))
    return -log_probs[rows, labels].mean()


def linear_probe_accuracy(
    train_features,
    train_labels,
    test_features,
    test_labels,
    epochs=100,
    batch_size=256,
    lr=1e-3,
    weight_decay=1e-5,
    seed=0,
):
    """Test accuracy of logistic regression on frozen features (N, F).

    The features are standardised with the training set's mean and std first, so one learning
    rate suits every encoder. Adam on minibatches, a fixed number of epochs.
    """
    xp = backend.xp()
    mean, std = train_features.mean(axis=0), train_features.std(axis=0) + 1e-6
    train_x, test_x = (train_features - mean) / std, (test_features - mean) / std
    train_y, test_y = xp.asarray(train_labels), xp.asarray(test_labels)
    num_classes = int(train_y.max()) + 1
    rng = np.random.default_rng(seed)
    classifier = nn.Linear(train_x.shape[1], num_classes, rng=rng)
    optimizer = Adam(classifier.parameters(), lr=lr, weight_decay=weight_decay)
    for _ in range(epochs):
        order = backend.to_device(rng.permutation(len(train_x)))
        for start in range(0, len(train_x), batch_size):
            rows = order[start : start + batch_size]
            loss = softmax_cross_entropy(classifier(Tensor(train_x[rows])), train_y[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with no_grad():
        predictions = classifier(Tensor(test_x)).data.argmax(axis=1)
    return float((predictions == test_y).mean())


def evaluate_encoder(encoder, train_set, test_set, probe_epochs=100):
    """{"knn": accuracy, "linear": accuracy} of one encoder's frozen features."""
    mean, std = train_set.mean, train_set.std
    train_features = extract_features(encoder, train_set.images, mean, std)
    test_features = extract_features(encoder, test_set.images, mean, std)
    return {
        "knn": knn_accuracy(
            train_features,
            train_set.labels,
            test_features,
            test_set.labels,
            num_classes=len(train_set.classes),
        ),
        "linear": linear_probe_accuracy(
            train_features, train_set.labels, test_features, test_set.labels, epochs=probe_epochs
        ),
    }


def evaluate_run(model, config, train_set, test_set, probe_epochs=100, log=print):
    """Accuracies of the trained encoder and of the same encoder at its initialisation."""
    from tinybt.train import build_model  # the random baseline: the run's own starting point

    learned = evaluate_encoder(model.encoder, train_set, test_set, probe_epochs)
    random_init = evaluate_encoder(build_model(config).encoder, train_set, test_set, probe_epochs)
    result = {
        "learned": learned,
        "random_init": random_init,
        "train_images": len(train_set),
        "test_images": len(test_set),
    }
    log(format_table(result))
    return result


def format_table(result):
    rows = [f"{'encoder':<14}{'kNN (k=20)':>12}{'linear probe':>14}"]
    for name in ("learned", "random_init"):
        r = result[name]
        rows.append(f"{name:<14}{100 * r['knn']:>11.1f}%{100 * r['linear']:>13.1f}%")
    return "\n".join(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m tinybt.evaluate",
        description="kNN and linear-probe accuracy of a run's encoder, beside a random one.",
    )
    parser.add_argument("run", help="a run folder (runs/NAME) or its checkpoint.npz")
    parser.add_argument("--backend", choices=backend.BACKENDS, default=None)
    parser.add_argument("--data-dir", default=None, help="where the dataset is, if moved")
    parser.add_argument("--probe-epochs", type=int, default=100)
    args = parser.parse_args(argv)
    try:
        result = evaluate_checkpoint(args.run, args.backend, args.data_dir, args.probe_epochs)
    except TinyBTError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


def evaluate_checkpoint(path, backend_name=None, data_dir=None, probe_epochs=100):
    from tinybt.train import Config, build_model, load_split

    path = Path(path)
    checkpoint = path / "checkpoint.npz" if path.is_dir() else path
    model_state, _, meta = load_checkpoint(checkpoint)
    config = Config(**meta["config"])
    config = replace(
        config, backend=backend_name or config.backend, data_dir=data_dir or config.data_dir
    )
    backend.set_backend(config.backend)
    backend.reuse_freed_memory()
    model = build_model(config)
    model.load_state_dict(model_state)
    train_set, test_set = load_split(config, "train"), load_split(config, "test")
    return evaluate_run(model, config, train_set, test_set, probe_epochs=probe_epochs)


if __name__ == "__main__":
    sys.exit(main())
