"""A run's configuration: every choice it makes (`Config`, started from a preset of
tinybt/presets.py), each with the one line of help the command line shows, and `validate`,
which checks them all before any work starts.

Every program reads a run through its Config: `python -m tinybt.train` parses its options into
one, and `python -m tinybt.evaluate` reads the one stored in a checkpoint (`stored_config`). A
method defines its own options (its `Option`s, tinybt/methods/method.py), found by name in the
registry `tinybt.methods.METHODS`; each is one line of Config. Nothing here builds a network,
reads data or writes files: tinybt/build.py turns a Config into the pieces of a run.
"""

import math
import os
from dataclasses import dataclass, field, fields, replace

from tinybt import augment, backend, distributed
from tinybt.data import DATASETS
from tinybt.errors import TinyBTError
from tinybt.methods import METHODS
from tinybt.methods import target as target_network
from tinybt.model import parse_dims
from tinybt.optim import OPTIMIZERS
from tinybt.presets import PRESETS

AUGMENTATIONS = {"cifar": augment.cifar, "paper": augment.paper}


def option(default, help):
    """A field of Config with its one line of help (the command line shows it). A function
    as `default` is called for each new Config."""
    if callable(default):
        return field(default_factory=default, metadata={"help": help})
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


def backend_in_use():
    """The backend named by TINYBT_BACKEND, else numpy: a run follows it like everything else."""
    return os.environ.get("TINYBT_BACKEND", "numpy")


@dataclass
class CommonConfig:
    """The choices every run makes, whatever its method; `Config` adds the methods' own."""

    dataset: str = option("shapes", f"images to train on: {' | '.join(DATASETS)}")
    data_dir: str = option("data", "the dataset's folder, or a CIFAR-10 .tar.gz archive")
    download: bool = option(False, "cifar10: download the official archive if it is missing")
    train_size: int = option(0, "train on the first N training images only (0: all of them)")
    backend: str = option(
        backend_in_use,
        "numpy (CPU), cupy (NVIDIA GPU) or strict (NumPy that refuses what CuPy does)",
    )
    seed: int = option(0, "seeds the network, the data order and every augmentation")
    epochs: int = option(20, "passes over the training images")
    batch_size: int = option(128, "images per step (the loss standardises over the batch)")
    statistics: str = option(
        distributed.GLOBAL,
        f"under mpiexec, whose batch statistics and C: {distributed.GLOBAL} (the whole batch's: "
        f"the method) | {distributed.PER_PROCESS} (each process's share alone, to compare)",
    )
    optimizer: str = option("adam", f"the optimiser: {' | '.join(OPTIMIZERS)}")
    lr: float = option(1e-3, "peak learning rate per step, reached after the warm-up")
    weight_decay: float = option(1e-6, "L2 penalty on the weights (decoupled for adamw)")
    warmup_epochs: float = option(1.0, "epochs of linear learning-rate warm-up before cosine")
    method: str = option("barlow", f"self-supervised method: {' | '.join(METHODS)}")
    widths: str = option("32-64-128-256", "encoder channels per stage, e.g. 32-64-128-256")
    strides: str = option("1-2-2-2", "stride of each stage's first conv, one per width")
    blocks: int = option(1, "conv-BN-ReLU blocks per stage")
    projector: str = option("512-512-512", "projector widths; the last is the embedding D")
    augment: str = option("cifar", f"augmentation preset: {' | '.join(AUGMENTATIONS)}")
    augment_changes: dict = option({}, "changes to the augmentation preset (Python only)")
    shuffle_pixels: bool = option(
        False, "train and test on images with pixels moved by one fixed random permutation"
    )
    snapshot_size: int = option(256, "held-out images whose C is snapshotted during training")
    monitor_every: int = option(
        5, "every K epochs, kNN accuracy of held-out images on a training sample (0: never)"
    )
    evaluate: bool = option(True, "kNN and linear probe at the end, beside a random encoder")
    out: str = option("runs/shapes", "the run's folder: checkpoint, metrics, figures")

    @classmethod
    def preset(cls, name, **changes):
        """The configuration of preset `name` (see PRESETS), with `changes` on top."""
        if name not in PRESETS:
            raise TinyBTError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}")
        return replace(cls(), **{**PRESETS[name], **changes})


