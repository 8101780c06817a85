"""The named presets: a run's starting configuration, {Config field: value} on top of the
defaults (`Config.preset(name, **changes)` in tinybt/config.py; `--preset` on the command
line)."""

PRESETS = {
    # The README's main command: the offline shapes dataset, about 4 minutes on a 2-core CPU.
    # Crops of at least half the image keep the object in both views (it covers a small part
    # of the image, and the paper's 8% crops often cut it out). Downsampling in every stage
    # makes a step about 4x cheaper than strides 1-2-2-2 and lets the last stage see the
    # whole shape; on this budget, more epochs of that beat a full-resolution first stage.
    "shapes": dict(
        dataset="shapes",
        epochs=50,
        batch_size=64,
        widths="32-64-128-256",
        strides="2-2-2-2",
        projector="256-256-256",
        augment_changes={"crop_scale": (0.5, 1.0)},
        out="runs/shapes",
    ),
    # The acceptance recipe on CIFAR-10 (see README): the 4-stage encoder, 100 epochs.
    "cifar10": dict(
        dataset="cifar10",
        epochs=100,
        batch_size=128,
        widths="32-64-128-256",
        projector="512-512-512",
        optimizer="adam",
        lr=1e-3,
        weight_decay=1e-6,
        out="runs/cifar10",
    ),
    # Seconds, for tests and the notebooks' fast configuration.
    "tiny": dict(
        dataset="shapes",
        epochs=2,
        batch_size=32,
        widths="8-16",
        strides="1-2",
        projector="32-32",
        train_size=256,
        snapshot_size=64,
        out="runs/tiny",
    ),
}
