"""Figures, written to PNG (and GIF) files, each whole or not at all (atomic_write).

Figures are drawn on a matplotlib `Figure` with the Agg canvas, without pyplot: no window
opens, nothing changes matplotlib's global state, and it works the same on a headless server
as in a notebook. matplotlib is imported when the first figure is drawn, not with this module:
its import takes about half a second, and a command that stops at a mistake in its options,
before any figure, should answer at once.
"""

import numpy as np
from PIL import Image

from tinybt import backend
from tinybt.checkpoint import atomic_write
from tinybt.methods.barlow_twins import correlation_summary

CELL_INCHES = 1.3  # size of one image in a grid


def _new_figure(width, height):
    """An empty matplotlib Figure of width x height inches, drawn by the Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height))
    FigureCanvasAgg(figure)
    return figure


def save_view_grid(originals, view_a, view_b, path, mean, std):
    """Write a PNG grid: one row per image, columns original | view 1 | view 2.

    originals  uint8 (N, H, W, 3), as stored in a Dataset
    view_a, view_b  normalised float32 (N, 3, S, S), as the augmentation pipeline returns them
                    (either backend); mean, std (3,) are what they were normalised with.
    """
    columns = [
        ("original", np.asarray(backend.to_host(originals))),
        ("view 1", displayable(view_a, mean, std)),
        ("view 2", displayable(view_b, mean, std)),
    ]
    rows = len(columns[0][1])
    figure = _new_figure(3 * CELL_INCHES, rows * CELL_INCHES)
    axes = figure.subplots(rows, 3, squeeze=False)
    for column, (title, images) in enumerate(columns):
        axes[0, column].set_title(title, fontsize=9)
        for row in range(rows):
            axes[row, column].imshow(images[row], interpolation="nearest")
            axes[row, column].set_axis_off()
    figure.tight_layout(pad=0.3)
    atomic_write(path, lambda file: figure.savefig(file, format="png", dpi=100))


def displayable(views, mean, std):
    """Normalised float (N, 3, S, S) -> uint8 (N, S, S, 3) on the host: x * std + mean, clipped."""
    images = backend.to_host(views).transpose(0, 2, 3, 1)
    images = images * np.asarray(std, dtype=np.float32) + np.asarray(mean, dtype=np.float32)
    return np.round(np.clip(images, 0, 1) * 255).astype(np.uint8)


def pca_2d(features):
    """The features projected on their two principal axes, for a scatter plot.

    features (N, F), either backend -> (points (N, 2), explained (2,)) on the host, where
    `explained` is the fraction of the total variance along each axis.

    With the centred features X = U S Vᵀ (the SVD), the principal axes are the first two
    columns of V, and the projections X V[:, :2] = U[:, :2] S[:2]; the variance along axis k
    is S_k² / N.
    """
    centred = np.asarray(backend.to_host(features), dtype=np.float64)
    centred = centred - centred.mean(axis=0)
    left, singular, _ = np.linalg.svd(centred, full_matrices=False)
    variance = singular**2
    return left[:, :2] * singular[:2], variance[:2] / max(variance.sum(), 1e-300)


# ----- the cross-correlation matrix converging to the identity -----
def _heatmap_block(matrix, size=64):
    """The top-left size x size block of C: with D = 512 the whole matrix is too fine to see."""
    return np.asarray(matrix, dtype=np.float32)[:size, :size]


def save_cross_correlation_grid(steps, matrices, path, samples, columns=6, size=64):
    """Heatmaps of C (D, D) at up to `columns` of the snapshot steps, first to last, beside
    its mean diagonal and off-diagonal RMS over all steps. Written as a PNG to `path`.

    A converging run shows the diagonal lighting up (C_ii -> 1) while the rest stays in a band
    around 0. `samples` is the number of images each C was measured on, N: the band cannot
    be narrower than the noise floor 1/sqrt(N), the RMS correlation of independent features
    measured on N samples, which the curves show as a dotted line.
    """
    steps, matrices = list(steps), np.asarray(matrices, dtype=np.float32)
    shown = np.unique(np.linspace(0, len(steps) - 1, min(columns, len(steps))).astype(int))
    figure = _new_figure(2.2 * len(shown) + 4.0, 2.6)
    # heatmaps | colour bar | (empty, room for the bar's labels) | curves
    grid = figure.add_gridspec(
        1, len(shown) + 3, width_ratios=[1] * len(shown) + [0.07, 0.25, 1.6], wspace=0.3
    )
    for column, index in enumerate(shown):
        axes = figure.add_subplot(grid[0, column])
        image = axes.imshow(_heatmap_block(matrices[index], size), cmap="RdBu_r", vmin=-1, vmax=1)
        axes.set_title(f"step {steps[index]}", fontsize=9)
        axes.set_xticks([])
        axes.set_yticks([])
    figure.colorbar(image, cax=figure.add_subplot(grid[0, -3]))
    curves = figure.add_subplot(grid[0, -1])
    summaries = [correlation_summary(m) for m in matrices]
    x = np.array(steps) + 1  # log axis: step 0 drawn at 1
    curves.semilogx(x, [s["diag_mean"] for s in summaries], label="mean $C_{ii}$")
    curves.semilogx(x, [s["off_diag_rms"] for s in summaries], label="RMS $C_{ij}$, i≠j")
    floor = 1 / np.sqrt(samples)
    floor_label = f"$1/\\sqrt{{N}}$ = {floor:.3g}, N = {samples}"
    curves.axhline(floor, color="grey", linestyle=":", label=floor_label)
    curves.set_xlabel("step + 1")
    curves.set_ylim(-0.05, 1.05)
    curves.legend(fontsize=8)
    figure.suptitle(
        f"cross-correlation of the two views (first {size} of {matrices.shape[-1]} dimensions)",
        fontsize=10,
    )
    atomic_write(
        path, lambda file: figure.savefig(file, format="png", dpi=110, bbox_inches="tight")
    )


def _correlation_frame(matrix, step, size, dpi):
    """One frame of the animation: C's top-left block at `step`, titled, axes i and j, with
    its colour bar. -> a PIL image."""
    figure = _new_figure(3.6, 3.0)
    axes = figure.add_subplot()
    image = axes.imshow(
        _heatmap_block(matrix, size), cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest"
    )
    axes.set_title(f"C at step {step}", fontsize=10)
    axes.set_xlabel("j", fontsize=9)
    axes.set_ylabel("i", fontsize=9)
    axes.tick_params(labelsize=8)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04).ax.tick_params(labelsize=8)
    figure.tight_layout()
    figure.set_dpi(dpi)
    figure.canvas.draw()
    return Image.fromarray(np.asarray(figure.canvas.buffer_rgba())[..., :3].copy())


def save_cross_correlation_gif(steps, matrices, path, size=64, dpi=80, milliseconds=400):
    """An animated GIF of C's top-left block (size x size) at every snapshot, one frame per
    step of `steps`, each titled with its step and drawn beside its colour bar (red +1,
    white 0, blue -1)."""
    frames = [
        _correlation_frame(matrix, step, size, dpi)
        for step, matrix in zip(steps, np.asarray(matrices, dtype=np.float32), strict=True)
    ]
    atomic_write(
        path,
        lambda file: frames[0].save(
            file,
            format="GIF",
            save_all=True,
            append_images=frames[1:],
            duration=milliseconds,
            loop=0,
        ),
    )


def save_training_curves(records, path):
    """Write a PNG of the loss (left) and the kNN monitor's accuracy (right) against epochs.

    records: the run's metrics.jsonl lines; those with "knn_monitor" are the monitor's points.
    """
    figure = _new_figure(9, 3.2)
    loss_axes, knn_axes = figure.subplots(1, 2)
    loss_axes.plot([r["epoch"] for r in records], [r["loss"] for r in records], color="C0")
    loss_axes.set(xlabel="epoch", ylabel="training loss", title="loss")
    monitored = [r for r in records if "knn_monitor" in r]
    epochs = [r["epoch"] for r in monitored]
    knn_axes.plot(epochs, [100 * r["knn_monitor"] for r in monitored], "o-", color="C1")
    knn_axes.set(xlabel="epoch", ylabel="kNN accuracy (%)", title="kNN monitor (held-out sample)")
    for axes in (loss_axes, knn_axes):
        axes.xaxis.get_major_locator().set_params(integer=True)
        axes.grid(alpha=0.3)
    figure.tight_layout()
    atomic_write(path, lambda file: figure.savefig(file, format="png", dpi=100))


def save_neighbours(images, queries, neighbours, path, titles=None):
    """Write a PNG: one row per query image, then its nearest neighbours, most similar first.

    images      uint8 (N, H, W, 3), every image the rows index
    queries     int (Q,): the query images' rows
    neighbours  int (Q, K): each query's neighbours' rows (tinybt.probe.nearest_neighbours)
    titles      a title per image (its class, say), or None
    """
    count = neighbours.shape[1] + 1
    figure = _new_figure(CELL_INCHES * count, CELL_INCHES * len(queries))
    axes = np.array(figure.subplots(len(queries), count, squeeze=False))
    for row, (query, near) in enumerate(zip(queries, neighbours, strict=True)):
        for column, index in enumerate([query, *near]):
            axis = axes[row, column]
            axis.imshow(images[index])
            label = "query" if column == 0 else f"{column}."
            if titles is not None:
                label += f" {titles[index]}"
            axis.set_title(label, fontsize=8)
            axis.set_axis_off()
    figure.tight_layout()
    atomic_write(path, lambda file: figure.savefig(file, format="png", dpi=100))
