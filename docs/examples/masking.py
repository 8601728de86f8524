"""Invalid-action masking: an env with action_masks() is detected, and no invalid action is ever taken."""

import os

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from sb3_contrib.common.maskable.evaluation import evaluate_policy
from sb3_contrib.common.wrappers import ActionMasker
from stable_baselines3.common.env_util import make_vec_env

from sb3_reinforce import REINFORCE


class PickAFreeSlot(gym.Env):
    """Fill 5 slots one at a time: choosing a slot that is already full is invalid (the env raises)."""

    observation_space = spaces.MultiBinary(5)
    action_space = spaces.Discrete(5)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.full = np.zeros(5, dtype=np.int8)
        return self.full.copy(), {}

    def step(self, action):
        if self.full[action]:
            raise ValueError(f"slot {action} is already full")
        reward = float(action + 1)  # later slots pay more, so the order matters for the discounted return
        self.full[action] = 1
        return self.full.copy(), reward, bool(self.full.all()), False, {}

    def free_slots(self) -> np.ndarray:
        return self.full == 0


def mask_fn(env: gym.Env) -> np.ndarray:
    return env.unwrapped.free_slots()


# ActionMasker exposes action_masks() (an env may also define it itself); wrap each env, not the VecEnv.
env = make_vec_env(PickAFreeSlot, n_envs=4, wrapper_class=ActionMasker, wrapper_kwargs={"action_mask_fn": mask_fn})
model = REINFORCE("MlpPolicy", env, n_episodes=8, gamma=0.9, seed=0)
print(type(model.policy).__name__)  # MaskableMlpPolicy: "MlpPolicy" became its maskable counterpart
model.learn(int(os.environ.get("SB3_REINFORCE_EXAMPLE_STEPS", 2_000)))  # the tests shorten it

# sb3-contrib's evaluation reads the masks and passes them to predict(obs, action_masks=...).
mean_return, std_return = evaluate_policy(model, env, n_eval_episodes=8)
print(f"return {mean_return:.1f} +/- {std_return:.1f}")

single = ActionMasker(PickAFreeSlot(), mask_fn)
obs, _ = single.reset(seed=1)
action, _ = model.predict(obs, action_masks=single.action_masks(), deterministic=True)
assert single.action_masks()[action]
