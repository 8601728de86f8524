"""Small deterministic envs for the OffPolicyPG collection tests."""

from __future__ import annotations

from typing import Any, ClassVar, Optional

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class CounterEnv(gym.Env):
    """
    Observation ``(t, episode number, tag)``: every step says exactly where it comes from.

    Episodes last a random number of steps in ``[1, max_length]`` (drawn at reset from the env's
    generator) and end with ``terminated=True``; the reward of step ``t`` is ``1 + t``.  With
    ``never_ends=True`` episodes never terminate (for the ``max_episode_steps`` guard).  The
    reward becomes ``inf`` at the step ``inf_at_step`` of the episode (for the non-finite tests).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(self, tag: int = 0, max_length: int = 7, never_ends: bool = False, inf_at_step: int | None = None):
        super().__init__()
        self.observation_space = spaces.Box(-1.0, 1e6, shape=(3,), dtype=np.float32)
        self.action_space = spaces.Discrete(2)
        self.tag, self.max_length, self.never_ends, self.inf_at_step = tag, max_length, never_ends, inf_at_step
        self.episode = -1
        self.t = 0
        self.length = 1

    def _obs(self) -> np.ndarray:
        return np.array([self.t, self.episode, self.tag], dtype=np.float32)

    def reset(self, *, seed: Optional[int] = None, options: Optional[dict[str, Any]] = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.episode += 1
        self.t = 0
        self.length = int(self.np_random.integers(1, self.max_length + 1))
        return self._obs(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        reward = 1.0 + self.t
        if self.inf_at_step is not None and self.t == self.inf_at_step:
            reward = float("inf")
        self.t += 1
        terminated = not self.never_ends and self.t >= self.length
        return self._obs(), reward, terminated, False, {}
