"""Helpers shared by the OffPolicyPG tests: parameter access, update recording and an independent loss.

:func:`reference_loss` is the docs/maths.md §6 loss written the slow, obvious way (Python loops over
episodes and steps, float64, its own returns, weights and baselines), sharing no code with
``sb3_reinforce.common`` beyond the policy network itself.  The replay tests compare the update
the library applied with the gradient of this loss.  (SB3's preprocessing runs the network in
float32, so only the maths after the network is float64.)
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch as th

from sb3_reinforce import OffPolicyPG
from sb3_reinforce.common.episodes import EpisodeBatch


def policy_vector(model: Any) -> np.ndarray:
    """All policy parameters (SB3 order) as one float64 vector."""
    return np.concatenate([p.detach().cpu().double().numpy().ravel() for p in model.policy.parameters()])


def clone_policy(model: Any) -> Any:
    """An independent copy of ``model.policy`` (parameters and optimiser state)."""
    policy = model.policy_class(
        model.observation_space, model.action_space, model.lr_schedule, use_sde=model.use_sde, **model.policy_kwargs
    )
    policy.load_state_dict(copy.deepcopy(model.policy.state_dict()))
    policy.optimizer.load_state_dict(copy.deepcopy(model.policy.optimizer.state_dict()))
    return policy


@dataclass
class RecordedUpdate:
    """One gradient step: the sampled batch and the policy as it was just before the step."""

    batch: EpisodeBatch
    policy_before: Any
    params_before: np.ndarray
    params_after: np.ndarray = field(default_factory=lambda: np.zeros(0))


def record_updates(model: OffPolicyPG) -> list[RecordedUpdate]:
    """
    Wrap ``model.replay_buffer.sample`` so that every gradient step's batch and starting policy are kept.

    ``params_after`` of each record is filled by :func:`finish_records` once training is done.
    """
    records: list[RecordedUpdate] = []
    buffer = model.replay_buffer
    assert buffer is not None
    original = buffer.sample

    def sample(batch_size: int, env: Any = None) -> EpisodeBatch:
        batch = original(batch_size, env=env)
        records.append(RecordedUpdate(batch, clone_policy(model), policy_vector(model)))
        return batch

    buffer.sample = sample  # type: ignore[method-assign]
    return records


def finish_records(model: OffPolicyPG, records: list[RecordedUpdate]) -> None:
    """Fill ``params_after`` of every record (the next record's start, or the final parameters)."""
    for record, following in zip(records, records[1:]):
        record.params_after = following.params_before
    records[-1].params_after = policy_vector(model)


@dataclass
class LossConfig:
    """The hyperparameters :func:`reference_loss` needs."""

    importance_weights: str
    truncation: float | None
    gamma: float
    baseline: str
    reward_to_go: bool
    unbiased_discount: bool
    normalize_advantage: bool
    ent_coef: float
    vf_coef: float

    @classmethod
    def of(cls, model: OffPolicyPG) -> LossConfig:
        return cls(**{name: getattr(model, name) for name in cls.__dataclass_fields__})


def reference_loss(policy: Any, batch: EpisodeBatch, cfg: LossConfig, discrete: bool) -> th.Tensor:
    """
    The docs/maths.md §6 total loss of ``batch`` under ``policy`` (a float64 copy), with loops over episodes and steps.

    Per decision: ``A_t = sum_{t'>=t} gamma^(t'-t) w_t' r_t' - w_t b_t`` (reward-to-go) or
    ``sum_t' gamma^t' w_{max(t,t')} r_t' - w_t b_t`` (whole return); per step: ``A_t = rhō_t (Ĝ_t - b_t)``.
    Baselines: leave-one-out mean over the other episodes of the same-mode return at ``t`` (past an
    episode's end: 0 with reward-to-go, its last value without), ``V(s_t)``, or 0.  Value targets:
    ``Ĝ^w_t / w_t`` per decision, ``Ĝ_t`` per step.  Truncated episodes are bootstrapped with
    ``gamma V(s_T)`` only with the value baseline.
    """
    # SB3's preprocessing runs the network in float32; everything after it is float64.
    obs = th.as_tensor(np.asarray(batch.observations))
    actions = th.as_tensor(np.asarray(batch.actions))
    actions = actions.long() if discrete else actions.float()
    values, log_prob, entropy = policy.evaluate_actions(obs, actions)
    values, log_prob = values.flatten().double(), log_prob.double()
    entropy = entropy.double() if entropy is not None else None
    lengths = [int(n) for n in batch.lengths]
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(int)
    n_episodes = len(lengths)
    horizon = max(lengths)
    per_decision = cfg.importance_weights == "per_decision"

    episode_returns: list[list[float]] = []  # the (weighted) return of every step, per episode
    episode_weights: list[list[float]] = []  # w_t per decision, rhō_t per step
    for i in range(n_episodes):
        rewards = [float(r) for r in batch.rewards[starts[i] : starts[i] + lengths[i]]]
        if batch.truncated[i] and cfg.baseline == "value":
            final = th.as_tensor(np.asarray(batch.terminal_observations)[i : i + 1])
            with th.no_grad():
                rewards[-1] += cfg.gamma * float(policy.predict_values(final).flatten()[0])
        rhos = []
        for t in range(lengths[i]):
            step = starts[i] + t
            rho = math.exp(log_prob[step].item() - float(batch.log_probs[step]))
            rhos.append(rho if cfg.truncation is None else min(rho, cfg.truncation))
        if per_decision:
            weights = []
            product = 1.0
            for rho in rhos:
                product *= rho
                weights.append(product)
        else:
            weights = rhos
        returns = []
        for t in range(lengths[i]):
            total = 0.0
            for u in range(lengths[i]):
                if cfg.reward_to_go and u < t:
                    continue
                discount = cfg.gamma ** (u - t) if cfg.reward_to_go else cfg.gamma**u
                weight = weights[max(t, u)] if per_decision else 1.0
                total += discount * weight * rewards[u]
            returns.append(total)
        episode_returns.append(returns)
        episode_weights.append(weights)

    def padded_return(j: int, t: int) -> float:
        if t < lengths[j]:
            return episode_returns[j][t]
        return 0.0 if cfg.reward_to_go else episode_returns[j][-1]

    advantages = []
    value_targets = []
    for i in range(n_episodes):
        for t in range(lengths[i]):
            step = starts[i] + t
            if cfg.baseline == "mean" and n_episodes >= 2:
                b = sum(padded_return(j, t) for j in range(n_episodes) if j != i) / (n_episodes - 1)
            elif cfg.baseline == "value":
                b = values[step].item()
            else:
                b = 0.0
            weight = episode_weights[i][t]
            g = episode_returns[i][t]
            advantages.append(g - weight * b if per_decision else g - b)
            value_targets.append(g / weight if per_decision else g)
    adv = th.tensor(advantages, dtype=th.float64)
    if cfg.normalize_advantage:
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    step_factor = []
    for i in range(n_episodes):
        for t in range(lengths[i]):
            # lambda_t = gamma^t only for the reward-to-go estimator; R(tau) is already discounted from t = 0.
            factor = cfg.gamma**t if cfg.unbiased_discount and cfg.reward_to_go else 1.0
            if not per_decision:
                factor *= episode_weights[i][t]
            step_factor.append(factor)
    policy_loss = -(th.tensor(step_factor, dtype=th.float64) * adv * log_prob).sum() / n_episodes
    loss = policy_loss
    if cfg.baseline == "value":
        target = th.tensor(value_targets, dtype=th.float64)
        loss = loss + cfg.vf_coef * ((values - target) ** 2).mean()
    entropy_loss = -entropy.mean() if entropy is not None else log_prob.mean()
    del horizon
    return loss + cfg.ent_coef * entropy_loss


def reference_update(record: RecordedUpdate, cfg: LossConfig, lr: float, max_grad_norm: float | None, discrete: bool):
    """The SGD step ``-lr * grad`` (clipped as ``clip_grad_norm_`` does) of :func:`reference_loss`."""
    policy = copy.deepcopy(record.policy_before)  # a fresh clone: no cached graph
    loss = reference_loss(policy, record.batch, cfg, discrete)
    params = list(policy.parameters())
    grads = th.autograd.grad(loss, params, allow_unused=True)
    flat = np.concatenate(
        [(g if g is not None else th.zeros_like(p)).detach().numpy().ravel() for g, p in zip(grads, params)]
    )
    if max_grad_norm is not None:
        norm = float(np.linalg.norm(flat))
        flat = flat * min(1.0, max_grad_norm / (norm + 1e-6))
    return -lr * flat
