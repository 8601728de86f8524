"""The policy-gradient estimator of docs/maths.md §3–§6: from episodes to the loss terms of one update.

One function, :func:`policy_gradient_losses`, serves both algorithms.  OffPolicyPG passes the
importance ratios ``rho_t = pi(a_t|s_t) / mu(a_t|s_t)`` of episodes played by older parameters;
REINFORCE is the same estimator with every ratio equal to 1, where both weighting schemes reduce
exactly to its loss.  It reads in the order of the maths:

rewards (bootstrapped) → importance weights → returns → baselines → advantages → losses.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch as th

from sb3_reinforce.common.baselines import (
    OPTIMAL_BASELINES,
    compute_baseline,
    coordinate_baseline_term,
    per_step_scores,
)
from sb3_reinforce.common.episodes import EpisodeBatch, Observations, take_steps
from sb3_reinforce.common.errors import require_finite
from sb3_reinforce.common.importance_weights import (
    per_decision_returns,
    per_decision_value_targets,
    per_decision_weights,
    truncated_ratios,
)
from sb3_reinforce.common.returns import discount_weights, discounted_returns
from sb3_reinforce.common.surrogate import standardize, surrogate_loss

#: Importance-weighting schemes (docs/maths.md §6).
IMPORTANCE_WEIGHTS = ("per_decision", "per_step")

#: What to check when the env's own rewards are not finite.
ENV_REWARDS_HINT = (
    "The env produced them: find the step with SB3's VecCheckNan wrapper, or fix the env's reward function."
)


@dataclass(frozen=True)
class EstimatorSettings:
    """
    The options of the estimator (each is the constructor argument of the same name).

    :param gamma: Discount factor.
    :param reward_to_go: Weight each action by the rewards that follow it (else the whole return).
    :param unbiased_discount: Multiply step ``t``'s term by ``gamma^t`` (with reward-to-go).
    :param normalize_advantage: Standardise the advantages over the batch.
    :param baseline: ``"none"``, ``"mean"``, ``"optimal"`` (``"optimal_constant"``, ``"optimal_time"``,
        ``"optimal_coordinate"``) or ``"value"``.
    :param importance_weights: ``"per_step"`` or ``"per_decision"``.
    :param truncation: Truncation level ``c`` of the ratios (None: no truncation).
    """

    gamma: float
    reward_to_go: bool
    unbiased_discount: bool
    normalize_advantage: bool
    baseline: str
    importance_weights: str = "per_step"
    truncation: float | None = None


@dataclass(frozen=True)
class PolicyEvaluation:
    """
    The batch's steps under the current policy, with their autograd graphs.

    :param values: ``V(s_t)``, shape ``(M,)``.
    :param log_prob: ``log pi(a_t|s_t)``, shape ``(M,)``.
    :param entropy: Entropy of ``pi(.|s_t)``, shape ``(M,)``, or None when it has no closed form.
    :param step_log_prob: Recomputes ``log pi(a_t|s_t)`` with a graph of its own for the steps of the
        given flat indices, for a policy whose steps are independent given their observations (None:
        not available, e.g. a recurrent policy); it makes the per-step scores of the optimal
        baselines linear in the batch's length.
    """

    values: th.Tensor
    log_prob: th.Tensor
    entropy: th.Tensor | None
    step_log_prob: Callable[[np.ndarray], th.Tensor] | None = None


@dataclass(frozen=True)
class LossTerms:
    """
    The loss terms of one update, before the optimiser step.

    :param policy_loss: The surrogate loss (its gradient is the policy-gradient estimate).
    :param value_loss: Mean squared error of the value head (zero without the value baseline).
    :param entropy_loss: Minus the mean entropy.
    :param value_targets: What the value head is fitted to, shape ``(M,)``.
    :param weights: The importance weights applied: ``rhō_t`` per step, ``w_t`` per decision.
    """

    policy_loss: th.Tensor
    value_loss: th.Tensor
    entropy_loss: th.Tensor
    value_targets: np.ndarray
    weights: np.ndarray


def bootstrapped_rewards(
    batch: EpisodeBatch, gamma: float, value_function: Callable[[Observations], np.ndarray] | None
) -> np.ndarray:
    """
    The batch's rewards, with ``r_{T-1} += gamma V(s_T)`` for every truncated episode when a value function is given.

    Without a value function there is nothing to bootstrap with, and a truncated episode is
    treated as if it had ended there (docs/maths.md §3).

    :param batch: The episodes.
    :param gamma: Discount factor.
    :param value_function: ``V``, applied to a batch of terminal observations; None: no bootstrapping.
    :return: Rewards, float64, shape ``(M,)``.
    """
    rewards = np.array(batch.rewards, dtype=np.float64)
    if value_function is None or not batch.truncated.any():
        return rewards
    truncated = np.flatnonzero(batch.truncated)
    values = value_function(take_steps(batch.terminal_observations, truncated))
    rewards[batch.last_step_index[truncated]] += gamma * np.asarray(values, dtype=np.float64)
    return rewards


def entropy_loss(evaluation: PolicyEvaluation) -> th.Tensor:
    """
    Minus the mean entropy (estimated by ``-log pi`` when the distribution has no closed form).

    :param evaluation: The batch's steps under the current policy.
    :return: The entropy loss.
    """
    if evaluation.entropy is None:
        return evaluation.log_prob.mean()
    return -evaluation.entropy.mean()


def policy_gradient_losses(
    batch: EpisodeBatch,
    evaluation: PolicyEvaluation,
    ratios: np.ndarray,
    settings: EstimatorSettings,
    value_function: Callable[[Observations], np.ndarray],
    parameters: Sequence[th.nn.Parameter],
) -> LossTerms:
    """
    The loss terms of one update over ``batch`` (docs/maths.md §4 and §6).

    With ``w`` the importance weights and ``B`` the number of episodes,

    - ``"per_step"``: ``L = -(1/B) sum_i sum_t lambda_t rhō_t log pi(a_t|s_t) (Ĝ_t - b_t)``;
    - ``"per_decision"``: ``L = -(1/B) sum_i sum_t lambda_t log pi(a_t|s_t) (Ĝ^w_t - w_t b_t)``,
      ``w_t = prod_{k<=t} rhō_k``, ``Ĝ^w_t = sum_{t'>=t} gamma^(t'-t) w_t' r_t'``.

    Every ratio 1 gives REINFORCE's loss in both cases.  Each intermediate quantity is checked:
    the first that is not finite raises :class:`NonFiniteLossError` naming it.

    :param batch: The episodes, with the behaviour log-probabilities of their actions.
    :param evaluation: The steps under the current policy.
    :param ratios: ``rho_t``, shape ``(M,)`` (all ones for episodes of the current policy).
    :param settings: The estimator's options.
    :param value_function: ``V`` of a batch of observations, for bootstrapping truncated episodes
        (used with the value baseline only).
    :param parameters: The policy's parameters (the optimal baselines differentiate with respect to them).
    :return: The loss terms.
    """
    gamma, reward_to_go = settings.gamma, settings.reward_to_go
    lengths = batch.lengths
    require_finite("rewards from the env", batch.rewards, ENV_REWARDS_HINT)
    rewards = bootstrapped_rewards(batch, gamma, value_function if settings.baseline == "value" else None)
    require_finite("rewards", rewards)

    per_decision = settings.importance_weights == "per_decision"
    clipped = truncated_ratios(ratios, settings.truncation)
    weights = per_decision_weights(clipped, lengths) if per_decision else clipped
    require_finite("importance weights", weights)

    if per_decision:
        returns = per_decision_returns(rewards, weights, lengths, gamma, reward_to_go)
        require_finite("importance-weighted returns", returns)
    else:
        returns = discounted_returns(rewards, lengths, gamma, reward_to_go)
        require_finite("returns", returns)

    step_weights = discount_weights(lengths, gamma, settings.unbiased_discount, reward_to_go)
    scores, score_parameters = (
        per_step_scores(evaluation.log_prob, parameters, step_log_prob=evaluation.step_log_prob)
        if settings.baseline in OPTIMAL_BASELINES
        else (None, [])
    )
    baselines = compute_baseline(
        settings.baseline, returns, lengths, reward_to_go, evaluation.values, step_weights, scores
    )
    require_finite(f"baseline ({settings.baseline})", baselines)
    # A per-coordinate baseline (M, P) is not an advantage: it enters the loss as its own term below.
    per_coordinate = baselines.ndim == 2
    step_baselines = np.zeros_like(returns) if per_coordinate else baselines

    # Per decision, the baseline enters as w_t b_t and the score is not reweighted; per step, the score is.
    advantages_np = returns - weights * step_baselines if per_decision else returns - step_baselines
    if not per_decision:
        step_weights = step_weights * weights

    device = evaluation.log_prob.device
    advantages = th.as_tensor(advantages_np, device=device)
    scale = 1.0
    if settings.normalize_advantage:
        scale = _standardize_scale(advantages)
        advantages = standardize(advantages)
    policy_loss = surrogate_loss(
        evaluation.log_prob, advantages, th.as_tensor(step_weights, device=device), batch.n_episodes
    )
    if per_coordinate:
        assert scores is not None
        policy_loss = policy_loss + coordinate_baseline_term(
            scores, score_parameters, scale * baselines, step_weights, batch.n_episodes
        )
    value_targets = _value_targets(returns, weights, rewards, lengths, settings) if per_decision else returns
    return LossTerms(
        policy_loss=policy_loss,
        value_loss=_value_loss(evaluation.values, value_targets, settings.baseline == "value"),
        entropy_loss=entropy_loss(evaluation),
        value_targets=value_targets,
        weights=weights,
    )


def _value_targets(
    returns: np.ndarray, weights: np.ndarray, rewards: np.ndarray, lengths: np.ndarray, settings: EstimatorSettings
) -> np.ndarray:
    """Per decision, the value head is fitted to ``Ĝ^w_t / w_t`` (the plain ``Ĝ_t`` where ``w_t = 0``)."""
    if settings.baseline != "value":
        return returns
    plain = discounted_returns(rewards, lengths, settings.gamma, settings.reward_to_go)
    return per_decision_value_targets(returns, weights, plain)


def _standardize_scale(advantages: th.Tensor) -> float:
    """The factor :func:`standardize` multiplies by, ``1 / (std + 1e-8)`` (1 for fewer than 2 steps)."""
    if advantages.numel() < 2:
        return 1.0
    return 1.0 / (float(advantages.std()) + 1e-8)


def _value_loss(values: th.Tensor, targets: np.ndarray, fitted: bool) -> th.Tensor:
    """Mean squared error of the value head against ``targets`` (zero when the value head is not used)."""
    if not fitted:
        return th.zeros((), device=values.device)
    return th.nn.functional.mse_loss(values, th.as_tensor(targets, device=values.device, dtype=values.dtype))
