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
action spaces can be masked, and how many mask entries an action space has; and
:class:`InfoActionMasker`, for envs that report their mask in ``info`` instead.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
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
    "InfoActionMasker",
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


class InfoActionMasker(gym.Wrapper):
    """
    Expose the action mask an env reports in its ``info`` dict as ``action_masks()``.

    Some envs give the mask of the next step in the ``info`` of ``reset`` and ``step`` rather than
    through a method (gymnasium's ``Taxi``: ``info["action_mask"]``, 1 for an allowed action).  This
    wrapper keeps the last one and returns it as booleans, so that the env works with the models'
    masking and with sb3-contrib's mask-aware evaluation; rl-zoo3 can apply it by name
    (``env_wrapper: sb3_reinforce.common.masking.InfoActionMasker``).

    :param env: The env to wrap.
    :param info_key: The ``info`` key holding the mask.
    """

    def __init__(self, env: gym.Env, info_key: str = "action_mask"):
        super().__init__(env)
        self.info_key = info_key
        self._mask: np.ndarray | None = None

    def _keep(self, info: dict[str, Any]) -> None:
        if self.info_key not in info:
            raise KeyError(
                f"the env's info has no {self.info_key!r} entry (keys: {sorted(info)}): InfoActionMasker needs the "
                "env to report its action mask there; set info_key to the key it uses"
            )
        self._mask = np.asarray(info[self.info_key]).astype(bool)

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        """
        Reset the env and keep the mask of its first step.

        :param kwargs: Passed to the env's ``reset``.
        :return: The observation and the info.
        """
        observation, info = self.env.reset(**kwargs)
        self._keep(info)
        return observation, info

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        """
        Step the env and keep the mask of the next step.

        :param action: The action.
        :return: The env's ``(observation, reward, terminated, truncated, info)``.
        """
        observation, reward, terminated, truncated, info = self.env.step(action)
        self._keep(info)
        return observation, reward, terminated, truncated, info

    def action_masks(self) -> np.ndarray:
        """
        The mask of the current step.

        :return: One boolean per action choice, True where the action is allowed.
        """
        if self._mask is None:
            raise RuntimeError("reset the env before asking for its action mask")
        return self._mask.copy()
