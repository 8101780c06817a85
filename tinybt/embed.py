"""The features of your own images:  python -m tinybt.embed RUN --data-dir DIR --out FILE.npz

Runs the trained encoder of the run in RUN (its folder or checkpoint.npz) over every image of
DIR, a folder of images or a .tar, .tar.gz, .tgz or .zip archive of one, in any layout (class
folders are optional), and saves

    features  float32 (N, F): the encoder's features, in evaluation mode, as the probes see them
    paths     (N,): each image's path inside DIR, in the order the folder loader reads them
    labels    int64 (N,) and classes: where every image sits in a class folder

The images are read as `--dataset folder` reads them (centre square, resized to the run's image
size, cached; tinybt/data/folder.py) and normalised with the mean and std of the run's own
training images (found where the run keeps them, or given by --train-data-dir if they moved).
`--neighbours K` also draws, for a few query images spread over the folder, their K nearest
neighbours among the others by cosine similarity of the features, in FILE.png beside FILE.npz:
what the encoder finds alike in your images.
"""

import sys
from pathlib import Path

import numpy as np

from tinybt import backend, viz
from tinybt.build import load_split
from tinybt.checkpoint import atomic_savez
from tinybt.data.folder import read_all
from tinybt.distributed import refuse_launcher
from tinybt.errors import OneLineArgumentParser, TinyBTError, run_program
from tinybt.evaluation import load_trained
from tinybt.probe import features_of, nearest_neighbours

QUERIES = 6  # query images in the neighbours figure


def embed(run, data_dir, out, neighbours=0, log=print, train_data_dir=None):
    """Save the features of every image of `data_dir` under the run `run`'s encoder to `out`
    (.npz); with `neighbours` K > 0 also draw each of QUERIES queries' K nearest neighbours to
    `out` with the suffix .png. Returns the saved arrays. log: where one-line messages go (None:
    nowhere). train_data_dir: where the run's own dataset is, if it moved (default: the run's)."""
    log = log or (lambda *_: None)
    out = Path(out)
    if out.suffix != ".npz":
        raise TinyBTError(f"--out {out} must end in .npz: the features are saved as NumPy arrays")
    if neighbours < 0:
        raise TinyBTError(f"--neighbours must be 0 or more, got {neighbours}")
    model, config, _, _ = load_trained(run, data_dir=train_data_dir, data_flag="--train-data-dir")
    trained_on = load_split(config, "train")  # the mean and std the encoder was trained with
    size = trained_on.images.shape[1]
    names, images, labels, classes = read_all(data_dir, size)
    if neighbours >= len(names):
        raise TinyBTError(
            f"--neighbours {neighbours} needs more than {neighbours} images; "
            f"{data_dir} has {len(names)}: ask for fewer"
        )
    features = features_of(model.encoder, images, trained_on.mean, trained_on.std)
    arrays = {"features": backend.to_host(features).astype(np.float32), "paths": np.array(names)}
    if labels is not None:
        arrays.update(labels=labels, classes=np.array(classes))
    atomic_savez(out, arrays)
    log(f"wrote {out}: features of {len(names)} images, {features.shape[1]} each")
    if neighbours:
        queries = np.linspace(0, len(names) - 1, min(QUERIES, len(names))).astype(int)
        nearest = nearest_neighbours(features, backend.to_device(queries), neighbours)
        titles = None if labels is None else [classes[label] for label in labels]
        figure = out.with_suffix(".png")
        viz.save_neighbours(images, queries, nearest, figure, titles)
        log(f"wrote {figure}: the {neighbours} nearest neighbours of {len(queries)} images")
    return arrays


def main(argv=None):
    refuse_launcher("tinybt.embed", "every copy would embed the whole folder into the same file")
    parser = OneLineArgumentParser(
        prog="python -m tinybt.embed",
        description="Features of every image of a folder or archive under a run's encoder.",
    )
    parser.add_argument("run", help="a run folder (runs/NAME) or its checkpoint.npz")
    parser.add_argument("--data-dir", required=True, help="a folder of images, or its archive")
    parser.add_argument("--out", required=True, help="where to save the features (FILE.npz)")
    parser.add_argument(
        "--neighbours",
        type=int,
        default=0,
        metavar="K",
        help="also draw the K nearest neighbours of a few images in FILE.png (default: 0, none)",
    )
    parser.add_argument(
        "--train-data-dir",
        default=None,
        help="where the run's own dataset is, if it moved (default: the run's)",
    )
    args = parser.parse_args(argv)
    try:
        embed(
            args.run, args.data_dir, args.out, args.neighbours, train_data_dir=args.train_data_dir
        )
    except TinyBTError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    run_program(main)
