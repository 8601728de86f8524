"""The baselines of docs/maths.md §5: none uses episode ``i``'s own actions to build episode ``i``'s baseline."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch as th

from sb3_reinforce.common.episodes import episode_index, pad_episodes, time_index, unpad_episodes

#: Every baseline of the estimator (a class may accept fewer: OffPolicyPG has none of the optimal ones).
BASELINES = ("none", "mean", "optimal", "optimal_constant", "optimal_time", "optimal_coordinate", "value")

#: The variance-optimal baselines of docs/maths.md §5.4; they differentiate every step's log-probability.
OPTIMAL_BASELINES = ("optimal", "optimal_constant", "optimal_time", "optimal_coordinate")

#: What ``"optimal"`` stands for: the variant with the lowest measured variance at 16 episodes per
#: batch (docs/benchmarks.md, gradient quality).
OPTIMAL_DEFAULT = "optimal_constant"


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


def leave_one_out_ratio(numerator: np.ndarray, denominator: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """
    ``sum_{j != i} numerator_j / sum_{j != i} denominator_j`` for every episode ``i`` (axis 0).

    The other episodes are summed directly (as in :func:`leave_one_out_mean`).  Where the other
    episodes' denominators sum to 0 (no weight at all), ``fallback`` is used instead: it must not
    depend on episode ``i`` either.  Three episodes, the third with no weight:

    >>> leave_one_out_ratio(np.array([2.0, 6.0, 0.0]), np.array([1.0, 2.0, 0.0]), np.full(3, -1.0))
    array([3.        , 2.        , 2.66666667])

    :param numerator: ``(N, ...)`` per-episode weighted sums.
    :param denominator: ``(N, ...)`` per-episode weights, ``>= 0``, same shape.
    :param fallback: Value where the others' weights sum to 0, broadcastable to that shape.
    :return: float64 array of the shape of ``numerator``.
    """
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    others = _others_matrix(len(numerator))
    total = np.tensordot(others, numerator, axes=1)
    weight = np.tensordot(others, denominator, axes=1)
    defined = weight > 0
    return np.where(defined, total / np.where(defined, weight, 1.0), fallback)


def optimal_constant_baseline(
    weights: np.ndarray, returns: np.ndarray, lengths: np.ndarray, reward_to_go: bool
) -> np.ndarray:
    """
    ``"optimal_constant"``: one constant per episode, ``b_i = sum_{j!=i} sum_t w^j_t Ĝ^j_t / sum_{j!=i} sum_t w^j_t``.

    ``w_t = lambda_t^2 ||g_t||^2`` is the squared size of step ``t``'s score term (docs/maths.md §5.4):
    the return of a step counts as much as its score weighs in the variance.  Where the other
    episodes carry no weight, the leave-one-out mean (:func:`leave_one_out_mean`) is used.
    Three one-step episodes with weights 1, 1, 2 and returns 1, 2, 3:

    >>> optimal_constant_baseline(np.array([1.0, 1.0, 2.0]), np.array([1.0, 2.0, 3.0]), np.ones(3, int), True)
    array([2.66666667, 2.33333333, 1.5       ])

    :param weights: ``w_t``, shape ``(M,)``, ``>= 0``.
    :param returns: ``Ĝ_t``, shape ``(M,)``.
    :param lengths: Episode lengths, shape ``(N,)``, with ``N >= 2``.
    :param reward_to_go: Whether ``returns`` are rewards-to-go (for the fallback).
    :return: ``b_t`` (constant along each episode), float64, shape ``(M,)``.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    weights = np.asarray(weights, dtype=np.float64)
    fallback = leave_one_out_mean(returns, lengths, reward_to_go)
    episode = episode_index(lengths)
    numerator = np.bincount(episode, weights * returns, minlength=len(lengths))
    denominator = np.bincount(episode, weights, minlength=len(lengths))
    defined = (_others_matrix(len(lengths)) @ denominator) > 0
    ratio = leave_one_out_ratio(numerator, denominator, np.zeros(len(lengths)))
    return np.where(np.repeat(defined, lengths), np.repeat(ratio, lengths), fallback)


