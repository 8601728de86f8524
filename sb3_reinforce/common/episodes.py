"""Storage for a batch of complete episodes, laid out end to end.

A batch of ``N`` episodes with lengths ``T_0 .. T_{N-1}`` is stored as flat arrays of
``M = sum(T_i)`` steps: episode 0's steps in time order, then episode 1's, and so on.  The helpers
below translate between this flat ("ragged") layout and a padded ``(N, max T)`` matrix, so that
per-step quantities can be computed with array operations instead of Python loops.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Union

import numpy as np

Observations = Union[np.ndarray, dict[str, np.ndarray]]


def episode_offsets(lengths: np.ndarray) -> np.ndarray:
    """
    Index of the first step of each episode in the flat layout.

    >>> episode_offsets(np.array([3, 1, 2]))
    array([0, 3, 4])

    :param lengths: Episode lengths, shape ``(N,)``.
    :return: Offsets, shape ``(N,)``.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    return np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)


def episode_index(lengths: np.ndarray) -> np.ndarray:
    """
    Episode number of every step in the flat layout.

    >>> episode_index(np.array([3, 1, 2]))
    array([0, 0, 0, 1, 2, 2])

    :param lengths: Episode lengths, shape ``(N,)``.
    :return: Array of shape ``(M,)`` with values in ``0 .. N-1``.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    return np.repeat(np.arange(len(lengths)), lengths)


def time_index(lengths: np.ndarray) -> np.ndarray:
    """
    Time step ``t`` (counted from 0 inside its episode) of every step in the flat layout.

    >>> time_index(np.array([3, 1, 2]))
    array([0, 1, 2, 0, 0, 1])

    :param lengths: Episode lengths, shape ``(N,)``.
    :return: Array of shape ``(M,)``.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    return np.arange(int(lengths.sum())) - np.repeat(episode_offsets(lengths), lengths)


def pad_episodes(values: np.ndarray, lengths: np.ndarray, fill: float | np.ndarray = 0.0) -> np.ndarray:
    """
    Scatter flat per-step values into a padded ``(N, max T)`` matrix.

    >>> pad_episodes(np.array([1.0, 2.0, 3.0, 4.0]), np.array([3, 1]), fill=0.0)
    array([[1., 2., 3.],
           [4., 0., 0.]])

    :param values: Per-step values, shape ``(M,)``.
    :param lengths: Episode lengths, shape ``(N,)``.
    :param fill: Value of the cells past the end of each episode: a scalar, or one value per
        episode (shape ``(N,)``).
    :return: Matrix of shape ``(N, max T)`` with ``values`` in the valid cells.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    n_episodes = len(lengths)
    horizon = int(lengths.max()) if n_episodes > 0 else 0
    fill_arr = np.broadcast_to(np.asarray(fill, dtype=values.dtype), (n_episodes,))
    padded = np.repeat(fill_arr[:, None], horizon, axis=1)
    padded[episode_index(lengths), time_index(lengths)] = values
    return padded


def unpad_episodes(padded: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """
    Inverse of :func:`pad_episodes`: read the valid cells back into the flat layout.

    >>> lengths = np.array([3, 1])
    >>> unpad_episodes(pad_episodes(np.array([1.0, 2.0, 3.0, 4.0]), lengths), lengths)
    array([1., 2., 3., 4.])

    :param padded: Matrix of shape ``(N, max T)``.
    :param lengths: Episode lengths, shape ``(N,)``.
    :return: Per-step values, shape ``(M,)``.
    """
    return padded[episode_index(lengths), time_index(lengths)]


def take_steps(observations: Observations, indices: int | slice | np.ndarray | tuple[np.ndarray, ...]) -> Observations:
    """
    Index an observation array, or every entry of a dict of observation arrays.

    :param observations: Array, or dict of arrays, indexed along the leading axes.
    :param indices: Any numpy index (integer array, tuple of integer arrays, ...).
    :return: The selected observations, with the same structure.
    """
    if isinstance(observations, dict):
        return {key: value[indices] for key, value in observations.items()}
    return observations[indices]


@dataclass(frozen=True)
class EpisodeBatch:
    """
    Complete episodes laid out end to end (see the module docstring).

    :param observations: Observation at every step (the one the action was chosen from),
        shape ``(M, *obs_shape)``, or a dict of such arrays for ``Dict`` observation spaces.
    :param actions: Action at every step, shape ``(M, *action_shape)`` (``(M,)`` for ``Discrete``).
    :param rewards: Reward at every step, float64, shape ``(M,)``.
    :param lengths: Length of each episode, shape ``(N,)``.
    :param truncated: Whether each episode ended by truncation (e.g. a time limit) rather than
        by termination, shape ``(N,)``.
    :param terminal_observations: The observation after the last step of each episode,
        shape ``(N, *obs_shape)`` (or a dict); used to bootstrap truncated episodes.
    :param log_probs: Log-probability of each action under the policy that sampled it,
        shape ``(M,)``.
    :param action_masks: Which actions were allowed at every step (docs/masking.md), boolean,
        shape ``(M, mask_size)``; None when the env has no action masks.
    """

    observations: Observations
    actions: np.ndarray
    rewards: np.ndarray
    lengths: np.ndarray
    truncated: np.ndarray
    terminal_observations: Observations
    log_probs: np.ndarray
    action_masks: np.ndarray | None = None

    @property
    def n_episodes(self) -> int:
        """Number of episodes ``N``."""
        return len(self.lengths)

    @property
    def n_steps(self) -> int:
        """Total number of steps ``M``."""
        return int(self.lengths.sum())

    @property
    def episode_index(self) -> np.ndarray:
        """Episode number of every step, shape ``(M,)``."""
        return episode_index(self.lengths)

    @property
    def time_index(self) -> np.ndarray:
        """Time step inside its episode of every step, shape ``(M,)``."""
        return time_index(self.lengths)

    @property
    def last_step_index(self) -> np.ndarray:
        """Flat index of the last step of each episode, shape ``(N,)``."""
        return np.cumsum(self.lengths) - 1


def concatenate_episodes(batches: Sequence[EpisodeBatch]) -> EpisodeBatch:
    """
    The episodes of several batches, one batch after the other, in one :class:`EpisodeBatch`.

    :param batches: At least one batch.
    :return: The concatenated batch.
    """
    if not batches:
        raise ValueError("no batch to concatenate")

    def join(parts: Sequence[Observations]) -> Observations:
        first = parts[0]
        if isinstance(first, dict):
            return {key: np.concatenate([part[key] for part in parts]) for key in first}  # type: ignore[index]
        return np.concatenate(parts)  # type: ignore[arg-type]

    masks = [b.action_masks for b in batches]
    return EpisodeBatch(
        observations=join([b.observations for b in batches]),
        actions=np.concatenate([b.actions for b in batches]),
        rewards=np.concatenate([b.rewards for b in batches]),
        lengths=np.concatenate([b.lengths for b in batches]),
        truncated=np.concatenate([b.truncated for b in batches]),
        terminal_observations=join([b.terminal_observations for b in batches]),
        log_probs=np.concatenate([b.log_probs for b in batches]),
        action_masks=None if masks[0] is None else np.concatenate(masks),  # type: ignore[arg-type]
    )
