"""The kNN monitor: a held-out accuracy every K epochs, in the metrics and in a figure, that
changes nothing of the training itself."""

import numpy as np
from PIL import Image

from tinybt.build import build_model, load_split
from tinybt.config import Config
from tinybt.monitor import BANK, QUERIES, monitor_accuracy, monitor_sample
from tinybt.probe import extract_features, knn_accuracy
from tinybt.run import train


def tiny_config(tmp_path, **changes):
    return Config.preset(
        "tiny",
        evaluate=False,
        data_dir=str(tmp_path.parent / "tinybt-data"),
        out=str(tmp_path / "run"),
        **changes,
    )


def quiet_train(config, **options):
    return train(config, progress=False, log=lambda *_: None, **options)


def test_the_monitor_logs_every_k_epochs_and_draws_its_curve(tmp_path):
    result = quiet_train(tiny_config(tmp_path, epochs=4, monitor_every=2))
    metrics = result["metrics"]
    assert [("knn_monitor" in r) for r in metrics] == [False, True, False, True]
    for record in metrics[1::2]:
        assert 0 <= record["knn_monitor"] <= 1 and record["monitor_seconds"] > 0
    figure = tmp_path / "run" / "training.png"
    with Image.open(figure) as image:
        assert image.size == (900, 320)


def test_the_monitor_changes_no_loss_of_the_run(tmp_path):
    watched = quiet_train(tiny_config(tmp_path / "a", epochs=2, monitor_every=1))["metrics"]
    unwatched = quiet_train(tiny_config(tmp_path / "b", epochs=2, monitor_every=0))["metrics"]
    assert [r["loss"] for r in watched] == [r["loss"] for r in unwatched]
    assert not any("knn_monitor" in r for r in unwatched)
    assert not (tmp_path / "b" / "run" / "training.png").exists()


def test_the_monitor_is_knn_on_its_fixed_sample(tmp_path):
    config = tiny_config(tmp_path)
    train_set, test_set = load_split(config, "train"), load_split(config, "test")
    sample = monitor_sample(train_set, test_set, seed=0)
    assert len(sample.bank) == min(BANK, len(train_set)) == 256
    assert len(sample.queries) == min(QUERIES, len(test_set))
    again = monitor_sample(train_set, test_set, seed=0)
    np.testing.assert_array_equal(sample.queries.images, again.queries.images)
    encoder = build_model(config).encoder
    expected = knn_accuracy(
        extract_features(encoder, sample.bank),
        sample.bank.labels,
        extract_features(encoder, sample.queries),
        sample.queries.labels,
        num_classes=len(train_set.classes),
    )
    assert monitor_accuracy(encoder, sample) == expected