def optimal_time_baseline(
    weights: np.ndarray, returns: np.ndarray, lengths: np.ndarray, reward_to_go: bool
) -> np.ndarray:
    """
    ``"optimal_time"``: one constant per time step, ``b^i_t = sum_{j!=i} w^j_t Ĝ^j_t / sum_{j!=i} w^j_t``.

    ``w_t = lambda_t^2 ||g_t||^2`` as in :func:`optimal_constant_baseline`; an episode that has
    ended before step ``t`` has no score there and no weight.  Where no other episode weighs at
    step ``t``, the leave-one-out mean at that step is used.  Two episodes: each step gets the
    other episode's return at the same step, and past its end the mean baseline (0 with
    reward-to-go):

    >>> optimal_time_baseline(np.ones(4), np.array([3.0, 2.0, 1.0, 5.0]), np.array([3, 1]), True)
    array([5., 0., 0., 3.])

    :param weights: ``w_t``, shape ``(M,)``, ``>= 0``.
    :param returns: ``Ĝ_t``, shape ``(M,)``.
    :param lengths: Episode lengths, shape ``(N,)``, with ``N >= 2``.
    :param reward_to_go: Whether ``returns`` are rewards-to-go (for the fallback).
    :return: ``b_t``, float64, shape ``(M,)``.
    """
    weights = np.asarray(weights, dtype=np.float64)
    fallback = pad_episodes(leave_one_out_mean(returns, lengths, reward_to_go), lengths)
    numerator = pad_episodes(weights * np.asarray(returns, dtype=np.float64), lengths)
    return unpad_episodes(leave_one_out_ratio(numerator, pad_episodes(weights, lengths), fallback), lengths)


def optimal_coordinate_baseline(
    scores: np.ndarray, discount: np.ndarray, returns: np.ndarray, lengths: np.ndarray, reward_to_go: bool
) -> np.ndarray:
    """
    ``"optimal_coordinate"``: per step and parameter, ``b^i_{t,k} = sum_{j!=i} w^j_{t,k} Ĝ^j_t / sum_{j!=i} w^j_{t,k}``.

    ``w_{t,k} = (lambda_t g_{t,k})^2``, the squared ``k``-th coordinate of step ``t``'s score term
    (docs/maths.md §5.4).  Where no other episode weighs at ``(t, k)``, the leave-one-out mean at
    step ``t`` is used.  Two one-step episodes with scores ``(1, 0)`` and ``(2, 1)``: coordinate 0
    takes the other episode's return, coordinate 1 of episode 1 has no other weight and falls back
    on the mean (here the other return as well):

    >>> optimal_coordinate_baseline(np.array([[1.0, 0.0], [2.0, 1.0]]), np.ones(2), np.array([1.0, 3.0]),
    ...                             np.array([1, 1]), True)
    array([[3., 3.],
           [1., 1.]])

    :param scores: ``g_{t,k} = d log pi(a_t|s_t) / d theta_k``, shape ``(M, P)``.
    :param discount: ``lambda_t``, shape ``(M,)``.
    :param returns: ``Ĝ_t``, shape ``(M,)``.
    :param lengths: Episode lengths, shape ``(N,)``, with ``N >= 2``.
    :param reward_to_go: Whether ``returns`` are rewards-to-go (for the fallback).
    :return: ``b_{t,k}``, float64, shape ``(M, P)``.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    weights = (np.asarray(discount, dtype=np.float64)[:, None] * np.asarray(scores, dtype=np.float64)) ** 2
    fallback = pad_episodes(leave_one_out_mean(returns, lengths, reward_to_go), lengths)
    numerator = _pad_rows(weights * np.asarray(returns, dtype=np.float64)[:, None], lengths)
    padded = leave_one_out_ratio(numerator, _pad_rows(weights, lengths), fallback[:, :, None])
    return padded[episode_index(lengths), time_index(lengths)]


def _pad_rows(rows: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``(M, P)`` per-step rows into a zero-padded ``(N, max T, P)`` array."""
    padded = np.zeros((len(lengths), int(np.max(lengths)), rows.shape[1]), dtype=np.float64)
    padded[episode_index(lengths), time_index(lengths)] = rows
    return padded


