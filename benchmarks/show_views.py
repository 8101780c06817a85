"""Write a PNG of original images next to their two augmented views, to check them by eye.

    python benchmarks/show_views.py --out /tmp/views.png
    python benchmarks/show_views.py --out /tmp/views-paper.png --preset paper

The rows are 8 CIFAR-10 training images (from --cifar, skipped if it is not there) and 8
shapes. What to look for, as in the paper's figures: crops that zoom in, shifted colours, some
grey images, view 1 blurred (paper preset), view 2 now and then solarised (bright parts
inverted).
"""

import argparse
import sys
from pathlib import Path

import numpy as np

from tinybt import augment, backend
from tinybt.data import load_dataset
from tinybt.errors import TinyBTError
from tinybt.viz import save_view_grid

SHARED_CIFAR = Path(__file__).resolve().parents[2] / "shared/datasets/cifar-10-python-subset.tar.gz"
PRESETS = {"cifar": augment.cifar, "paper": augment.paper}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="the PNG file to write")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cifar")
    parser.add_argument("--cifar", default=str(SHARED_CIFAR), help="CIFAR-10 archive or folder")
    parser.add_argument("--data-dir", default="data", help="where the shapes cache lives")
    parser.add_argument("--count", type=int, default=8, help="images from each dataset")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = backend.rng(args.seed)
    shapes = load_dataset("shapes", data_dir=args.data_dir, seed=args.seed)
    sources = [shapes]
    if Path(args.cifar).exists():
        sources.insert(0, load_dataset("cifar10", data_dir=args.cifar))
    else:
        print(f"no CIFAR-10 at {args.cifar}: showing shapes only", file=sys.stderr)

    # Each dataset is normalised with its own mean and std, as in training; the views are
    # brought back to [0, 1] units here so that one figure (mean 0, std 1) can show them all.
    originals, views_a, views_b = [], [], []
    for dataset in sources:
        chosen = rng.choice(len(dataset), size=args.count, replace=False)
        images = dataset.images[chosen]
        pipeline = PRESETS[args.preset](dataset.mean, dataset.std)
        view_a, view_b = pipeline(images, rng)
        mean, std = dataset.mean[:, None, None], dataset.std[:, None, None]
        originals.append(images)
        views_a.append(backend.to_host(view_a) * std + mean)
        views_b.append(backend.to_host(view_b) * std + mean)
    save_view_grid(
        np.concatenate(originals),
        np.concatenate(views_a),
        np.concatenate(views_b),
        args.out,
        mean=np.zeros(3),
        std=np.ones(3),
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    try:
        main()
    except TinyBTError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
