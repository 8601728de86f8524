"""Sampling actions and their log-probabilities during collection, without per-step overhead where possible.

Collection calls the policy once per vector step.  For SB3's categorical head (``Discrete`` action
spaces) building a ``torch.distributions.Categorical`` and validating its arguments and samples
costs several times the network's forward pass on a small batch, so for that case the same
computation is done directly: the logits are normalised exactly as ``Categorical`` normalises them,
and the action is drawn by the same ``torch.multinomial`` call on the same probabilities.  The
actions and log-probabilities are therefore identical to
``policy.get_distribution(obs).get_actions()`` and ``.log_prob(actions)`` under the same torch
random state (``tests/test_action_sampling.py``).  The maskable categorical head of
:mod:`~sb3_reinforce.common.maskable_policies` gets the same treatment, the invalid raw logits
replaced first, exactly as its distribution replaces them.
Every other distribution, and any policy class that overrides how the distribution is built, goes
through the policy's ``get_distribution``.
"""

from __future__ import annotations

import numpy as np
import torch as th
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3.common.distributions import CategoricalDistribution
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy

from sb3_reinforce.common.maskable_policies import RawMaskedCategoricalDistribution

#: The value sb3-contrib's ``MaskableCategorical`` gives the logits of invalid actions.
INVALID_LOGIT = -1e8

#: Policy classes with a categorical head whose logits :func:`sample_actions` computes directly.
_FAST_PATHS: tuple[tuple[type[BasePolicy], type], ...] = (
    (ActorCriticPolicy, CategoricalDistribution),
    (MaskableActorCriticPolicy, RawMaskedCategoricalDistribution),
)


def has_fast_categorical_path(policy: BasePolicy) -> bool:
    """
    Whether :func:`sample_actions` can bypass ``torch.distributions`` for this policy.

    True for an SB3 ``ActorCriticPolicy`` or an sb3-contrib ``MaskableActorCriticPolicy`` (or a
    subclass) with a categorical action head that does not override how the distribution is built
    from the observation.

    :param policy: The policy.
    :return: True when the direct categorical computation applies.
    """
    cls = type(policy)
    return any(
        isinstance(policy, base)
        and isinstance(policy.action_dist, head)  # type: ignore[attr-defined]
        and cls.get_distribution is base.get_distribution  # type: ignore[attr-defined]
        and cls._get_action_dist_from_latent is base._get_action_dist_from_latent  # type: ignore[attr-defined]
        for base, head in _FAST_PATHS
    )


def sample_actions(
    policy: BasePolicy,
    observations: th.Tensor | dict[str, th.Tensor],
    action_masks: np.ndarray | None = None,
) -> tuple[th.Tensor, th.Tensor]:
    """
    Sample one action per observation from the policy, and its log-probability (no gradient).

    :param policy: An SB3 actor-critic policy, or an sb3-contrib maskable one.
    :param observations: A batch of observations as tensors on the policy's device.
    :param action_masks: With a maskable policy, which actions are allowed, boolean, shape
        ``(n, mask_size)`` (None: all of them).
    :return: ``(actions, log_probs)``, as ``policy.get_distribution(obs)`` (with the masks) would
        sample and score them: actions in the distribution's flat layout (``(n,)`` for ``Discrete``,
        ``(n, action_dim)`` otherwise), the layout ``evaluate_actions`` takes back.
    """
    with th.no_grad():
        if has_fast_categorical_path(policy):
            # The actor's features, as get_distribution computes them (a features extractor of its own
            # when share_features_extractor=False).
            features = BasePolicy.extract_features(policy, observations, policy.pi_features_extractor)  # type: ignore[arg-type]
            logits = policy.action_net(policy.mlp_extractor.forward_actor(features))  # type: ignore[operator, union-attr]
            if action_masks is not None:  # RawMaskedCategorical: the invalid raw logits are replaced
                valid = th.as_tensor(action_masks, dtype=th.bool, device=logits.device).reshape(logits.shape)
                logits = th.where(valid, logits, th.tensor(INVALID_LOGIT, dtype=logits.dtype, device=logits.device))
            # Categorical(logits=...) keeps logits - logsumexp and samples multinomial(softmax(that)).
            normalized = logits - logits.logsumexp(dim=-1, keepdim=True)
            actions = th.multinomial(th.softmax(normalized, dim=-1), 1, True).squeeze(-1)
            return actions, normalized.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
        if action_masks is None:
            distribution = policy.get_distribution(observations)  # type: ignore[operator]
        else:
            distribution = policy.get_distribution(observations, action_masks=action_masks)  # type: ignore[operator]
        actions = distribution.get_actions()
        return actions, distribution.log_prob(actions)
