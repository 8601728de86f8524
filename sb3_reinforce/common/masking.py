"""Invalid-action masking with sb3-contrib's conventions (docs/masking.md).

An env that exposes ``action_masks()`` (directly, or through
``sb3_contrib.common.wrappers.ActionMasker``) returns, before every step, one boolean per action
choice: True where the action may be taken.  When the env a model is built with exposes it, the
model uses masks everywhere its policy's distribution is used: the collector records them with
every step, the update scores the recorded actions under the masked distribution, and
``predict(..., action_masks=...)`` samples from it.  A masked distribution is sb3-contrib's: the
logits of invalid actions are replaced by a large negative constant, so their probability is 0
and their logits receive exactly zero gradient.

This module holds the pieces that decide and check: which policy class applies masks, which
action spaces can be masked, and how many mask entries an action space has.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from sb3_contrib.common.maskable.utils import get_action_masks, is_masking_supported
from stable_baselines3.common.policies import (
    ActorCriticCnnPolicy,
    ActorCriticPolicy,
    BasePolicy,
    MultiInputActorCriticPolicy,
)
from stable_baselines3.common.vec_env import VecEnv

from sb3_reinforce.common.maskable_policies import MaskableCnnPolicy, MaskableMlpPolicy, MaskableMultiInputPolicy
from sb3_reinforce.common.recurrent import (
    MaskableRecurrentActorCriticCnnPolicy,
    MaskableRecurrentActorCriticPolicy,
    MaskableRecurrentMultiInputActorCriticPolicy,
    RecurrentActorCriticCnnPolicy,
    RecurrentActorCriticPolicy,
    RecurrentMultiInputActorCriticPolicy,
)

__all__ = [
    "MASKABLE_ACTION_SPACES",
    "env_action_masks",
    "env_has_action_masks",
    "mask_size",
    "masked_policy_class",
    "policy_takes_masks",
]

#: Action spaces whose distributions sb3-contrib can mask.
MASKABLE_ACTION_SPACES: tuple[type[spaces.Space], ...] = (spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)

#: The maskable counterpart of each of SB3's actor-critic policies (sb3-contrib's ``MaskablePPO`` policies,
#: masking the raw logits: see :mod:`~sb3_reinforce.common.maskable_policies`).
MASKABLE_COUNTERPARTS: dict[type[BasePolicy], type[BasePolicy]] = {
    ActorCriticPolicy: MaskableMlpPolicy,
    ActorCriticCnnPolicy: MaskableCnnPolicy,
    MultiInputActorCriticPolicy: MaskableMultiInputPolicy,
    # sb3-contrib's recurrent policies (docs/recurrent.md): masks and memory together
    RecurrentActorCriticPolicy: MaskableRecurrentActorCriticPolicy,
    RecurrentActorCriticCnnPolicy: MaskableRecurrentActorCriticCnnPolicy,
    RecurrentMultiInputActorCriticPolicy: MaskableRecurrentMultiInputActorCriticPolicy,
}


def env_has_action_masks(env: VecEnv) -> bool:
    """
    Whether every env of ``env`` exposes ``action_masks()`` (sb3-contrib's test).

    :param env: The vectorised env.
    :return: True when masks can be read from it.
    """
    return bool(is_masking_supported(env))


def env_action_masks(env: VecEnv, size: int) -> np.ndarray:
    """
    The current action masks of every env, as booleans of shape ``(n_envs, size)``.

    :param env: The vectorised env (its envs expose ``action_masks()``).
    :param size: Mask entries per env (:func:`mask_size` of the action space).
    :return: The masks.
    :raises ValueError: When an env's mask does not have ``size`` entries, or allows no action.
    """
    masks = np.asarray(get_action_masks(env))
    if masks.size != env.num_envs * size:
        raise ValueError(
            f"action_masks() returned {masks.size // max(env.num_envs, 1)} entries per env, but the action space "
            f"needs {size} (one per action choice: n for Discrete(n), sum(nvec) for MultiDiscrete, 2 per "
            "binary action for MultiBinary)"
        )
    masks = masks.reshape(env.num_envs, size).astype(bool)
    return masks


def mask_size(action_space: spaces.Space) -> int:
    """
    Number of mask entries of ``action_space`` (sb3-contrib's layout).

    >>> mask_size(spaces.MultiDiscrete([3, 4])), mask_size(spaces.MultiBinary(2)), mask_size(spaces.Discrete(5))
    (7, 4, 5)

    :param action_space: A ``Discrete``, ``MultiDiscrete`` or ``MultiBinary`` space.
    :return: ``n``, ``sum(nvec)`` or ``2 * n``.
    """
    if isinstance(action_space, spaces.Discrete):
        return int(action_space.n)
    if isinstance(action_space, spaces.MultiDiscrete):
        return int(np.sum(action_space.nvec))
    if isinstance(action_space, spaces.MultiBinary):
        return 2 * int(np.prod(action_space.shape))
    raise ValueError(f"action_space={action_space} cannot be masked: only {_names(MASKABLE_ACTION_SPACES)} can")


def check_maskable_action_space(action_space: spaces.Space) -> None:
    """
    Reject an action space that action masks cannot apply to.

    :param action_space: The env's action space.
    :raises ValueError: For anything but ``Discrete``, ``MultiDiscrete`` and ``MultiBinary``.
    """
    if not isinstance(action_space, MASKABLE_ACTION_SPACES):
        raise ValueError(
            f"The env exposes action_masks(), but action_space={action_space} cannot be masked: masks apply only "
            f"to {_names(MASKABLE_ACTION_SPACES)} actions. Remove the action_masks() method (or the ActionMasker "
            "wrapper) for this env."
        )


def policy_takes_masks(policy_class: type[BasePolicy]) -> bool:
    """
    Whether a policy class applies action masks (``MaskableActorCriticPolicy``, or the maskable recurrent one).

    :param policy_class: The policy class.
    :return: True when its distribution and ``predict`` take ``action_masks``.
    """
    return issubclass(policy_class, (MaskableActorCriticPolicy, MaskableRecurrentActorCriticPolicy))


def masked_policy_class(policy_class: type[BasePolicy]) -> type[BasePolicy]:
    """
    The policy class to use when the env has action masks.

    SB3's actor-critic policies (what ``"MlpPolicy"``, ``"CnnPolicy"`` and ``"MultiInputPolicy"`` name)
    become their maskable counterparts, sb3-contrib's ``MaskablePPO`` policies masking the raw logits;
    a maskable class is kept.

    :param policy_class: The policy class the model was given.
    :return: A class whose distribution applies masks.
    :raises ValueError: For a custom policy class that cannot apply masks.
    """
    if policy_takes_masks(policy_class):
        return policy_class
    counterpart = MASKABLE_COUNTERPARTS.get(policy_class)
    if counterpart is None:
        raise ValueError(
            f"The env exposes action_masks(), but policy={policy_class.__name__} cannot apply action masks: use "
            "'MlpPolicy', 'CnnPolicy' or 'MultiInputPolicy' (they become sb3-contrib's maskable policies), or a "
            "subclass of sb3_contrib.common.maskable.policies.MaskableActorCriticPolicy"
        )
    return counterpart


def _names(classes: tuple[type[spaces.Space], ...]) -> str:
    return ", ".join(space.__name__ for space in classes)
