"""Importance weights of docs/maths.md §6 (off-policy policy gradient), for all episodes of a batch at once.

Episodes are in the flat layout of :mod:`sb3_reinforce.common.episodes`.  Everything that runs
along time (cumulative products, discounted sums) works on the padded ``(N, max T)`` matrix, one
array operation per quantity: there is no Python loop over steps.

Notation (docs/maths.md §6): ``mu`` is the behaviour policy that sampled a step, ``pi`` the policy being
trained, ``rho_t = pi(a_t|s_t) / mu(a_t|s_t)``, ``rhō_t = min(rho_t, c)`` with ``c`` the
truncation level, ``w_t = prod_{k <= t} rhō_k`` the per-decision weight.
"""

from __future__ import annotations

import numpy as np

from sb3_reinforce.common.episodes import pad_episodes, unpad_episodes
from sb3_reinforce.common.returns import discounted_reward_to_go


def importance_ratios(log_prob: np.ndarray, behaviour_log_prob: np.ndarray) -> np.ndarray:
    """
    ``rho_t = pi(a_t|s_t) / mu(a_t|s_t)``, computed as ``exp(log pi - log mu)`` in float64.

    >>> importance_ratios(np.log([0.5, 0.2]), np.log([0.25, 0.4]))
    array([2. , 0.5])

    :param log_prob: ``log pi(a_t|s_t)`` under the current parameters, shape ``(M,)``.
    :param behaviour_log_prob: ``log mu(a_t|s_t)``, recorded when the step was sampled, shape ``(M,)``.
    :return: Ratios, float64, shape ``(M,)`` (``inf`` where ``mu`` is so small that the ratio overflows).
    """
    difference = np.asarray(log_prob, dtype=np.float64) - np.asarray(behaviour_log_prob, dtype=np.float64)
    with np.errstate(over="ignore"):
        return np.exp(difference)


def truncated_ratios(ratios: np.ndarray, truncation: float | None) -> np.ndarray:
    """
    ``rhō_t = min(rho_t, c)``; no truncation when ``c`` is None.

    >>> truncated_ratios(np.array([0.5, 2.0, 1.5]), truncation=1.0)
    array([0.5, 1. , 1. ])

    :param ratios: ``rho_t``, shape ``(M,)``.
    :param truncation: The level ``c > 0``, or None.
    :return: Truncated ratios, float64, shape ``(M,)``.
    """
    ratios = np.asarray(ratios, dtype=np.float64)
    if truncation is None:
        return ratios.copy()
    return np.minimum(ratios, float(truncation))


def approximate_kl(ratios: np.ndarray) -> float:
    """
    ``KL(mu || pi)`` estimated from the ratios of steps sampled by ``mu``: ``mean((rho_t - 1) - log rho_t)``.

    Each term is non-negative and its expectation under ``mu`` is the divergence (Schulman's ``k3``
    estimator, the one SB3's PPO logs as ``approx_kl``).  It is 0 when every ratio is 1 and
    infinite when a ratio is 0 or infinite.

    >>> round(approximate_kl(np.array([1.0, 1.0])), 6), round(approximate_kl(np.array([2.0, 0.5])), 4)
    (0.0, 0.25)

    :param ratios: ``rho_t = pi(a_t|s_t) / mu(a_t|s_t)``, untruncated, shape ``(M,)``.
    :return: The estimate, ``>= 0`` (0 for no steps).
    """
    ratios = np.asarray(ratios, dtype=np.float64)
    if ratios.size == 0:
        return 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = (ratios - 1.0) - np.log(ratios)
    return float(np.mean(np.where(np.isfinite(ratios) & (ratios > 0), terms, np.inf)))


def truncated_fraction(ratios: np.ndarray, truncation: float | None) -> float:
    """
    Fraction of the steps whose ratio the truncation lowered (``rho_t > c``).

    >>> round(truncated_fraction(np.array([0.5, 2.0, 1.5]), truncation=1.0), 3)
    0.667

    :param ratios: ``rho_t`` before truncation, shape ``(M,)``.
    :param truncation: The level ``c``, or None (then 0).
    :return: A number in ``[0, 1]`` (0 for an empty batch).
    """
    ratios = np.asarray(ratios, dtype=np.float64)
    if truncation is None or ratios.size == 0:
        return 0.0
    return float(np.mean(ratios > truncation))