#: Bound on ``chunk_size * M`` in :func:`per_step_scores`: the batched backward pass holds that many
#: rows of every intermediate gradient at once.
SCORE_ROWS_PER_PASS = 2**19


#: Steps per chunk when :func:`per_step_scores` re-evaluates the steps chunk by chunk.
SCORE_CHUNK_STEPS = 128


def per_step_scores(
    log_prob: th.Tensor,
    parameters: Sequence[th.nn.Parameter],
    chunk_size: int | None = None,
    step_log_prob: Callable[[np.ndarray], th.Tensor] | None = None,
) -> tuple[th.Tensor, list[th.nn.Parameter]]:
    """
    The score of every step, ``g_t = grad_theta log pi(a_t|s_t)``, as the rows of an ``(M, P)`` matrix.

    Each row is the gradient of one entry of ``log_prob``, by torch's batched backward
    (``is_grads_batched``), ``chunk_size`` rows at a time.  Two ways:

    - ``step_log_prob`` given (a policy whose steps are independent given their observations, as
      every feed-forward policy): each chunk of steps is evaluated again on its own, and the
      backward passes run through that chunk's small graph.  The time grows linearly with the
      batch's steps.
    - otherwise (e.g. a recurrent policy), through the graph of the whole batch, kept for the
      policy-gradient backward pass that follows: exact for any policy, but each row costs a
      backward pass of the whole batch, so the time grows with the square of its steps.

    :param log_prob: ``log pi(a_t|s_t)`` with its autograd graph, shape ``(M,)``.
    :param parameters: The parameters ``theta``; those ``log_prob`` does not depend on are dropped.
    :param chunk_size: Steps per batched backward pass (None: :data:`SCORE_CHUNK_STEPS` with
        ``step_log_prob``; otherwise 256, fewer when ``256 * M`` exceeds :data:`SCORE_ROWS_PER_PASS`).
    :param step_log_prob: Recomputes ``log pi(a_t|s_t)``, with a graph of its own, for the steps of
        the given flat indices (None: use the whole batch's graph).
    :return: The scores (float64, on ``log_prob``'s device) and the parameters of their columns, in order.
    """
    params = [p for p in parameters if p.requires_grad]
    n_steps = log_prob.shape[0]
    if chunk_size is None:
        whole = max(1, min(256, SCORE_ROWS_PER_PASS // max(n_steps, 1)))
        chunk_size = SCORE_CHUNK_STEPS if step_log_prob is not None else whole
    blocks: list[th.Tensor] = []
    used: list[th.nn.Parameter] = []
    for start in range(0, n_steps, chunk_size):
        stop = min(n_steps, start + chunk_size)
        if step_log_prob is not None:  # the chunk's own graph: one row per output
            outputs = step_log_prob(np.arange(start, stop))
            selector = th.eye(stop - start, dtype=outputs.dtype, device=outputs.device)
        else:
            outputs = log_prob
            selector = th.zeros(stop - start, n_steps, dtype=log_prob.dtype, device=log_prob.device)
            selector[:, start:stop] = th.eye(stop - start, dtype=log_prob.dtype, device=log_prob.device)
        grads = th.autograd.grad(
            outputs, params, grad_outputs=selector, is_grads_batched=True, retain_graph=True, allow_unused=True
        )
        used = [p for p, g in zip(params, grads) if g is not None]
        blocks.append(th.cat([g.reshape(stop - start, -1).double() for g in grads if g is not None], dim=1))
    if not blocks:
        return th.zeros(0, 0, dtype=th.float64, device=log_prob.device), []
    return th.cat(blocks), used


def coordinate_baseline_term(
    scores: th.Tensor,
    parameters: Sequence[th.nn.Parameter],
    baselines: np.ndarray,
    step_weights: np.ndarray,
    n_episodes: int,
) -> th.Tensor:
    """
    The loss term of a per-coordinate baseline, ``sum_k theta_k c_k`` with ``c`` held constant.

    ``c = (1/N) sum_i sum_t w_t g_t ⊙ b_t``, the baseline's part of the gradient estimate.

    Its gradient is ``c``, so adding it to the surrogate loss subtracts ``(1/N) sum_i sum_t w_t
    g_t ⊙ b_t`` from the gradient estimate, which no single advantage per step could do; the
    backward pass, clipping and optimiser step are unchanged.  Its value is meaningless.

    :param scores: ``g_t`` from :func:`per_step_scores`, shape ``(M, P)``.
    :param parameters: The parameters of the columns of ``scores``, in order.
    :param baselines: ``b_{t,k}``, shape ``(M, P)``.
    :param step_weights: ``w_t`` of the surrogate loss (``lambda_t``), shape ``(M,)``.
    :param n_episodes: ``N``.
    :return: Scalar tensor, differentiable in ``parameters`` only.
    """
    weighted = th.as_tensor(np.asarray(step_weights, dtype=np.float64)[:, None] * baselines, device=scores.device)
    correction = (scores * weighted).sum(dim=0) / n_episodes
    term = th.zeros((), device=scores.device)
    offset = 0
    for param in parameters:
        size = param.numel()
        c = correction[offset : offset + size].reshape(param.shape).to(param.dtype)
        term = term + (param * c).sum()
        offset += size
    return term


def compute_baseline(
    name: str,
    returns: np.ndarray,
    lengths: np.ndarray,
    reward_to_go: bool,
    values: th.Tensor,
    discount: np.ndarray,
    scores: th.Tensor | None = None,
) -> np.ndarray:
    """
    The baseline ``b_t`` named ``name`` for every step of a batch (docs/maths.md §5).

    :param name: One of :data:`BASELINES`.
    :param returns: The returns the baseline is subtracted from, ``Ĝ_t`` (or ``Ĝ^w_t``), shape ``(M,)``.
    :param lengths: Episode lengths, shape ``(N,)``.
    :param reward_to_go: Whether ``returns`` are rewards-to-go.
    :param values: ``V(s_t)`` from the value head, shape ``(M,)`` (``"value"``).
    :param discount: ``lambda_t`` of the loss, shape ``(M,)`` (the optimal baselines weigh steps by it).
    :param scores: Per-step scores from :func:`per_step_scores`, shape ``(M, P)`` (the optimal baselines).
    :return: ``b_t``, float64, shape ``(M,)``, or ``(M, P)`` for ``"optimal_coordinate"``; ``"mean"``
        of a single episode is 0 (there are no others).
    """
    if name == "none" or (name == "mean" and len(lengths) < 2):
        return np.zeros_like(returns)
    if name == "mean":
        return leave_one_out_mean(returns, lengths, reward_to_go)
    if name in OPTIMAL_BASELINES:
        if scores is None:
            raise ValueError(f"baseline={name!r} needs the per-step scores")
        if len(lengths) < 2:
            raise ValueError(f"baseline={name!r} is leave-one-out: it needs at least 2 episodes, got {len(lengths)}")
        name = OPTIMAL_DEFAULT if name == "optimal" else name
        score_rows = scores.detach().cpu().numpy()
        if name == "optimal_coordinate":
            return optimal_coordinate_baseline(score_rows, discount, returns, lengths, reward_to_go)
        weights = np.asarray(discount, dtype=np.float64) ** 2 * (score_rows**2).sum(axis=1)
        if name == "optimal_time":
            return optimal_time_baseline(weights, returns, lengths, reward_to_go)
        return optimal_constant_baseline(weights, returns, lengths, reward_to_go)
    if name == "value":
        return values.detach().cpu().numpy().astype(np.float64)
    raise ValueError(f"baseline={name!r} is not supported; allowed values: {', '.join(map(repr, BASELINES))}")