def method_options():
    """{name: Option} of every registered method's options and of the target network's."""
    options = dict(target_network.OPTIONS)
    for method in METHODS.values():
        options.update(method.options)
    return options


def users(name):
    """The methods that use option `name`, as the help and the errors name them."""
    if name == "tau_base":
        return [m.name for m in METHODS.values() if m.target_objective is not None]
    if name in target_network.OPTIONS:  # --ema, --predictor: where a target is a choice
        return [m.name for m in METHODS.values() if m.objective and m.target_objective]
    return [m.name for m in METHODS.values() if name in m.options]


def method_field(name):
    """The field of Config for method option `name`: its default and help are the method's
    own (its Option), the help prefixed with the methods that use it."""
    spec = method_options()[name]
    return option(spec.default, f"{', '.join(users(name))}: {spec.help}")


@dataclass
class Config(CommonConfig):
    """Every choice a run makes: CommonConfig's fields, then the methods' options, each
    defined (default, help, check) by the method that owns it. Saved in each checkpoint, so a
    run can be resumed and evaluated from its folder alone; `validate(config)` checks it
    before any work starts. A new method's option is one more line here."""

    # the target network's (tinybt/methods/target.py)
    ema: bool = method_field("ema")
    predictor: bool = method_field("predictor")
    tau_base: float = method_field("tau_base")
    # Barlow Twins' (tinybt/methods/barlow_twins.py)
    lambd: float = method_field("lambd")
    standardize: bool = method_field("standardize")
    # SimCLR's (tinybt/methods/simclr.py)
    temperature: float = method_field("temperature")
    # VICReg's (tinybt/methods/vicreg.py)
    sim_coeff: float = method_field("sim_coeff")
    std_coeff: float = method_field("std_coeff")
    cov_coeff: float = method_field("cov_coeff")


def validate(config):
    """Raise a one-line TinyBTError for the first choice of `config` that cannot work."""
    for f in fields(Config):
        _check_type(f.name, getattr(config, f.name), f.type)
    choices = {
        "dataset": DATASETS,
        "backend": backend.BACKENDS,
        "optimizer": tuple(OPTIMIZERS),
        "augment": tuple(AUGMENTATIONS),
        "method": METHODS,
        "statistics": (distributed.GLOBAL, distributed.PER_PROCESS),
    }
    if config.backend not in backend.BACKENDS and config.backend == backend_in_use():
        raise TinyBTError(backend.environment_complaint(config.backend))
    for name, allowed in choices.items():
        if getattr(config, name) not in allowed:
            raise TinyBTError(
                f"--{_flag(name)} {getattr(config, name)!r} is not one of {', '.join(allowed)}"
            )
    lowest = dict(
        epochs=1, batch_size=2, blocks=1, snapshot_size=2, train_size=0, seed=0, monitor_every=0
    )
    for name, least in lowest.items():
        if getattr(config, name) < least:
            why = " (batch statistics need two images)" if least == 2 else ""
            raise TinyBTError(
                f"--{_flag(name)} must be at least {least}{why}, got {getattr(config, name)}"
            )
    positive = ("lr",)
    for name in (*positive, "weight_decay", "warmup_epochs"):
        value = getattr(config, name)
        if not math.isfinite(value) or value < 0 or (name in positive and value == 0):
            sign = "positive" if name in positive else "zero or positive"
            raise TinyBTError(f"--{_flag(name)} must be a finite, {sign} number, got {value}")
    _check_method_options(config)
    _check_target_options(config)
    if config.warmup_epochs > config.epochs:
        raise TinyBTError(
            f"--warmup-epochs {config.warmup_epochs:g} is longer than the run's "
            f"--epochs {config.epochs}: warm up for at most the whole run"
        )
    widths, strides = _dims(config, "widths"), _dims(config, "strides")
    _dims(config, "projector")
    if len(widths) != len(strides):
        raise TinyBTError(
            f"--widths {config.widths} has {len(widths)} stages but --strides {config.strides} "
            f"has {len(strides)}: give one stride per stage"
        )
    if not config.out or not config.data_dir:
        raise TinyBTError("--out and --data-dir must name a folder (or an archive), not ''")
    try:
        AUGMENTATIONS[config.augment]((0.5,) * 3, (0.25,) * 3).replace(**config.augment_changes)
    except (TypeError, ValueError) as error:
        raise TinyBTError(f"augment_changes {config.augment_changes}: {error}") from None


