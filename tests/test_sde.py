"""gSDE (``use_sde`` / ``sde_sample_freq``) in both classes: SB3's semantics, kept through save/load.

With gSDE the exploration noise of a step is ``latent(s) @ W``, with a random matrix ``W`` drawn
per env at the start of each rollout and again every ``sde_sample_freq`` steps.  On an env whose
observation never changes the latent features are constant too, so the sampled actions are equal
exactly while ``W`` is kept: that is what these tests look at.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium.wrappers import TimeLimit
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv

from sb3_reinforce import REINFORCE, OffPolicyPG

EPISODE_LENGTH = 12


class ConstantObservationEnv(gym.Env):
    """Always the same observation and no reward; 12-step episodes (terminated)."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.5, -0.5], dtype=np.float32), {}

    def step(self, action):
        self.t += 1
        return np.array([0.5, -0.5], dtype=np.float32), 0.0, self.t >= EPISODE_LENGTH, False, {}


def make_model(cls, n_envs=1, env=None, **kwargs):
    """One episode per env and update, no baseline; ``n_envs`` constant-observation envs unless ``env`` is given."""
    env = env if env is not None else DummyVecEnv([ConstantObservationEnv] * n_envs)
    extra = {"buffer_size": 100} if cls is OffPolicyPG else {}
    return cls("MlpPolicy", env, n_episodes=n_envs, baseline="none", seed=0, **extra, **kwargs)


def last_batch(model):
    """REINFORCE's last batch, or every episode in OffPolicyPG's replay buffer (oldest first)."""
    if isinstance(model, OffPolicyPG):
        return model.replay_buffer.all_episodes()
    return model.rollout_buffer


def collected_episodes(model):
    """The actions of each episode of :func:`last_batch`, one ``(T, action_dim)`` array per episode."""
    batch = last_batch(model)
    starts = np.concatenate([[0], np.cumsum(batch.lengths)])
    return [batch.actions[a:b] for a, b in zip(starts[:-1], starts[1:])], batch


def blocks_of_equal_rows(actions):
    """Lengths of the runs of identical consecutive rows."""
    runs, length = [], 1
    for previous, current in zip(actions[:-1], actions[1:]):
        if np.array_equal(previous, current):
            length += 1
        else:
            runs.append(length)
            length = 1
    return [*runs, length]


@pytest.mark.parametrize("cls", [REINFORCE, OffPolicyPG])
@pytest.mark.parametrize(
    ("sde_sample_freq", "expected_runs"),
    [(4, [4, 4, 4]), (5, [5, 5, 2]), (1, [1] * EPISODE_LENGTH), (-1, [EPISODE_LENGTH])],
)
def test_noise_matrix_is_kept_for_sde_sample_freq_steps(cls, sde_sample_freq, expected_runs):
    model = make_model(cls, use_sde=True, sde_sample_freq=sde_sample_freq)
    model.learn(1)
    (actions,), _ = collected_episodes(model)
    assert blocks_of_equal_rows(actions) == expected_runs


@pytest.mark.parametrize("cls", [REINFORCE, OffPolicyPG])
def test_each_env_has_its_own_noise_matrix_and_each_rollout_a_new_one(cls):
    model = make_model(cls, n_envs=2, use_sde=True)
    model.learn(1)
    first, _ = collected_episodes(model)
    assert len(first) == 2
    assert blocks_of_equal_rows(first[0]) == [EPISODE_LENGTH]
    assert not np.array_equal(first[0][0], first[1][0])
    matrix = model.policy.action_dist.exploration_matrices.clone()
    model.learn(1, reset_num_timesteps=False)
    assert not th.equal(matrix, model.policy.action_dist.exploration_matrices)


@pytest.mark.parametrize("cls", [REINFORCE, OffPolicyPG])
def test_without_sde_every_step_draws_new_noise(cls):
    model = make_model(cls)
    model.learn(1)
    (actions,), _ = collected_episodes(model)
    assert blocks_of_equal_rows(actions) == [1] * EPISODE_LENGTH


