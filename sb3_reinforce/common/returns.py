"""Returns and discount weights of docs/maths.md §3–4, computed for all episodes of a batch at once."""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

from sb3_reinforce.common.episodes import episode_offsets, pad_episodes, time_index, unpad_episodes


def discounted_reward_to_go(rewards: np.ndarray, lengths: np.ndarray, gamma: float) -> np.ndarray:
    """
    Discounted reward-to-go of every step: ``G_t = sum_{t' >= t} gamma^(t' - t) r_t'`` inside its episode.

    The episodes are padded with zeros into a ``(N, max T)`` matrix and the recursion
    ``G_t = r_t + gamma G_{t+1}`` runs along the time axis of every row at once
    (``scipy.signal.lfilter`` on the time-reversed rows), so there is no Python loop over steps
    and no cancellation between episodes.

    :param rewards: Per-step rewards in the flat episode layout, shape ``(M,)``.
    :param lengths: Episode lengths, shape ``(N,)``.
    :param gamma: Discount factor in ``[0, 1]``.
    :return: Reward-to-go, float64, shape ``(M,)``.
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    if rewards.size == 0:
        return rewards.copy()
    padded = pad_episodes(rewards, lengths, 0.0)
    reversed_returns = lfilter([1.0], [1.0, -float(gamma)], padded[:, ::-1], axis=1)
    return unpad_episodes(reversed_returns[:, ::-1], lengths)


def episode_returns(rewards: np.ndarray, lengths: np.ndarray, gamma: float) -> np.ndarray:
    """
    Discounted return of each episode, ``R(tau) = sum_t gamma^t r_t``.

    :param rewards: Per-step rewards in the flat episode layout, shape ``(M,)``.
    :param lengths: Episode lengths, shape ``(N,)``.
    :param gamma: Discount factor in ``[0, 1]``.
    :return: Returns, float64, shape ``(N,)``.
    """
    return discounted_reward_to_go(rewards, lengths, gamma)[episode_offsets(lengths)]


def discounted_returns(rewards: np.ndarray, lengths: np.ndarray, gamma: float, reward_to_go: bool) -> np.ndarray:
    """
    The return estimate ``Ĝ_t`` of docs/maths.md §3 for every step.

    :param rewards: Per-step rewards in the flat episode layout, shape ``(M,)``.
    :param lengths: Episode lengths, shape ``(N,)``.
    :param gamma: Discount factor in ``[0, 1]``.
    :param reward_to_go: If True, ``Ĝ_t`` is the discounted reward-to-go from step ``t``
        (causality); if False, every step of an episode gets the episode's whole discounted
        return ``R(tau)``.
    :return: ``Ĝ_t``, float64, shape ``(M,)``.
    """
    to_go = discounted_reward_to_go(rewards, lengths, gamma)
    if reward_to_go:
        return to_go
    return np.repeat(to_go[episode_offsets(lengths)], np.asarray(lengths, dtype=np.int64))


def discount_weights(lengths: np.ndarray, gamma: float, unbiased_discount: bool, reward_to_go: bool) -> np.ndarray:
    """
    The per-step factor ``lambda_t`` of docs/maths.md §4.

    ``unbiased_discount=True`` asks for an unbiased estimate of the gradient of
    ``J_gamma = E[sum_t gamma^t r_t]``.  With reward-to-go, ``Ĝ_t`` discounts from step ``t``, so the
    missing ``gamma^t`` is put back: ``lambda_t = gamma^t``.  Without reward-to-go, ``Ĝ_t = R(tau)`` is
    already discounted from the start of the episode and ``sum_t grad log pi(a_t|s_t) R(tau)`` is
    unbiased for ``grad J_gamma`` as it is, so ``lambda_t = 1`` (a further ``gamma^t`` would give an
    estimator of neither ``grad J_gamma`` nor the surrogate).

    :param lengths: Episode lengths, shape ``(N,)``.
    :param gamma: Discount factor in ``[0, 1]``.
    :param unbiased_discount: Whether the update must be unbiased for ``grad J_gamma``; if False,
        ``lambda_t = 1`` (with reward-to-go: the common discounted surrogate).
    :param reward_to_go: Whether ``Ĝ_t`` is the reward-to-go (see above).
    :return: ``lambda_t``, float64, shape ``(M,)``.
    """
    steps = time_index(lengths)
    if not (unbiased_discount and reward_to_go):
        return np.ones(len(steps), dtype=np.float64)
    return np.power(float(gamma), steps.astype(np.float64))