def _check_method_options(config):
    """The run's method's options, each as its Option checks it, then together; any other
    method's option left at its default (a value given to a method that ignores it would
    silently change nothing)."""
    method = METHODS[config.method]
    unknown = [name for name in method.options if not hasattr(config, name)]
    if unknown:
        raise TinyBTError(
            f"--method {method.name}'s options ({', '.join(unknown)}) are not fields of Config: "
            "add one line each to Config in tinybt/config.py"
        )
    for name, spec in method_options().items():
        if name in target_network.OPTIONS or not hasattr(config, name):
            continue
        value = getattr(config, name)
        if name not in method.options:
            if value != spec.default:
                raise TinyBTError(
                    f"--{_flag(name)} is an option of {' and '.join(users(name))}, which "
                    f"--method {method.name} does not use: drop it"
                )
            continue
        problem = spec.check(value) if spec.check else None
        if problem:
            raise TinyBTError(f"--{_flag(name)} {problem}, got {value}")
    problem = method.check(options_of(config)) if method.check else None
    if problem:
        raise TinyBTError(problem)


def _check_target_options(config):
    """--ema, --predictor and --tau-base only where they mean something."""
    method = METHODS[config.method]
    problem = target_network.OPTIONS["tau_base"].check(config.tau_base)
    if problem:
        raise TinyBTError(f"--tau-base {problem}, got {config.tau_base}")
    if not has_target(config) and config.tau_base != target_network.TAU_BASE:
        without = " without --ema" if method.target_objective else ""
        raise TinyBTError(
            f"--tau-base is an EMA target's rate, and --method {config.method} has no "
            f"target{without}: drop it"
        )
    if (config.ema or config.predictor) and method.target_objective is None:
        flag = "--ema" if config.ema else "--predictor"
        always = [m.name for m in METHODS.values() if m.objective is None]
        raise TinyBTError(
            f"{flag} is for {' and '.join(users('ema'))} ({', '.join(always)}: always); "
            f"{method.name} never learns against a target network: drop it"
        )
    if config.predictor and not has_target(config):
        raise TinyBTError(
            f"--predictor predicts an EMA target's embedding, and --method {config.method} "
            "has no target without --ema: add --ema"
        )


def has_target(config):
    """Whether the run learns against an EMA target network: BYOL always, others with --ema."""
    return METHODS[config.method].uses_target(config.ema)


def stored_config(stored):
    """The Config of a run's checkpoint from its stored {field: value}: as stored, except
    tau_base (ρ_base), set back to its default in a run without a target, where it means
    nothing (a run stored whatever --tau-base it was given until a run without a target
    refused one)."""
    config = Config(**stored)
    if config.method in METHODS and not has_target(config):
        return replace(config, tau_base=target_network.TAU_BASE)
    return config


def options_of(config):
    """{name: value} of the options of the run's method, as its objectives take them."""
    return {name: getattr(config, name) for name in METHODS[config.method].options}


def _check_type(name, value, expected):
    """bool, int, float, str or dict, as the field is declared; an int is a fine float."""
    if isinstance(value, bool) and expected is not bool:  # True is an int to Python, not to us
        fine = False
    else:
        fine = isinstance(value, (int, float) if expected is float else expected)
    if not fine:
        raise TinyBTError(
            f"{name} must be {expected.__name__}, got {type(value).__name__} {value!r}"
        )


def _dims(config, name):
    """parse_dims of a "32-64-128" option, its complaint as a one-line error."""
    try:
        return parse_dims(getattr(config, name))
    except ValueError as error:
        raise TinyBTError(f"--{_flag(name)}: {error}") from None


def _flag(name):
    return name.replace("_", "-")