@pytest.mark.parametrize("cls", [REINFORCE, OffPolicyPG])
@pytest.mark.parametrize("squash_output", [False, True])
def test_stored_log_probs_are_the_per_step_marginals(cls, squash_output):
    """The recorded ``log mu(a_t|s_t)`` is what ``evaluate_actions`` gives at the sampling parameters."""
    model = make_model(
        cls, use_sde=True, sde_sample_freq=3, policy_kwargs={"squash_output": squash_output, "log_std_init": -1.0}
    )

    class ScoreAtRolloutEnd(BaseCallback):
        """Before the update: the recorded log-probs and ``evaluate_actions`` on the same steps."""

        def _on_step(self):
            return True

        def _on_rollout_end(self):
            batch = last_batch(self.model)
            with th.no_grad():
                _, log_prob, _ = self.model.policy.evaluate_actions(
                    th.as_tensor(batch.observations), th.as_tensor(batch.actions)
                )
            self.recorded, self.recomputed, self.actions = batch.log_probs, log_prob.numpy(), batch.actions

    callback = ScoreAtRolloutEnd()
    model.learn(1, callback=callback)
    np.testing.assert_allclose(callback.recorded, callback.recomputed, rtol=1e-5, atol=1e-5)
    if squash_output:
        assert np.all(np.abs(callback.actions) < 1.0)


@pytest.mark.parametrize("cls", [REINFORCE, OffPolicyPG])
def test_squashed_actions_are_rescaled_to_the_env_bounds(cls):
    """With ``squash_output`` the policy acts in [-1, 1], mapped to the env's bounds (here [-2, 2])."""
    env = TimeLimit(gym.make("Pendulum-v1").unwrapped, 20)
    model = make_model(cls, env=env, use_sde=True, policy_kwargs={"squash_output": True, "log_std_init": 1.0})
    sent = []
    original_step = model.env.step

    def recording_step(actions):
        sent.append(np.array(actions))
        return original_step(actions)

    model.env.step = recording_step
    model.learn(1)
    (stored,), _ = collected_episodes(model)
    sent_actions = np.concatenate(sent)
    np.testing.assert_allclose(sent_actions, 2.0 * stored, rtol=1e-6)
    assert np.abs(sent_actions).max() > 1.0  # wide noise: the rescaling is visible


@pytest.mark.parametrize("cls", [REINFORCE, OffPolicyPG])
def test_save_load_keeps_sde_and_continues(tmp_path, cls):
    model = make_model(cls, use_sde=True, sde_sample_freq=3, policy_kwargs={"log_std_init": -2.0})
    model.learn(1)
    model.save(tmp_path / "model.zip")
    loaded = cls.load(tmp_path / "model.zip", env=DummyVecEnv([ConstantObservationEnv]))
    assert loaded.use_sde is True and loaded.sde_sample_freq == 3
    assert loaded.policy.use_sde
    np.testing.assert_array_equal(
        loaded.predict(np.array([0.5, -0.5], dtype=np.float32), deterministic=True)[0],
        model.predict(np.array([0.5, -0.5], dtype=np.float32), deterministic=True)[0],
    )
    loaded.learn(1, reset_num_timesteps=False)
    (actions,), _ = collected_episodes(loaded)
    assert blocks_of_equal_rows(actions) == [3, 3, 3, 3]


@pytest.mark.parametrize("cls", [REINFORCE, OffPolicyPG])
def test_continue_training_after_load_is_identical_with_sde(tmp_path, cls):
    """
    docs/maths.md §7's save/load promise with gSDE: the noise matrices are redrawn from the seeded generator.

    Both continue with ``learn()``'s default env reset (OffPolicyPG cannot resume an episode that
    was running in another env object; see ``tests/test_offpolicy_pg.py``).
    """

    def env():
        return make_vec_env("Pendulum-v1", n_envs=2, seed=5)

    kwargs = {"use_sde": True, "sde_sample_freq": 8, "policy_kwargs": {"squash_output": True, "log_std_init": -1.0}}
    if cls is OffPolicyPG:
        kwargs["buffer_size"] = 2000
    a = cls("MlpPolicy", env(), n_episodes=2, baseline="value", seed=0, learning_rate=3e-3, **kwargs)
    a.learn(400)
    a.save(tmp_path / "a.zip")
    if cls is OffPolicyPG:
        a.save_replay_buffer(tmp_path / "buffer")
    a.set_random_seed(1)
    a.learn(800)

    b = cls.load(tmp_path / "a.zip", env=env())
    if cls is OffPolicyPG:
        b.load_replay_buffer(tmp_path / "buffer")
    b.set_random_seed(1)
    b.learn(800)
    assert a.num_timesteps == b.num_timesteps
    for (name, p), q in zip(a.policy.state_dict().items(), b.policy.state_dict().values()):
        assert th.equal(p, q), name
