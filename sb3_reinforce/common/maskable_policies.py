"""sb3-contrib's maskable policies, with the invalid logits masked before they are normalised.

sb3-contrib's ``MaskableCategorical`` normalises the logits of *every* action first and masks the
normalised logits after.  The probabilities are the same, but the log-probability of a valid action
then depends on an invalid action's logit through a normaliser that cancels only up to rounding,
so that logit receives a gradient of rounding size (about 1e-9 of the valid ones) instead of 0.
The classes here mask the raw logits: an invalid action's logit is outside every computation the
loss depends on, and its gradient is exactly 0 (tests/test_masking.py).  Everything else
(sampling, ``predict``, entropy, the network) is sb3-contrib's.
"""

from __future__ import annotations

from typing import Any

import torch as th
from gymnasium import spaces
from sb3_contrib.common.maskable.distributions import (
    MaskableBernoulliDistribution,
    MaskableCategorical,
    MaskableCategoricalDistribution,
    MaskableDistribution,
    MaskableMultiCategoricalDistribution,
    MaybeMasks,
)
from sb3_contrib.common.maskable.policies import (
    MaskableActorCriticCnnPolicy,
    MaskableActorCriticPolicy,
    MaskableMultiInputActorCriticPolicy,
)
from stable_baselines3.common.type_aliases import Schedule


class RawMaskedCategorical(MaskableCategorical):
    """
    ``MaskableCategorical`` whose masks replace the raw logits, not the normalised ones.

    :param probs: Probabilities (then masking acts on their logarithm, as sb3-contrib's does).
    :param logits: Unnormalised log-probabilities.
    :param validate_args: Whether torch validates the arguments.
    :param masks: Which outcomes are allowed (None: all).
    """

    def __init__(
        self,
        probs: th.Tensor | None = None,
        logits: th.Tensor | None = None,
        validate_args: bool | None = None,
        masks: MaybeMasks = None,
    ):
        super().__init__(probs, logits, validate_args)
        if logits is not None:
            self._original_logits = logits
        self.apply_masking(masks)


class RawMaskedCategoricalDistribution(MaskableCategoricalDistribution):
    """
    sb3-contrib's categorical distribution for ``Discrete`` actions, masking the raw logits.

    :param action_dim: Number of actions.
    """

    def proba_distribution(self, action_logits: th.Tensor) -> RawMaskedCategoricalDistribution:
        """
        Set the distribution's logits.

        :param action_logits: The action network's output.
        :return: self
        """
        self.distribution = RawMaskedCategorical(logits=action_logits.view(-1, self.action_dim))
        return self


class RawMaskedMultiCategoricalDistribution(MaskableMultiCategoricalDistribution):
    """
    sb3-contrib's multi-categorical distribution for ``MultiDiscrete`` actions, masking the raw logits.

    :param action_dims: Number of choices of each sub-action.
    """

    def proba_distribution(self, action_logits: th.Tensor) -> RawMaskedMultiCategoricalDistribution:
        """
        Set the logits of every sub-action.

        :param action_logits: The action network's output (the sub-actions' logits side by side).
        :return: self
        """
        logits = action_logits.view(-1, sum(self.action_dims))
        self.distributions = [
            RawMaskedCategorical(logits=split) for split in th.split(logits, list(self.action_dims), dim=1)
        ]
        return self


class RawMaskedBernoulliDistribution(RawMaskedMultiCategoricalDistribution, MaskableBernoulliDistribution):
    """
    sb3-contrib's distribution for ``MultiBinary`` actions (two outcomes per action), masking the raw logits.

    :param action_dim: Number of binary actions.
    """


def raw_masked_distribution(action_space: spaces.Space) -> MaskableDistribution:
    """
    The maskable distribution of ``action_space``, masking the raw logits.

    :param action_space: A ``Discrete``, ``MultiDiscrete`` or ``MultiBinary`` space.
    :return: The distribution (its parameters are set by the policy's action network).
    """
    if isinstance(action_space, spaces.Discrete):
        return RawMaskedCategoricalDistribution(int(action_space.n))
    if isinstance(action_space, spaces.MultiDiscrete):
        return RawMaskedMultiCategoricalDistribution([int(n) for n in action_space.nvec])
    if isinstance(action_space, spaces.MultiBinary):
        return RawMaskedBernoulliDistribution(int(action_space.n))  # type: ignore[arg-type]
    raise ValueError(f"action_space={action_space} cannot be masked: only Discrete, MultiDiscrete, MultiBinary can")


class _RawMasking:
    """Give a maskable policy the raw-logit masking distribution before its networks are built."""

    action_space: spaces.Space
    action_dist: Any

    def _build(self, lr_schedule: Schedule) -> None:
        self.action_dist = raw_masked_distribution(self.action_space)
        super()._build(lr_schedule)  # type: ignore[misc]


#: The constructor parameters of sb3-contrib's maskable policies, shared by the docstrings below.
_POLICY_PARAMETERS = """
:param observation_space: Observation space.
:param action_space: Action space (``Discrete``, ``MultiDiscrete`` or ``MultiBinary``).
:param lr_schedule: Learning rate schedule (its value at 1 sets the optimiser's initial rate).
:param net_arch: The actor's and critic's hidden layers (SB3's ``net_arch``).
:param activation_fn: Activation function of the hidden layers.
:param ortho_init: Use orthogonal initialisation.
:param features_extractor_class: Features extractor class.
:param features_extractor_kwargs: Keyword arguments of the features extractor.
:param share_features_extractor: One features extractor for the actor and the critic.
:param normalize_images: Divide image observations by 255.
:param optimizer_class: Optimiser class.
:param optimizer_kwargs: Keyword arguments of the optimiser, besides the learning rate.
"""


class MaskableMlpPolicy(_RawMasking, MaskableActorCriticPolicy):
    __doc__ = (
        "sb3-contrib's ``MaskableActorCriticPolicy`` (``MaskablePPO``'s ``MlpPolicy``), masking the raw logits.\n"
        + _POLICY_PARAMETERS
    )


class MaskableCnnPolicy(_RawMasking, MaskableActorCriticCnnPolicy):
    __doc__ = (
        "sb3-contrib's ``MaskableActorCriticCnnPolicy`` (``MaskablePPO``'s ``CnnPolicy``), masking the raw logits.\n"
        + _POLICY_PARAMETERS
    )


class MaskableMultiInputPolicy(_RawMasking, MaskableMultiInputActorCriticPolicy):
    __doc__ = (
        "sb3-contrib's ``MaskableMultiInputActorCriticPolicy``, masking the raw logits (``Dict`` observations).\n"
        + _POLICY_PARAMETERS
    )
