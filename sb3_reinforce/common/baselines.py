"""The baselines of docs/maths.md §5: none uses episode ``i``'s own actions to build episode ``i``'s baseline."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch as th

from sb3_reinforce.common.episodes import pad_episodes, unpad_episodes
from sb3_reinforce.common.returns import episode_returns

#: Every baseline of the estimator (a class may accept fewer: OffPolicyPG has no ``"optimal"``).
BASELINES = ("none", "mean", "optimal", "value")


def leave_one_out_mean(returns: np.ndarray, lengths: np.ndarray, reward_to_go: bool) -> np.ndarray:
    """
    Leave-one-out mean at every step: ``b^i_t = 1/(N-1) sum_{j != i} Ĝ^j_t``.

    Past the end of episode ``j``, ``Ĝ^j_t`` keeps its own definition: 0 with reward-to-go
    (nothing is left to collect), its value at the last step without it (the whole return,
    constant along the episode, or its importance-weighted counterpart).  Two episodes: each
    step's baseline is the other episode's value at the same step.

    >>> leave_one_out_mean(np.array([3.0, 2.0, 1.0, 5.0]), np.array([3, 1]), reward_to_go=True)
    array([5., 0., 0., 3.])

    The other episodes are summed directly, not as "total minus own", which would let a huge own
    return leak into the baseline through rounding.

    :param returns: ``Ĝ_t`` (or ``Ĝ^w_t``) in the flat episode layout, shape ``(M,)``.
    :param lengths: Episode lengths, shape ``(N,)``, with ``N >= 2``.
    :param reward_to_go: Whether ``returns`` are rewards-to-go (see above).
    :return: Baseline, float64, shape ``(M,)``.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    n_episodes = len(lengths)
    if n_episodes < 2:
        raise ValueError(f"the leave-one-out mean needs at least 2 episodes, got {n_episodes}")
    returns = np.asarray(returns, dtype=np.float64)
    fill = 0.0 if reward_to_go else returns[np.cumsum(lengths) - 1]
    padded = pad_episodes(returns, lengths, fill)
    others = _others_matrix(n_episodes) @ padded / (n_episodes - 1)
    return unpad_episodes(others, lengths)


def _others_matrix(n_episodes: int) -> np.ndarray:
    """``(N, N)`` matrix with 0 on the diagonal and 1 elsewhere: row ``i`` sums the episodes ``j != i``."""
    return 1.0 - np.eye(n_episodes)


def optimal_baseline(score_sq_norms: np.ndarray, returns: np.ndarray) -> np.ndarray:
    """
    Variance-minimising constant baseline, estimated leave-one-out.

    For the whole-episode estimator ``g (R - b)``, with ``g = sum_t grad log pi(a_t|s_t)`` the score of
    one episode and ``R`` its return, the variance is smallest at ``b = E[||g||^2 R] / E[||g||^2]``.
    Episode ``i`` gets this ratio computed from the *other* episodes:
    ``b_i = sum_{j != i} ||g_j||^2 R_j / sum_{j != i} ||g_j||^2``.  Where the other episodes' scores
    are all zero, the ratio is undefined and the plain leave-one-out mean of their returns is used
    (still independent of episode ``i``).

    >>> optimal_baseline(np.array([1.0, 1.0, 2.0]), np.array([1.0, 2.0, 3.0]))
    array([2.66666667, 2.33333333, 1.5       ])

    :param score_sq_norms: ``||g_j||^2`` of each episode, shape ``(N,)``, with ``N >= 2``.
    :param returns: Return ``R_j`` of each episode, shape ``(N,)``.
    :return: One baseline per episode, float64, shape ``(N,)``.
    """
    weights = np.asarray(score_sq_norms, dtype=np.float64)
    returns = np.asarray(returns, dtype=np.float64)
    n_episodes = len(returns)
    if n_episodes < 2:
        raise ValueError(f"the optimal baseline needs at least 2 episodes, got {n_episodes}")
    others = _others_matrix(n_episodes)
    numerator = others @ (weights * returns)
    denominator = others @ weights
    mean_of_others = others @ returns / (n_episodes - 1)
    defined = denominator > 0
    return np.where(defined, numerator / np.where(defined, denominator, 1.0), mean_of_others)


def episode_score_sq_norms(
    log_prob: th.Tensor, lengths: np.ndarray, parameters: Sequence[th.nn.Parameter]
) -> np.ndarray:
    """
    Squared norm of each episode's score ``g_i = sum_t grad_theta log pi(a_t|s_t)``.

    One backward pass per episode (a loop over episodes, not steps) through the graph of
    ``log_prob``, which is kept for the policy-gradient backward pass that follows.

    :param log_prob: Log-probabilities of the batch's actions with their autograd graph, shape ``(M,)``.
    :param lengths: Episode lengths, shape ``(N,)``.
    :param parameters: The parameters ``theta`` to differentiate with respect to.
    :return: ``||g_i||^2``, float64, shape ``(N,)``.
    """
    params = [p for p in parameters if p.requires_grad]
    per_episode = th.zeros(len(lengths), dtype=log_prob.dtype, device=log_prob.device)
    index = th.as_tensor(np.repeat(np.arange(len(lengths)), lengths), device=log_prob.device)
    per_episode = per_episode.index_add(0, index, log_prob)
    norms = np.zeros(len(lengths), dtype=np.float64)
    for i in range(len(lengths)):
        grads = th.autograd.grad(per_episode[i], params, retain_graph=True, allow_unused=True)
        norms[i] = sum(float(g.double().pow(2).sum()) for g in grads if g is not None)
    return norms


def compute_baseline(
    name: str,
    returns: np.ndarray,
    lengths: np.ndarray,
    reward_to_go: bool,
    values: th.Tensor,
    log_prob: th.Tensor,
    rewards: np.ndarray,
    gamma: float,
    parameters: Sequence[th.nn.Parameter],
) -> np.ndarray:
    """
    The baseline ``b_t`` named ``name`` for every step of a batch (docs/maths.md §5).

    :param name: One of :data:`BASELINES`.
    :param returns: The returns the baseline is subtracted from, ``Ĝ_t`` (or ``Ĝ^w_t``), shape ``(M,)``.
    :param lengths: Episode lengths, shape ``(N,)``.
    :param reward_to_go: Whether ``returns`` are rewards-to-go.
    :param values: ``V(s_t)`` from the value head, shape ``(M,)`` (``"value"``).
    :param log_prob: ``log pi(a_t|s_t)`` with its graph (``"optimal"`` differentiates it).
    :param rewards: The rewards the returns come from (``"optimal"`` weighs each episode's whole return).
    :param gamma: Discount factor (``"optimal"``).
    :param parameters: The policy's parameters (``"optimal"``).
    :return: ``b_t``, float64, shape ``(M,)``; ``"mean"`` of a single episode is 0 (there are no others).
    """
    if name == "none" or (name == "mean" and len(lengths) < 2):
        return np.zeros_like(returns)
    if name == "mean":
        return leave_one_out_mean(returns, lengths, reward_to_go)
    if name == "optimal":
        norms = episode_score_sq_norms(log_prob, lengths, parameters)
        return np.repeat(optimal_baseline(norms, episode_returns(rewards, lengths, gamma)), lengths)
    if name == "value":
        return values.detach().cpu().numpy().astype(np.float64)
    raise ValueError(f"baseline={name!r} is not supported; allowed values: {', '.join(map(repr, BASELINES))}")
