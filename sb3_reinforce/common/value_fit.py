"""Fitting the value baseline between updates: epochs of minibatch regression on the returns (docs/maths.md §5.3).

The value baseline ``b_t = V(s_t)`` keeps the policy gradient unbiased only if ``V`` does not depend
on the batch it is applied to.  The fit therefore runs *after* the update that used ``V``: the
advantages of a batch are computed with ``V`` as it was before that batch was seen, and the fit on
the batch's returns prepares the baseline of the next batches.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch as th
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.utils import obs_as_tensor

from sb3_reinforce.common.episodes import Observations
from sb3_reinforce.common.errors import require_finite
from sb3_reinforce.common.gradient_step import GuardedStep, backward_and_step


def value_only_parameters(policy: ActorCriticPolicy) -> list[th.nn.Parameter]:
    """
    The parameters that change ``V(s)`` but not ``pi(.|s)``.

    They are the value head, the critic's layers of the ``mlp_extractor`` and, when the actor and
    the critic do not share it, the critic's own features extractor.  A features extractor shared
    with the actor is left out, so that fitting ``V`` never moves the policy.

    :param policy: An SB3 actor-critic policy.
    :return: The parameters, in the policy's order.
    """
    actor_modules: list[th.nn.Module] = [
        policy.pi_features_extractor,
        policy.mlp_extractor.policy_net,
        policy.action_net,
    ]
    actor = {id(p) for module in actor_modules for p in module.parameters()}
    log_std = getattr(policy, "log_std", None)
    if isinstance(log_std, th.nn.Parameter):
        actor.add(id(log_std))
    return [p for p in policy.parameters() if id(p) not in actor]


def fit_value_function(
    policy: ActorCriticPolicy,
    optimizer: th.optim.Optimizer,
    parameters: Sequence[th.nn.Parameter],
    observations: Observations,
    targets: np.ndarray,
    epochs: int,
    batch_size: int | None,
    max_grad_norm: float | None,
    guard: GuardedStep,
) -> float:
    """
    Regress ``V(s_t)`` on ``targets`` for ``epochs`` passes over the steps, in shuffled minibatches.

    Each minibatch is one guarded optimiser step on its mean squared error (the same checks as the
    policy update: a non-finite loss, gradient or parameter raises :class:`NonFiniteLossError`).

    :param policy: The policy whose value head is fitted.
    :param optimizer: Optimiser of ``parameters`` (only those move).
    :param parameters: The value-only parameters (:func:`value_only_parameters`).
    :param observations: Observations of the steps, leading axis ``M``.
    :param targets: What ``V(s_t)`` is fitted to, shape ``(M,)``.
    :param epochs: Passes over the steps.
    :param batch_size: Steps per minibatch (None: all of them, one step per epoch).
    :param max_grad_norm: Clip each step's gradient to this norm (None: no clipping).
    :param guard: Guard of the optimiser steps.
    :return: The mean squared error of the last minibatch, before its step.
    """
    device = next(policy.parameters()).device
    obs = obs_as_tensor(observations, device)  # type: ignore[arg-type]
    goal = th.as_tensor(targets, device=device, dtype=th.float32)
    n_steps = len(goal)
    size = n_steps if batch_size is None else min(batch_size, n_steps)
    loss = th.zeros(())
    for _ in range(epochs):
        order = th.randperm(n_steps, device=device)
        for start in range(0, n_steps, size):
            index = order[start : start + size]
            minibatch = {k: v[index] for k, v in obs.items()} if isinstance(obs, dict) else obs[index]
            loss = th.nn.functional.mse_loss(policy.predict_values(minibatch).flatten(), goal[index])
            require_finite("value-fit loss", loss)
            backward_and_step(loss, optimizer, parameters, max_grad_norm, guard, name="value-fit gradient")
    return float(loss.detach())
