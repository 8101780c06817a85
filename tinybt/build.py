"""The builders: a run's Config (tinybt/config.py) made into the pieces of the run: its data
(`load_split`), network (`build_model`), optimiser, augmentations, and what its method
minimises (`build_objective`) and draws (`build_correlation`). A method is read only through
its `Method` (tinybt/methods/method.py), found by name in the registry `tinybt.methods.METHODS`.

The training run (tinybt/run.py) builds everything from here, and `python -m tinybt.evaluate`
rebuilds a run's network from the configuration stored in its checkpoint. Nothing here reads
the command line or writes files; the step that puts the pieces to work is tinybt/step.py.
"""

from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np

from tinybt import augment
from tinybt.config import AUGMENTATIONS, has_target, options_of
from tinybt.data import load_dataset
from tinybt.errors import TinyBTError
from tinybt.methods import METHODS, predictor
from tinybt.methods import target as target_network
from tinybt.model import TwoViewNetwork, parse_dims
from tinybt.optim import OPTIMIZERS


def build_model(config):
    """The network, initialised from the run's seed (so the random baseline is its start).

    With a target network (BYOL, --ema) a WithTarget: the online network, drawn first and so
    the same as the one-network run's, the predictor if any, and the target, a copy. Without
    one, the online network, with its predictor (a WithPredictor) when the method has one.
    """
    rng = np.random.default_rng([config.seed, 0])
    online = _network(config, rng)
    method = METHODS[config.method]
    head = method.predictor or (predictor.predictor if config.predictor else None)
    dims = parse_dims(config.projector)  # the predictor has the projector's shape: D -> hidden -> D
    head = head(dims[-1], dims[0], rng) if head else None
    if has_target(config):
        return target_network.WithTarget(online, _network(config, rng), head)
    return online if head is None else predictor.WithPredictor(online, head)


def _network(config, rng):
    """Encoder and projector: images (N, 3, H, W) -> embeddings (N, D)."""
    return TwoViewNetwork(
        widths=parse_dims(config.widths),
        strides=parse_dims(config.strides),
        blocks=config.blocks,
        projector=parse_dims(config.projector),
        rng=rng,
    )


@dataclass(frozen=True)
class Objective:
    """The run's method with its options bound: what one training step minimises, and what
    follows the optimiser's step.

    loss: (model, view_a, view_b) -> (loss, terms), as a Method's objective.
    after_step: (model, step, total_steps) -> None, or None when nothing follows the step.
    Called, an Objective is its loss.
    """

    loss: object
    after_step: object = None

    def __call__(self, model, view_a, view_b):
        return self.loss(model, view_a, view_b)


def build_objective(config):
    """The method's Objective with the run's options bound (tinybt/methods/)."""
    method = METHODS[config.method]
    if not has_target(config):
        return Objective(partial(method.objective, **options_of(config)))
    after_step = method.after_step and partial(method.after_step, tau_base=config.tau_base)
    return Objective(partial(method.target_objective, **options_of(config)), after_step)


def build_correlation(config):
    """(z_a, z_b) -> C (D, D) for two (N, D) arrays, as the run's method defines the C that a
    run snapshots and draws."""
    method = METHODS[config.method]
    return partial(method.correlation, options=options_of(config))


def build_optimizer(config, model):
    """The optimiser named by config.optimizer over every parameter of `model`."""
    return OPTIMIZERS[config.optimizer](
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )


def build_augment(config, mean, std):
    """The preset's two-view pipeline, with `config.augment_changes` applied to both views."""
    pipeline = AUGMENTATIONS[config.augment](tuple(mean), tuple(std))
    return pipeline.replace(**config.augment_changes) if config.augment_changes else pipeline


def load_split(config, split):
    """The `split` ("train" or "test") of the config's dataset; the training split is cut to
    its first config.train_size images when that is set. With config.shuffle_pixels every
    image's pixels are moved by one permutation (the review's colour-histogram test)."""
    dataset = load_dataset(
        config.dataset,
        split=split,
        data_dir=config.data_dir,
        seed=config.seed,
        download=config.download,
    )
    if split == "train" and config.train_size:
        if config.train_size > len(dataset):
            raise TinyBTError(
                f"--train-size {config.train_size} is more than the {len(dataset)} training "
                f"images of {config.dataset}: lower it, or give 0 to train on all of them"
            )
        dataset = first_images(dataset, config.train_size)
    if config.shuffle_pixels:  # a generator of the same seed: both splits shuffled alike
        shuffled = augment.shuffle_pixels(dataset.images, np.random.default_rng([config.seed, 3]))
        dataset = replace(dataset, images=shuffled)
    return dataset


def stored_data_dir(config, folder, flag="--data-dir"):
    """The data_dir of the run stored in `folder`, as a path that works from any folder.

    Rule: a run's relative paths are resolved from its folder, never from the current one. A
    relative data_dir is relative to the folder the run was started in: `folder` less the parts
    of the stored `out` (runs/NAME under the project, say), wherever the project now is. Where
    that folder is unknown (an absolute `out`, a renamed run) or holds no such data, TinyBTError
    says to pass `flag`, the program's option for it.
    """
    data_dir, out = Path(config.data_dir), Path(config.out)
    if data_dir.is_absolute():
        return config.data_dir
    folder = Path(folder).resolve()
    started_in = _started_in(folder, out)
    if started_in is not None and (started_in / data_dir).exists():
        return str(started_in / data_dir)
    where = "" if started_in is None else f" ({started_in / data_dir} is not there)"
    raise TinyBTError(
        f"the run in {folder} has its data in {config.data_dir}, relative to the folder it was "
        f"started in{where}: give the dataset's folder with {flag}"
    )


def _started_in(folder, out):
    """The folder a run now in `folder` was started in, from its stored relative `out`; None
    where that cannot be known."""
    if out.is_absolute() or ".." in out.parts:
        return None
    if not out.parts:
        return folder
    if folder.parts[-len(out.parts) :] != out.parts:
        return None
    return folder.parents[len(out.parts) - 1]


def first_images(dataset, count):
    """The dataset cut to its first `count` images (the datasets come in random order)."""
    return replace(dataset, images=dataset.images[:count], labels=dataset.labels[:count])
