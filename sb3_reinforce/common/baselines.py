"""The baselines of SPEC §5. None of them uses episode ``i``'s own actions to build episode ``i``'s baseline."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch as th

from sb3_reinforce.common.episodes import episode_offsets, pad_episodes, unpad_episodes

#: Baselines understood by :class:`~sb3_reinforce.REINFORCE`.
BASELINES = ("none", "mean", "optimal", "value")


def leave_one_out_baseline(returns: np.ndarray, lengths: np.ndarray, reward_to_go: bool) -> np.ndarray:
    """
    Leave-one-out mean baseline: ``b^i_t = 1/(N-1) sum_{j != i} Ĝ^j_t``.

    Past the end of episode ``j``, ``Ĝ^j_t`` counts as 0 with reward-to-go (nothing is left to
    collect) and as the episode's whole return ``R(tau_j)`` without it (``Ĝ`` is then constant
    over the episode).

    :param returns: ``Ĝ_t`` in the flat episode layout, shape ``(M,)``.
    :param lengths: Episode lengths, shape ``(N,)``, with ``N >= 2``.
    :param reward_to_go: Whether ``returns`` are rewards-to-go (see above).
    :return: Baseline, float64, shape ``(M,)``.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    n_episodes = len(lengths)
    if n_episodes < 2:
        raise ValueError(f"the leave-one-out baseline needs at least 2 episodes, got {n_episodes}")
    returns = np.asarray(returns, dtype=np.float64)
    fill = 0.0 if reward_to_go else returns[episode_offsets(lengths)]
    padded = pad_episodes(returns, lengths, fill)
    # Sum the other episodes directly (not "total minus own", which would let a huge own return leak in).
    others = _others_matrix(n_episodes) @ padded / (n_episodes - 1)
    return unpad_episodes(others, lengths)


def _others_matrix(n_episodes: int) -> np.ndarray:
    """``(N, N)`` matrix with 0 on the diagonal and 1 elsewhere: row ``i`` sums the episodes ``j != i``."""
    return 1.0 - np.eye(n_episodes)


def optimal_baseline(score_sq_norms: np.ndarray, returns: np.ndarray) -> np.ndarray:
    """
    Variance-minimising constant baseline, estimated leave-one-out.

    The lecture notes' ANOVA gives ``b = E[||g||^2 R] / E[||g||^2]`` with ``g = sum_t grad log pi(a_t|s_t)``
    the score of one episode and ``R`` its return.  Episode ``i`` gets this ratio computed from the
    *other* episodes: ``b_i = sum_{j != i} ||g_j||^2 R_j / sum_{j != i} ||g_j||^2``.  Where the other
    episodes' scores are all zero, the ratio is undefined and the plain leave-one-out mean of
    their returns is used (still independent of episode ``i``).

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
