"""Sampling actions and their log-probabilities during collection, without per-step overhead where possible.

Collection calls the policy once per vector step.  For SB3's categorical head (``Discrete`` action
spaces) building a ``torch.distributions.Categorical`` and validating its arguments and samples
costs several times the network's forward pass on a small batch, so for that case the same
computation is done directly: the logits are normalised exactly as ``Categorical`` normalises them,
and the action is drawn by the same ``torch.multinomial`` call on the same probabilities.  The
actions and log-probabilities are therefore identical to
``policy.get_distribution(obs).get_actions()`` and ``.log_prob(actions)`` under the same torch
random state (``tests/test_action_sampling.py``).  Every other distribution, and any policy class
that overrides how the distribution is built, goes through SB3's ``get_distribution``.
"""

from __future__ import annotations

import torch as th
from stable_baselines3.common.distributions import CategoricalDistribution
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy


def has_fast_categorical_path(policy: BasePolicy) -> bool:
    """
    Whether :func:`sample_actions` can bypass ``torch.distributions`` for this policy.

    True for an ``ActorCriticPolicy`` (or subclass) with a categorical action head that does not
    override how the distribution is built from the observation.

    :param policy: The policy.
    :return: True when the direct categorical computation applies.
    """
    if not isinstance(policy, ActorCriticPolicy) or not isinstance(policy.action_dist, CategoricalDistribution):
        return False
    cls = type(policy)
    return (
        cls.get_distribution is ActorCriticPolicy.get_distribution
        and cls._get_action_dist_from_latent is ActorCriticPolicy._get_action_dist_from_latent
    )


def sample_actions(policy: BasePolicy, observations: th.Tensor | dict[str, th.Tensor]) -> tuple[th.Tensor, th.Tensor]:
    """
    Sample one action per observation from the policy, and its log-probability (no gradient).

    :param policy: An SB3 policy (actor-critic).
    :param observations: A batch of observations as tensors on the policy's device.
    :return: ``(actions, log_probs)``, as ``policy.get_distribution(obs)`` would sample and score them:
        actions in the distribution's flat layout (``(n,)`` for ``Discrete``, ``(n, action_dim)``
        otherwise), the layout ``evaluate_actions`` takes back.
    """
    with th.no_grad():
        if has_fast_categorical_path(policy):
            assert isinstance(policy, ActorCriticPolicy)
            # The actor's features, as get_distribution computes them (a features extractor of its own
            # when share_features_extractor=False).
            features = BasePolicy.extract_features(policy, observations, policy.pi_features_extractor)
            logits = policy.action_net(policy.mlp_extractor.forward_actor(features))
            # Categorical(logits=...) keeps logits - logsumexp and samples multinomial(softmax(that)).
            normalized = logits - logits.logsumexp(dim=-1, keepdim=True)
            actions = th.multinomial(th.softmax(normalized, dim=-1), 1, True).squeeze(-1)
            return actions, normalized.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
        distribution = policy.get_distribution(observations)  # type: ignore[operator]
        actions = distribution.get_actions()
        return actions, distribution.log_prob(actions)
