"""The figures that are more than a plot call: the animation of C."""

import numpy as np
from PIL import Image

from tinybt import viz


def test_the_animation_has_a_frame_per_snapshot_each_titled_with_its_step(tmp_path):
    path = tmp_path / "c.gif"
    same = np.stack([np.eye(8)] * 3)  # one matrix three times: only the titles differ
    viz.save_cross_correlation_gif([0, 10, 100], same, path)
    with Image.open(path) as gif:
        frames = []
        for index in range(gif.n_frames):
            gif.seek(index)
            frames.append(np.asarray(gif.convert("RGB")))
    assert len(frames) == 3
    assert not np.array_equal(frames[0], frames[1]) and not np.array_equal(frames[1], frames[2])
    assert frames[0].shape[1] > frames[0].shape[0]  # wider than tall: the colour bar beside
