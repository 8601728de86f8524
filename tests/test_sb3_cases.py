"""Cases from SB3's own generic tests, for both classes: spaces and policy options that SB3 users have.

SB3's test files (test_spaces, test_cnn, ...) run against both classes found crashes that the
tests written for this package had missed; each case they exercise is kept here.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.envs import FakeImageEnv
from stable_baselines3.common.vec_env import DummyVecEnv

from sb3_reinforce import REINFORCE, OffPolicyPG
from sb3_reinforce.common.errors import NonFiniteLossError, UnsupportedObservationSpaceError
from sb3_reinforce.common.gradient_step import GuardedStep

ALGOS = [REINFORCE, OffPolicyPG]


def make_model(cls: type, env: Any, **kwargs: Any) -> Any:
    extra = dict(batch_episodes=2, buffer_size=2_000) if cls is OffPolicyPG else {}
    return cls(kwargs.pop("policy", "MlpPolicy"), env, n_episodes=2, seed=0, **extra, **kwargs)


class MatrixActionEnv(gym.Env):
    """Box actions of shape (2, 2) with different bounds per entry; the env checks every action it gets."""

    observation_space = spaces.Box(-1.0, 1.0, (3,), np.float32)
    action_space = spaces.Box(
        low=np.array([[-1.0, 0.0], [-2.0, -0.5]], dtype=np.float32),
        high=np.array([[1.0, 3.0], [2.0, 0.5]], dtype=np.float32),
    )

    def __init__(self) -> None:
        self.t = 0
        self.actions: list[np.ndarray] = []

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple:
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(3, np.float32), {}

    def step(self, action: np.ndarray) -> tuple:
        assert action.shape == (2, 2), action.shape
        assert self.action_space.contains(action.astype(np.float32)), action
        self.actions.append(action)
        self.t += 1
        return np.full(3, self.t / 10, np.float32), float(action.sum()), self.t >= 5, False, {}


@pytest.mark.parametrize("cls", ALGOS)
def test_box_actions_with_two_dimensions(cls: type) -> None:
    env = MatrixActionEnv()
    model = make_model(cls, env)
    model.learn(30)
    assert model.num_timesteps >= 30 and model._n_updates >= 1
    inner = model.get_env().envs[0].unwrapped
    assert len(inner.actions) == model.num_timesteps
    clipped = np.stack(inner.actions)
    assert (clipped == inner.action_space.low).any() or (clipped == inner.action_space.high).any()  # some clipped
    # The episodes keep the sampled actions in the distribution's flat layout, unclipped.
    episodes = model.rollout_buffer if cls is REINFORCE else model.replay_buffer.all_episodes()
    assert episodes.actions.shape == (episodes.n_steps, 4)
    action, _ = model.predict(np.zeros(3, np.float32))
    assert action.shape == (2, 2)


@pytest.mark.parametrize("cls", ALGOS)
@pytest.mark.parametrize("policy", ["MlpPolicy", "CnnPolicy"])
def test_separate_features_extractors(cls: type, policy: str) -> None:
    """``share_features_extractor=False``: SB3's extract_features then returns a (pi, vf) pair."""
    if policy == "CnnPolicy":
        env: Any = FakeImageEnv(screen_height=40, screen_width=40, n_channels=1, discrete=True)
    else:
        env = "CartPole-v1"
    model = make_model(cls, env, policy=policy, policy_kwargs=dict(share_features_extractor=False))
    assert model.policy.pi_features_extractor is not model.policy.vf_features_extractor
    model.learn(40)
    assert model._n_updates >= 1
    # The behaviour log-probabilities recorded during collection are the policy's own: the first
    # update of REINFORCE evaluates the batch with the parameters that played it.
    episodes = model.rollout_buffer if cls is REINFORCE else model.replay_buffer.all_episodes()
    assert np.isfinite(episodes.log_probs).all()


