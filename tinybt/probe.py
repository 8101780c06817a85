"""How good are the learned representations? kNN and linear probe on frozen features.

Self-supervised training never sees a label; we judge it by how well labels can be read off the
frozen encoder's features y (N, F) afterwards:

  kNN        each test image votes among its k = 20 most similar training images (cosine
             similarity s), each vote weighted by exp(s / T), T = 0.07 (Wu et al., 2018).
  linear     a logistic regression on the frozen, standardised features, trained with
             tinybt's own engine; its test accuracy is the "linear probe" of the literature.

Both are reported beside the same numbers for the encoder at its random initialisation
(`tinybt.evaluation.evaluate_run`): that gap is what self-supervision bought.
"""

import numpy as np

from tinybt import backend, nn
from tinybt.augment import to_model_input
from tinybt.optim import Adam
from tinybt.tensor import Tensor, no_grad


def extract_features(encoder, dataset, batch_size=500):
    """Frozen features y = encoder(x) of every image of `dataset`, in order -> (N, F) array,
    the images normalised with the dataset's mean and std (its training split's)."""
    return features_of(encoder, dataset.images, dataset.mean, dataset.std, batch_size)


def features_of(encoder, images, mean, std, batch_size=500):
    """Frozen features of uint8 images (N, H, W, 3), normalised with `mean` and `std` (3,) ->
    (N, F) array on the backend.

    In evaluation mode batch norm uses its running statistics, so a feature does not depend on
    which other images share its batch.
    """
    encoder.eval()
    features = []
    with no_grad():
        for start in range(0, len(images), batch_size):
            batch = backend.to_device(images[start : start + batch_size])
            features.append(encoder(Tensor(to_model_input(batch, mean, std))).data)
    encoder.train()
    return backend.get_array_module(features[0]).concatenate(features)


def nearest_neighbours(features, queries, k):
    """int (len(queries), k): the rows of `features` (N, F) most similar (cosine) to each row
    `queries` of it, the most similar first, the query itself left out."""
    xp = backend.get_array_module(features)
    unit = _unit_rows(features)
    similarity = unit[queries] @ unit.T  # (Q, N)
    similarity[xp.arange(len(queries)), queries] = -xp.inf
    return backend.to_host(xp.argsort(-similarity, axis=1)[:, :k])


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
    xp = backend.get_array_module(train_features)
    train_labels, test_labels = backend.to_device(train_labels), backend.to_device(test_labels)
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
    xp = backend.get_array_module(features)
    return features / xp.maximum(xp.linalg.norm(features, axis=1, keepdims=True), 1e-12)


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
    mean, std = train_features.mean(axis=0), train_features.std(axis=0) + 1e-6
    train_x, test_x = (train_features - mean) / std, (test_features - mean) / std
    train_y, test_y = backend.to_device(train_labels), backend.to_device(test_labels)
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
    train_features = extract_features(encoder, train_set)
    test_features = extract_features(encoder, test_set)
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


def format_table(result):
    """The accuracies of `evaluate_run`'s result as a small table, with its note if any."""
    rows = [f"{'encoder':<14}{'kNN (k=20)':>12}{'linear probe':>14}"]
    for name in ("learned", "random_init"):
        r = result[name]
        rows.append(f"{name:<14}{100 * r['knn']:>11.1f}%{100 * r['linear']:>13.1f}%")
    if result.get("note"):
        rows.append(f"note: {result['note']}")
    return "\n".join(rows)
