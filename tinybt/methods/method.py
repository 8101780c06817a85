"""What a method is to the rest of tinybt: one `Method` object, which its file exports.

The configuration (tinybt/config.py) and the builders (tinybt/build.py) read nothing else
about a method: its options become command-line flags and fields of a run's configuration,
its objective is what one training step minimises, and whether it learns against a target
network decides what network is built and what happens after each optimiser step.
"""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Option:
    """One hyperparameter a method owns: its default, its one line of help (the command line
    shows it) and `check`, value -> None, or the end of a sentence saying what is wrong with
    the value ("must be positive")."""

    default: object
    help: str
    check: object = None


@dataclass(frozen=True)
class Method:
    """A self-supervised method, everything a run needs to train it.

    name: what --method calls it.
    objective: (model, view_a, view_b, **options) -> (loss, terms), the views (N, 3, H, W)
        Tensors, `loss` the scalar Tensor to backpropagate and `terms` {name: float}, what
        the run logs about it. One network sees both views. None if the method always learns
        against a target network.
    target_objective: the same against an EMA target network (`model` a
        `tinybt.methods.target.WithTarget`); None if the method never uses one. A method with
        both uses this one when the run asks for a target (--ema).
    options: {name: Option}, the hyperparameters passed to the objectives as keywords.
    predictor: the extra head on the online network, (dim, hidden, rng) -> Module, which the
        method always has, with a target (BYOL's) or without one (SimSiam's: its objective
        then gets a `tinybt.methods.predictor.WithPredictor`); None if it has none of its own.
    after_step: (model, step, total_steps, tau_base) -> None, what follows every optimiser
        step when the run has a target network (the EMA update of tinybt/methods/target.py).
    correlation: (z_a, z_b, **options) -> C (D, D), for arrays (N, D): the matrix a run
        snapshots on held-out views and draws.
    check: options {name: value} -> None, or a one-line message for a combination of the
        method's options that cannot work (each option's own `check` runs first).
    """

    name: str
    objective: object
    target_objective: object
    correlation: object
    options: dict = field(default_factory=dict)
    predictor: object = None
    after_step: object = None
    check: object = None

    def uses_target(self, ema):
        """Whether a run of this method with --ema `ema` learns against a target network."""
        return self.objective is None or (ema and self.target_objective is not None)


def positive(value):
    """An Option check: a finite number above 0."""
    return None if value > 0 and value != float("inf") else "must be a finite, positive number"


def zero_or_positive(value):
    """An Option check: a finite number, 0 or above."""
    return None if 0 <= value < float("inf") else "must be a finite, zero or positive number"
