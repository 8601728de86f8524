"""Exceptions raised by sb3-reinforce."""


class UnsupportedActionSpaceError(ValueError, AssertionError):
    """
    The policy cannot sample from the env's action space.

    It is a ``ValueError`` (bad input) and also an ``AssertionError``, the type Stable-Baselines3
    raises for the same situation, so code written against SB3 keeps catching it.
    """


class NonFiniteLossError(RuntimeError, FloatingPointError):
    """A quantity of an update (returns, a loss term, the gradient) is NaN or infinite; no parameter was changed."""


class EpisodeTooLongError(RuntimeError):
    """An episode ran past a limit (``max_episode_steps`` or the replay buffer's capacity)."""