def per_decision_weights(ratios: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """
    ``w_t = prod_{k <= t} rhō_k``: the product of the ratios of the episode's actions up to step ``t``.

    Two episodes, of 3 steps and 1 step: the product restarts with each episode.

    >>> per_decision_weights(np.array([2.0, 0.5, 2.0, 3.0]), lengths=np.array([3, 1]))
    array([2., 1., 2., 3.])

    :param ratios: (Truncated) ratios ``rhō_t`` in the flat episode layout, shape ``(M,)``.
    :param lengths: Episode lengths, shape ``(N,)``.
    :return: Weights, float64, shape ``(M,)``.
    """
    ratios = np.asarray(ratios, dtype=np.float64)
    if ratios.size == 0:
        return ratios.copy()
    with np.errstate(over="ignore", invalid="ignore"):
        return unpad_episodes(np.cumprod(pad_episodes(ratios, lengths, 1.0), axis=1), lengths)


def per_decision_returns(
    rewards: np.ndarray, weights: np.ndarray, lengths: np.ndarray, gamma: float, reward_to_go: bool
) -> np.ndarray:
    """
    Importance-weighted return ``Ĝ^w_t`` of the per-decision estimator: each reward carries the
    weight of the latest action that it, or the score at ``t``, depends on.

    - ``reward_to_go=True`` (docs/maths.md §6): ``Ĝ^w_t = sum_{t' >= t} gamma^(t'-t) w_t' r_t'``.
    - ``reward_to_go=False``: the whole discounted return, reweighted reward by reward,
      ``Ĝ^w_t = sum_t' gamma^t' w_{max(t, t')} r_t'``, that is
      ``w_t sum_{t' < t} gamma^t' r_t' + sum_{t' >= t} gamma^t' w_t' r_t'``.

    With all weights 1 this is docs/maths.md §3's ``Ĝ_t`` in both cases.  One episode of three rewards of 1,
    ``gamma = 0.5``: ``Ĝ^w_2 = 0.5 * 1``, ``Ĝ^w_1 = 2 * 1 + 0.5 Ĝ^w_2``, ``Ĝ^w_0 = 1 * 1 + 0.5 Ĝ^w_1``.

    >>> per_decision_returns(np.ones(3), np.array([1.0, 2.0, 0.5]), np.array([3]), gamma=0.5, reward_to_go=True)
    array([2.125, 2.25 , 0.5  ])

    :param rewards: Per-step rewards (bootstrapped where docs/maths.md §3 says so), shape ``(M,)``.
    :param weights: Per-decision weights ``w_t``, shape ``(M,)``.
    :param lengths: Episode lengths, shape ``(N,)``.
    :param gamma: Discount factor in ``[0, 1]``.
    :param reward_to_go: Which of the two estimators above.
    :return: ``Ĝ^w_t``, float64, shape ``(M,)``.
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    if reward_to_go or rewards.size == 0:
        return discounted_reward_to_go(weights * rewards, lengths, gamma)
    horizon = int(np.max(lengths))
    discounts = np.power(float(gamma), np.arange(horizon, dtype=np.float64))[None, :]
    padded_rewards = pad_episodes(rewards, lengths, 0.0) * discounts
    padded_weights = pad_episodes(weights, lengths, 1.0)
    before = np.cumsum(padded_rewards, axis=1) - padded_rewards
    after = np.cumsum((padded_weights * padded_rewards)[:, ::-1], axis=1)[:, ::-1]
    return unpad_episodes(padded_weights * before + after, lengths)


def per_decision_value_targets(weighted_returns: np.ndarray, weights: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """
    Value-head targets of the per-decision estimator: ``Ĝ^w_t / w_t``.

    This is the return from ``s_t`` with each later reward weighted by the ratios of the actions
    between ``t`` and that reward, an estimate of ``pi``'s return from ``s_t``; the value baseline
    enters the loss as ``w_t V(s_t)``, so this is the quantity it should match.  Where ``w_t``
    underflowed to 0 (the step then contributes nothing to the policy gradient) ``fallback`` is used.

    :param weighted_returns: ``Ĝ^w_t``, shape ``(M,)``.
    :param weights: ``w_t``, shape ``(M,)``.
    :param fallback: Target where ``w_t = 0``, e.g. the unweighted ``Ĝ_t``, shape ``(M,)``.
    :return: Targets, float64, shape ``(M,)``.
    """
    weights = np.asarray(weights, dtype=np.float64)
    targets = np.array(fallback, dtype=np.float64)
    np.divide(np.asarray(weighted_returns, dtype=np.float64), weights, out=targets, where=weights > 0)
    return targets


def effective_sample_size(weights: np.ndarray) -> float:
    """
    Kish's effective sample size ``(sum w)^2 / sum w^2`` of importance weights.

    It equals the number of weights when they are all equal and drops towards 1 as one weight
    dominates.

    >>> effective_sample_size(np.ones(4)), effective_sample_size(np.array([1.0, 0.0, 0.0, 0.0]))
    (4.0, 1.0)

    :param weights: Non-negative weights, any shape.
    :return: The effective sample size (0 for no weights or all-zero weights).
    """
    weights = np.asarray(weights, dtype=np.float64).ravel()
    squares = float(np.sum(weights**2))
    if weights.size == 0 or squares == 0.0:
        return 0.0
    return float(np.sum(weights)) ** 2 / squares
