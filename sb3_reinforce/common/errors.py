"""Exceptions raised by sb3-reinforce, and the check that raises :class:`NonFiniteLossError`."""

from __future__ import annotations

import numpy as np
import torch as th


class UnsupportedActionSpaceError(ValueError, AssertionError):
    """
    The policy cannot sample from the env's action space.

    It is a ``ValueError`` (bad input) and also an ``AssertionError``, the type Stable-Baselines3
    raises for the same situation, so code written against SB3 keeps catching it.
    """


class UnsupportedObservationSpaceError(ValueError, AssertionError):
    """
    The policy cannot read the env's observation space.

    A ``ValueError`` and an ``AssertionError``, like :class:`UnsupportedActionSpaceError`.
    """


class NonFiniteLossError(RuntimeError, FloatingPointError):
    """A quantity of an update (returns, a loss term, the gradient) is NaN or infinite; no parameter was changed."""


class EpisodeTooLongError(RuntimeError):
    """An episode ran past a limit (``max_episode_steps`` or the replay buffer's capacity)."""


#: What to check when a quantity computed from finite rewards becomes non-finite.
OVERFLOW_HINT = (
    "Lower the learning rate or set max_grad_norm; rewards of a very large magnitude can overflow too "
    "(rescale them, e.g. with VecNormalize)."
)


def require_finite(name: str, value: np.ndarray | th.Tensor, hint: str = OVERFLOW_HINT) -> None:
    """
    Raise :class:`NonFiniteLossError` if ``value`` holds a NaN or an infinity.

    >>> require_finite("returns", np.array([1.0, np.inf]), hint="")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sb3_reinforce.common.errors.NonFiniteLossError: returns became non-finite (NaN or inf); the update was skipped...

    :param name: What ``value`` is, for the message.
    :param value: Array or tensor to check.
    :param hint: What to check, appended to the message.
    """
    finite = bool(th.isfinite(value).all()) if isinstance(value, th.Tensor) else bool(np.isfinite(value).all())
    if not finite:
        message = f"{name} became non-finite (NaN or inf); the update was skipped and the parameters are unchanged."
        raise NonFiniteLossError(f"{message} {hint}".rstrip())
