"""The collection's action sampling equals SB3's distribution sampling, draw for draw."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import ActorCriticPolicy

from sb3_reinforce import REINFORCE
from sb3_reinforce.common.action_sampling import has_fast_categorical_path, sample_actions


class SpaceEnv(gym.Env):
    """A one-step env with the given spaces (only the spaces matter here)."""

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space) -> None:
        self.observation_space, self.action_space = observation_space, action_space

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple:
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action: np.ndarray) -> tuple:
        return self.observation_space.sample(), 0.0, True, False, {}


BOX = spaces.Box(-1.0, 1.0, (3,), np.float32)
ACTION_SPACES = {
    "discrete": spaces.Discrete(5),
    "box": spaces.Box(-2.0, 2.0, (2,), np.float32),
    "multidiscrete": spaces.MultiDiscrete([3, 4]),
    "multibinary": spaces.MultiBinary(3),
}


@pytest.mark.parametrize("share", [True, False], ids=["shared_extractor", "separate_extractors"])
@pytest.mark.parametrize("name", list(ACTION_SPACES))
@pytest.mark.parametrize(
    "observation_space", [BOX, spaces.Dict({"a": BOX, "b": spaces.Discrete(3)})], ids=["box", "dict"]
)
def test_samples_and_log_probs_equal_sb3_distribution(name: str, observation_space: spaces.Space, share: bool) -> None:
    policy_name = "MultiInputPolicy" if isinstance(observation_space, spaces.Dict) else "MlpPolicy"
    env = SpaceEnv(observation_space, ACTION_SPACES[name])
    model = REINFORCE(policy_name, env, seed=0, policy_kwargs=dict(share_features_extractor=share))
    policy = model.policy
    assert has_fast_categorical_path(policy) == (name == "discrete")
    observation_space.seed(1)
    observations = {k: [] for k in observation_space.spaces} if isinstance(observation_space, spaces.Dict) else []
    for _ in range(64):
        sample = observation_space.sample()
        if isinstance(observations, dict):
            for key in observations:
                observations[key].append(sample[key])
        else:
            observations.append(sample)
    obs, _ = policy.obs_to_tensor(
        {k: np.stack(v) for k, v in observations.items()} if isinstance(observations, dict) else np.stack(observations)
    )
    for seed in range(20):
        th.manual_seed(seed)
        actions, log_probs = sample_actions(policy, obs)
        th.manual_seed(seed)
        with th.no_grad():
            distribution = policy.get_distribution(obs)
            expected_actions = distribution.get_actions()
            expected_log_probs = distribution.log_prob(expected_actions)
        assert th.equal(actions, expected_actions)
        th.testing.assert_close(log_probs, expected_log_probs, rtol=0, atol=1e-6)


def test_every_action_is_drawn_with_its_probability() -> None:
    """Frequencies of 20 000 draws over 5 actions agree with the softmax probabilities (|z| < 4.5)."""
    model = REINFORCE("MlpPolicy", SpaceEnv(BOX, spaces.Discrete(5)), seed=0)
    with th.no_grad():
        model.policy.action_net.weight.mul_(20)  # uneven probabilities
    obs = th.ones(20_000, 3)
    th.manual_seed(0)
    actions, log_probs = sample_actions(model.policy, obs)
    probs = log_probs.exp()
    counts = th.bincount(actions, minlength=5).double()
    p = th.zeros(5, dtype=th.float64).scatter_(0, actions, probs.double())  # each action's probability
    assert p.min() > 0.01
    z = (counts - 20_000 * p) / th.sqrt(20_000 * p * (1 - p))
    assert z.abs().max() < 4.5, z


class OverridingPolicy(ActorCriticPolicy):
    """A user policy that changes how the distribution is built: must not take the fast path."""

    def get_distribution(self, obs):  # type: ignore[no-untyped-def]
        logits = self.action_net(self.mlp_extractor.forward_actor(self.extract_features(obs)))
        return self.action_dist.proba_distribution(action_logits=th.zeros_like(logits))  # uniform


def test_policy_overriding_get_distribution_goes_through_it() -> None:
    model = REINFORCE(OverridingPolicy, SpaceEnv(BOX, spaces.Discrete(4)), seed=0)
    assert not has_fast_categorical_path(model.policy)
    _, log_probs = sample_actions(model.policy, th.ones(8, 3))
    th.testing.assert_close(log_probs, th.full((8,), float(np.log(0.25))))
