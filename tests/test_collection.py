"""docs/maths.md §2–3: which episodes form a batch, what is recorded, time limits and the max_episode_steps guard.

A scripted toy env makes every episode identifiable: the observation is ``[env index, episode
counter k, t]`` and the reward ``1000 * env + 10 * k + t + 0.5 * action``.  Episode ``k`` of env
``e`` lasts ``script[e][k % len(script[e])]`` steps (or never ends).  A slow reference simulator
written here predicts, from the scripts alone, which episodes the batch must hold.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium.wrappers import TimeLimit
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.vec_env import DummyVecEnv

from sb3_reinforce import REINFORCE
from sb3_reinforce.common.episodes import EpisodeBatch
from sb3_reinforce.common.errors import EpisodeTooLongError
from tests.log_capture import MemoryWriter

NEVER_ENDING_ID = "sb3_reinforce_tests/NeverEnding-v0"


class ScriptedEnv(gym.Env):
    """Episode ``k`` of this env lasts ``lengths[k % len(lengths)]`` steps; ``lengths=None``: never ends."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, env_index: int = 0, lengths: list[int] | None = None):
        self.env_index = env_index
        self.lengths = lengths
        self.k = -1
        self.t = 0

    def _obs(self):
        return np.array([self.env_index, self.k, self.t], dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.k += 1
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        reward = 1000.0 * self.env_index + 10.0 * self.k + self.t + 0.5 * int(action)
        self.t += 1
        terminated = self.lengths is not None and self.t >= self.lengths[self.k % len(self.lengths)]
        return self._obs(), reward, terminated, False, {}


if NEVER_ENDING_ID not in gym.registry:
    gym.register(id=NEVER_ENDING_ID, entry_point=lambda: ScriptedEnv(0, None), max_episode_steps=None)


def make_vec_env(scripts, time_limits=None):
    time_limits = time_limits or [None] * len(scripts)

    def factory(index):
        def make():
            env = ScriptedEnv(index, scripts[index])
            if time_limits[index] is not None:
                env = TimeLimit(env, time_limits[index])
            return env

        return make

    return DummyVecEnv([factory(i) for i in range(len(scripts))])


class BatchRecorder(BaseCallback):
    """Keeps the batch and num_timesteps seen at every on_rollout_end."""

    def __init__(self):
        super().__init__()
        self.batches: list[EpisodeBatch] = []
        self.timesteps: list[int] = []

    def _on_step(self):
        return True

    def _on_rollout_end(self):
        self.batches.append(self.model.rollout_buffer)
        self.timesteps.append(self.model.num_timesteps)


def make_model(env, n_episodes, writer=None, **kwargs):
    model = REINFORCE("MlpPolicy", env, n_episodes=n_episodes, baseline="none", seed=0, **kwargs)
    if writer is not None:
        model.set_logger(Logger(folder=None, output_formats=[writer]))
    return model


# ----------------------------------------------------------------------------- reference simulator


def simulate(scripts, k0, n_episodes, horizon=10_000):
    """
    The docs/maths.md §2 rule by brute force: list every episode of every env in order of (start, env index).

    :return: (batch episodes as (start, env, k, length), collection length T, episode counters at
        the end, i.e. the next collection starts at counter + 1)
    """
    episodes = []
    for env, script in enumerate(scripts):
        start, k = 0, k0[env]
        while start < horizon:
            length = script[k % len(script)]
            episodes.append((start, env, k, length))
            start += length
            k += 1
    episodes.sort(key=lambda ep: (ep[0], ep[1]))
    batch = episodes[:n_episodes]
    stop = max(start + length for start, _, _, length in batch)
    assert stop < horizon
    # DummyVecEnv resets an env as soon as its episode ends, so episodes starting at `stop` were begun
    last_k = [max(k for start, e, k, _ in episodes if e == env and start <= stop) for env in range(len(scripts))]
    return batch, stop, last_k


def expected_arrays(batch_episodes):
    observations, rewards_wo_action, lengths = [], [], []
    for _, env, k, length in batch_episodes:
        lengths.append(length)
        for t in range(length):
            observations.append([env, k, t])
            rewards_wo_action.append(1000.0 * env + 10.0 * k + t)
    return np.array(observations, dtype=np.float32), np.array(rewards_wo_action), np.array(lengths)


def assert_batch_is(batch: EpisodeBatch, batch_episodes):
    observations, base_rewards, lengths = expected_arrays(batch_episodes)
    assert isinstance(batch, EpisodeBatch)
    np.testing.assert_array_equal(batch.lengths, lengths)
    np.testing.assert_array_equal(batch.observations, observations)
    assert batch.actions.shape == (len(observations),)
    assert set(np.unique(batch.actions)) <= {0, 1}
    # the reward of each step was produced by the action recorded at that step
    np.testing.assert_allclose(batch.rewards, base_rewards + 0.5 * batch.actions)
    assert batch.rewards.dtype == np.float64
    terminal = np.array([[env, k, length] for _, env, k, length in batch_episodes], dtype=np.float32)
    np.testing.assert_array_equal(batch.terminal_observations, terminal)


# ----------------------------------------------------------------------------- the batch rule


def test_fixed_lengths_by_hand():
    # lengths 5, 2, 3 and N = 4: env 0 [0,5), env 1 [0,2), env 2 [0,3), then env 1 [2,4).
    # Collection stops at t = 5; unused: env 1 [4,5) and env 2 [3,5) -> 3 steps.
    writer = MemoryWriter()
    model = make_model(make_vec_env([[5], [2], [3]]), 4, writer)
    recorder = BatchRecorder()
    model.learn(1, callback=recorder)
    (batch,) = recorder.batches
    assert model.num_timesteps == 15
    assert_batch_is(batch, [(0, 0, 0, 5), (0, 1, 0, 2), (0, 2, 0, 3), (2, 1, 1, 2)])
    assert writer.dumps[0]["rollout/unused_steps"] == 3
    assert batch.n_steps == 12


def test_ties_are_broken_by_env_index():
    # lengths 2, 2, 4 and N = 4: at t = 2 envs 0 and 1 both start a new episode; env 0 gets the slot
    writer = MemoryWriter()
    model = make_model(make_vec_env([[2], [2], [4]]), 4, writer)
    recorder = BatchRecorder()
    model.learn(1, callback=recorder)
    assert_batch_is(recorder.batches[0], [(0, 0, 0, 2), (0, 1, 0, 2), (0, 2, 0, 4), (2, 0, 1, 2)])
    assert model.num_timesteps == 12
    assert writer.dumps[0]["rollout/unused_steps"] == 12 - 10


def test_first_to_start_not_first_to_finish():
    # one long episode and two envs with short ones: the long episode is in the batch, and the
    # short envs' later episodes are not (stopping at the first N to *finish* would drop it)
    writer = MemoryWriter()
    model = make_model(make_vec_env([[10], [1], [1]]), 3, writer)
    recorder = BatchRecorder()
    model.learn(1, callback=recorder)
    assert_batch_is(recorder.batches[0], [(0, 0, 0, 10), (0, 1, 0, 1), (0, 2, 0, 1)])
    assert model.num_timesteps == 30
    assert writer.dumps[0]["rollout/unused_steps"] == 18


def test_more_envs_than_episodes():
    writer = MemoryWriter()
    model = make_model(make_vec_env([[3], [5], [1], [1]]), 2, writer)
    recorder = BatchRecorder()
    model.learn(1, callback=recorder)
    assert_batch_is(recorder.batches[0], [(0, 0, 0, 3), (0, 1, 0, 5)])
    assert model.num_timesteps == 20
    assert writer.dumps[0]["rollout/unused_steps"] == 12


@pytest.mark.parametrize("seed", range(5))
def test_scripted_lengths_match_reference_over_several_cycles(seed):
    rng = np.random.default_rng(seed)
    n_envs = int(rng.integers(2, 5))
    n_episodes = int(rng.integers(1, 9))
    scripts = [list(rng.integers(1, 9, size=int(rng.integers(1, 6)))) for _ in range(n_envs)]
    writer = MemoryWriter()
    model = make_model(make_vec_env(scripts), n_episodes, writer)
    recorder = BatchRecorder()
    model.learn(150, callback=recorder)
    assert len(recorder.batches) >= 2

    # SB3's _setup_learn resets once (counter 0) and the first collection starts from that reset;
    # every later collection resets every env again
    k_next = [0] * n_envs
    total = 0
    for cycle, batch in enumerate(recorder.batches):
        batch_episodes, stop, k_last = simulate(scripts, k_next, n_episodes)
        k_next = [k + 1 for k in k_last]
        assert_batch_is(batch, batch_episodes)
        total += n_envs * stop
        assert recorder.timesteps[cycle] == total
        assert writer.dumps[cycle]["rollout/unused_steps"] == n_envs * stop - sum(ep[3] for ep in batch_episodes)
        assert writer.dumps[cycle]["time/total_timesteps"] == total
    assert model.num_timesteps == total
    # the budget is checked before each cycle: the last cycle started below it
    assert total - recorder.timesteps[-1] + recorder.timesteps[-2] < 150 <= total


@pytest.mark.parametrize("lengths", [[4], [1, 7, 3], [2, 2, 9]])
def test_one_env_has_no_unused_steps(lengths):
    writer = MemoryWriter()
    model = make_model(make_vec_env([lengths]), 3, writer)
    recorder = BatchRecorder()
    model.learn(20, callback=recorder)
    total = 0
    for batch, dump in zip(recorder.batches, writer.dumps):
        assert dump["rollout/unused_steps"] == 0
        assert batch.n_episodes == 3
        total += batch.n_steps
    assert model.num_timesteps == total


def test_log_probs_are_those_of_the_sampling_policy():
    model = make_model(make_vec_env([[3, 6], [2], [5, 1]]), 5)
    recorder = BatchRecorder()
    params = [p.detach().clone() for p in model.policy.parameters()]

    class Check(BaseCallback):
        def _on_step(self):
            return True

        def _on_rollout_end(self):
            batch = self.model.rollout_buffer
            # parameters are not updated yet: recomputed log-probs equal the recorded ones
            for p, q in zip(self.model.policy.parameters(), params):
                assert th.equal(p, q)
            obs = th.as_tensor(batch.observations)
            _, log_prob, _ = self.model.policy.evaluate_actions(obs, th.as_tensor(batch.actions))
            np.testing.assert_allclose(batch.log_probs, log_prob.detach().numpy(), rtol=1e-5, atol=1e-6)

    model.learn(1, callback=[recorder, Check()])
    assert recorder.batches[0].log_probs.shape == (recorder.batches[0].n_steps,)


# ----------------------------------------------------------------------------- time limits


def test_truncated_flags_from_time_limit():
    # env 0 would last 10 steps but is cut at 4 (truncated); env 1 terminates at 3; env 2 terminates
    # at exactly its time limit 5, which counts as termination, not truncation
    env = make_vec_env([[10], [3], [5]], time_limits=[4, None, 5])
    model = make_model(env, 3)
    recorder = BatchRecorder()
    model.learn(1, callback=recorder)
    batch = recorder.batches[0]
    assert_batch_is(batch, [(0, 0, 0, 4), (0, 1, 0, 3), (0, 2, 0, 5)])
    np.testing.assert_array_equal(batch.truncated, [True, False, False])


def test_guard_names_env_and_guard_for_env_without_time_limit():
    env = DummyVecEnv([lambda: ScriptedEnv(0, [3]), lambda: gym.make(NEVER_ENDING_ID)])
    assert env.get_attr("spec", [1])[0].max_episode_steps is None
    model = make_model(env, 4, max_episode_steps=50)
    before = [p.detach().clone() for p in model.policy.parameters()]
    with pytest.raises(EpisodeTooLongError) as info:
        model.learn(1)
    message = str(info.value)
    assert "env 1" in message
    assert NEVER_ENDING_ID in message
    assert "max_episode_steps=50" in message
    assert model.num_timesteps == 2 * 51
    assert model._n_updates == 0
    for p, q in zip(model.policy.parameters(), before):
        assert th.equal(p, q)


def test_guard_for_unregistered_env_names_its_index():
    model = make_model(make_vec_env([[2], None]), 2, max_episode_steps=7)
    with pytest.raises(EpisodeTooLongError, match=r"env 1 .*max_episode_steps=7"):
        model.learn(1)


def test_guard_recognises_time_limits_after_rl_zoo3_replaced_the_class():
    """rl-zoo3 swaps gymnasium.wrappers.TimeLimit for a subclass when imported; envs wrapped with either count."""
    import rl_zoo3.gym_patches  # noqa: F401  (the import is the patch)

    for wrapper in (TimeLimit, gym.wrappers.TimeLimit):  # the class imported by this module, and the current one
        env = DummyVecEnv([lambda wrapper=wrapper: wrapper(ScriptedEnv(0, None), 80)])
        model = make_model(env, 1, max_episode_steps=50)
        model.learn(1)
        assert model.rollout_buffer.lengths.tolist() == [80]


def test_guard_does_not_fire_for_time_limited_env():
    # 80-step episodes cut by a TimeLimit are fine even though they are longer than the guard
    env = make_vec_env([None, None], time_limits=[80, 80])
    model = make_model(env, 2, max_episode_steps=50)
    recorder = BatchRecorder()
    model.learn(1, callback=recorder)
    np.testing.assert_array_equal(recorder.batches[0].lengths, [80, 80])
    np.testing.assert_array_equal(recorder.batches[0].truncated, [True, True])
    # and the same through gym.make with a registered time limit
    env = DummyVecEnv([lambda: gym.make(NEVER_ENDING_ID, max_episode_steps=60)])
    model = make_model(env, 1, max_episode_steps=50)
    model.learn(1, callback=recorder)
    np.testing.assert_array_equal(recorder.batches[-1].lengths, [60])


def test_guard_counts_steps_per_episode_not_per_env():
    # env 0 runs 30-step episodes, many of them in a row: more than 50 steps, but no episode is
    model = make_model(make_vec_env([[30], [100]]), 5, max_episode_steps=50)
    with pytest.raises(EpisodeTooLongError, match="env 1"):
        model.learn(1)
    model = make_model(make_vec_env([[30], [45]]), 5, max_episode_steps=50)
    model.learn(1)
    assert model.num_timesteps >= 120


# ----------------------------------------------------------------------------- truncation bootstrap


class ConstantRewardEnv(gym.Env):
    """Reward 1 per step; terminates after ``length`` steps, or never (``None``)."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, length):
        self.length = length
        self.t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.5, -0.5], dtype=np.float32), {}

    def step(self, action):
        self.t += 1
        done = self.length is not None and self.t >= self.length
        return np.array([0.1 * self.t, 0.2], dtype=np.float32), 1.0, done, False, {}


V_CONST = 5.0


def bootstrap_model(baseline):
    # env 0 is cut by a time limit after 4 steps (truncated), env 1 terminates after 3 steps
    env = DummyVecEnv([lambda: TimeLimit(ConstantRewardEnv(None), 4), lambda: ConstantRewardEnv(3)])
    model = REINFORCE(
        "MlpPolicy",
        env,
        n_episodes=2,
        gamma=0.9,
        baseline=baseline,
        seed=0,
        policy_kwargs={"net_arch": {"pi": [], "vf": []}, "ortho_init": False},
    )
    # uniform policy (log pi = log 1/2 for every action) and V(s) = 5 everywhere
    with th.no_grad():
        model.policy.action_net.weight.zero_()
        model.policy.action_net.bias.zero_()
        model.policy.value_net.weight.zero_()
        model.policy.value_net.bias.fill_(V_CONST)
    model.set_logger(Logger(folder=None, output_formats=[MemoryWriter()]))
    return model


def discounted_to_go(rewards, gamma):
    out, running = [], 0.0
    for r in reversed(rewards):
        running = r + gamma * running
        out.append(running)
    return out[::-1]


@pytest.mark.parametrize("baseline", ["none", "value", "mean", "optimal"])
def test_truncated_episodes_are_bootstrapped_only_with_value_baseline(baseline):
    model = bootstrap_model(baseline)
    model.learn(1)
    batch = model.rollout_buffer
    np.testing.assert_array_equal(batch.lengths, [4, 3])
    np.testing.assert_array_equal(batch.truncated, [True, False])
    gamma = 0.9
    truncated_rewards = [1.0, 1.0, 1.0, 1.0 + (gamma * V_CONST if baseline == "value" else 0.0)]
    returns = np.array(discounted_to_go(truncated_rewards, gamma) + discounted_to_go([1.0] * 3, gamma))
    logged = model.logger.name_to_value
    if baseline == "value":
        # L_pg = -(1/N) sum_t log(1/2) (Ĝ_t - V) and value loss = mean (V - Ĝ_t)^2
        expected_pg = -np.log(0.5) * (returns - V_CONST).sum() / 2
        assert logged["train/value_loss"] == pytest.approx(np.mean((V_CONST - returns) ** 2), rel=1e-5)
    elif baseline == "none":
        expected_pg = -np.log(0.5) * returns.sum() / 2
        assert logged["train/value_loss"] == 0.0
    elif baseline == "mean":
        # leave-one-out with 2 episodes: the other episode's Ĝ_t at the same t (0 past its end)
        others = np.concatenate([returns[4:], [0.0], returns[:3]])
        expected_pg = -np.log(0.5) * (returns - others).sum() / 2
        assert logged["train/value_loss"] == 0.0
    else:
        # optimal (optimal_constant) with 2 episodes: b_i is the other episode's Ĝ_t averaged with the
        # weights ||grad log pi(a_t|s_t)||^2 = (1 + ||s_t||^2) / 2 (uniform policy, 2 actions, linear logits)
        weights = (1.0 + np.array([0.5, 0.05, 0.08, 0.13])) / 2  # ||s_t||^2 = 0.5, then (0.1 t)^2 + 0.04
        others = np.repeat(
            [weights[:3] @ returns[4:] / weights[:3].sum(), weights @ returns[:4] / weights.sum()], [4, 3]
        )
        expected_pg = -np.log(0.5) * (returns - others).sum() / 2
        assert logged["train/value_loss"] == 0.0
    assert logged["train/policy_loss"] == pytest.approx(expected_pg, rel=1e-5)