@pytest.mark.parametrize("cls", ALGOS)
def test_recorded_log_probs_use_the_actor_extractor(cls: type) -> None:
    """With separate extractors, the log-probabilities recorded at collection equal evaluate_actions'."""
    model = make_model(cls, "CartPole-v1", policy_kwargs=dict(share_features_extractor=False))
    model.learn(1, log_interval=None)  # one collection, then the update changes the parameters
    before = make_model(cls, "CartPole-v1", policy_kwargs=dict(share_features_extractor=False))
    episodes = model.rollout_buffer if cls is REINFORCE else model.replay_buffer.all_episodes()
    with th.no_grad():
        _, log_prob, _ = before.policy.evaluate_actions(
            th.as_tensor(episodes.observations), th.as_tensor(episodes.actions).long()
        )
    np.testing.assert_allclose(episodes.log_probs, log_prob.numpy(), rtol=0, atol=1e-5)


class SpaceEnv(gym.Env):
    """Counts its resets and steps; the spaces are given."""

    def __init__(self, observation_space: spaces.Space) -> None:
        self.observation_space = observation_space
        self.action_space = spaces.Discrete(2)
        self.calls = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple:
        super().reset(seed=seed)
        self.calls += 1
        return self.observation_space.sample(), {}

    def step(self, action: int) -> tuple:
        self.calls += 1
        return self.observation_space.sample(), 0.0, True, False, {}


UNREADABLE = {
    "tuple": spaces.Tuple((spaces.Discrete(2), spaces.Box(-1, 1, (2,)))),
    "text": spaces.Text(5),
    "dict_of_tuple": spaces.Dict({"a": spaces.Box(-1, 1, (2,)), "b": spaces.Tuple((spaces.Discrete(2),))}),
}


@pytest.mark.parametrize("cls", ALGOS)
@pytest.mark.parametrize("name", list(UNREADABLE))
def test_unsupported_observation_space_is_refused_in_the_constructor(cls: type, name: str) -> None:
    env = SpaceEnv(UNREADABLE[name])
    policy = "MultiInputPolicy" if name.startswith("dict") else "MlpPolicy"
    with pytest.raises(UnsupportedObservationSpaceError, match=r"observation_space=.*is not supported") as info:
        make_model(cls, env, policy=policy)
    message = str(info.value)
    assert "Box, Discrete, MultiDiscrete, MultiBinary" in message and "Dict" in message
    assert isinstance(info.value, ValueError) and isinstance(info.value, AssertionError)
    assert env.calls == 0  # refused before the env was reset or stepped


class NanRewardEnv(gym.Env):
    """Two-step episodes; the 7th step's reward is NaN."""

    observation_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = spaces.Discrete(2)

    def __init__(self) -> None:
        self.steps = 0
        self.t = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple:
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, np.float32), {}

    def step(self, action: int) -> tuple:
        self.steps += 1
        self.t += 1
        reward = math.nan if self.steps == 7 else 1.0
        return np.zeros(2, np.float32), reward, self.t >= 2, False, {}


@pytest.mark.parametrize("cls", ALGOS)
def test_nan_rewards_are_reported_as_the_env_s(cls: type) -> None:
    model = make_model(cls, DummyVecEnv([NanRewardEnv]), baseline="none")
    with pytest.raises(NonFiniteLossError, match="rewards from the env became non-finite") as info:
        model.learn(100)
    assert "The env produced them" in str(info.value)
    assert "learning rate" not in str(info.value)


def test_guarded_step_reuses_its_copies() -> None:
    """The guard overwrites the same buffers at every step instead of copying the optimiser state anew."""
    model = REINFORCE("MlpPolicy", "CartPole-v1", seed=0)
    model.learn(600)
    guard: GuardedStep = model._step_guard
    copies = [id(t) for t in guard._parameters + guard._tensors]
    assert guard._tensors and len(guard._tensors) % 3 == 0  # Adam: step, exp_avg, exp_avg_sq per trained parameter
    updates = model._n_updates
    model.learn(600, reset_num_timesteps=False)
    assert model._n_updates > updates
    assert [id(t) for t in guard._parameters + guard._tensors] == copies


@pytest.mark.parametrize("cls", ALGOS)
def test_tensorboard_run_is_named_after_the_class(cls: type, tmp_path: Any) -> None:
    model = make_model(cls, "CartPole-v1", tensorboard_log=str(tmp_path))
    model.learn(20)
    model.learn(20, tb_log_name="mine")
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{cls.__name__}_1", "mine_1"]
