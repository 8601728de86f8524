"""OffPolicyPG as an SB3 algorithm: bad input, collection, spaces, VecNormalize, save/load, errors, learning.

The estimator itself is tested in ``test_offpolicy_gradient.py`` and the buffer in
``test_episode_replay_buffer.py``.
"""

from __future__ import annotations

import zipfile
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from gymnasium.wrappers import TimeLimit
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.envs import (
    FakeImageEnv,
    IdentityEnvBox,
    IdentityEnvMultiBinary,
    IdentityEnvMultiDiscrete,
    SimpleMultiObsEnv,
)
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

import sb3_reinforce
from sb3_reinforce import OffPolicyPG
from sb3_reinforce.common.episode_replay_buffer import EpisodeReplayBuffer
from sb3_reinforce.common.errors import EpisodeTooLongError, NonFiniteLossError, UnsupportedActionSpaceError
from tests.offpolicy_envs import CounterEnv
from tests.offpolicy_helpers import policy_vector

th.set_num_threads(1)


def counter_vec_env(n_envs: int, max_length: int = 7, seed: int = 0, **kwargs: Any) -> DummyVecEnv:
    env = DummyVecEnv([lambda i=i: CounterEnv(tag=i, max_length=max_length, **kwargs) for i in range(n_envs)])
    env.seed(seed)
    return env


def small_model(env: Any, **kwargs: Any) -> OffPolicyPG:
    settings: dict[str, Any] = dict(n_episodes=3, batch_episodes=4, buffer_size=1000, gradient_steps=2, seed=0)
    settings.update(kwargs)
    return OffPolicyPG("MlpPolicy", env, policy_kwargs=dict(net_arch=[8]), **settings)


# ------------------------------------------------------------------------------------ API


LSTM_POLICIES = ("MlpLstmPolicy", "CnnLstmPolicy", "MultiInputLstmPolicy")  # docs/recurrent.md


def test_public_api() -> None:
    assert sb3_reinforce.OffPolicyPG is OffPolicyPG
    assert "OffPolicyPG" in sb3_reinforce.__all__
    assert set(OffPolicyPG.policy_aliases) == {"MlpPolicy", "CnnPolicy", "MultiInputPolicy", *LSTM_POLICIES}
    model = small_model("CartPole-v1")
    assert isinstance(model.replay_buffer, EpisodeReplayBuffer)
    assert model.replay_buffer.buffer_size == 1000
    names = [name for name, _ in model.policy.named_parameters()]
    assert any(n.startswith("action_net.") for n in names) and any(n.startswith("value_net.") for n in names)


# ------------------------------------------------------------------------------------ docs/maths.md §8


BAD_INPUTS = [
    ({"importance_weights": "per_trajectory"}, r"importance_weights='per_trajectory'.*'per_decision', 'per_step'"),
    ({"importance_weights": None}, r"importance_weights=None.*allowed"),
    ({"truncation": 0.0}, r"truncation=0.0.*> 0.0 or None"),
    ({"truncation": -1}, r"truncation=-1.*> 0.0 or None"),
    ({"truncation": float("nan")}, r"truncation=nan.*> 0.0 or None"),
    ({"batch_episodes": 0, "baseline": "none"}, r"batch_episodes=0.*>= 1"),
    ({"batch_episodes": 1, "baseline": "mean"}, r"batch_episodes=1.*>= 2.*baseline='mean'"),
    ({"buffer_size": 0}, r"buffer_size=0.*>= 1"),
    ({"buffer_size": 10.5}, r"buffer_size=10.5.*integer >= 1"),
    ({"gradient_steps": 0}, r"gradient_steps=0.*>= 1"),
    ({"target_kl": 0.0}, r"target_kl=0.0.*> 0.0 or None"),
    ({"target_kl": -0.01}, r"target_kl=-0.01.*> 0.0 or None"),
    ({"target_kl": float("nan")}, r"target_kl=nan.*> 0.0 or None"),
    ({"baseline": "optimal"}, r"baseline='optimal'.*'none', 'mean', 'value'"),
    ({"baseline": "mean", "n_episodes": 1}, r"n_episodes=1.*>= 2"),
    ({"gamma": 1.5}, r"gamma=1.5"),
]


@pytest.mark.parametrize(("kwargs", "message"), BAD_INPUTS)
def test_bad_input_is_rejected_before_anything_runs(kwargs: dict[str, Any], message: str) -> None:
    built = []

    def make_env() -> gym.Env:
        built.append(1)
        return gym.make("CartPole-v1")

    with pytest.raises(ValueError, match=message):
        OffPolicyPG("MlpPolicy", DummyVecEnv([make_env]), **kwargs)
    assert built == [1]  # DummyVecEnv builds its env eagerly; nothing else ran
    # The same check guards learn() against attributes changed after construction.
    model = small_model("CartPole-v1")
    for key, value in kwargs.items():
        setattr(model, key, value)
    with pytest.raises(ValueError, match=message):
        model.learn(1)
    assert model.num_timesteps == 0


def test_unsupported_action_space() -> None:
    class TupleActionEnv(CounterEnv):
        def __init__(self) -> None:
            super().__init__()
            self.action_space = spaces.Tuple((spaces.Discrete(2), spaces.Discrete(3)))

    with pytest.raises(UnsupportedActionSpaceError, match="action_space"):
        OffPolicyPG("MlpPolicy", TupleActionEnv())


# ------------------------------------------------------------------------------------ collection


class RolloutLog(BaseCallback):
    """Buffer, running steps and update count at every rollout end (before the update)."""

    def __init__(self) -> None:
        super().__init__()
        self.ends: list[dict[str, Any]] = []

    def _on_rollout_end(self) -> None:
        model = self.model
        self.ends.append(
            {
                "added": model.replay_buffer.n_added,
                "transitions": model.replay_buffer.size(),
                "running": model._collector.running_steps,
                "num_timesteps": model.num_timesteps,
                "n_updates": model._n_updates,
            }
        )

    def _on_step(self) -> bool:
        return True


def test_fresh_start_one_env_rollout_is_n_whole_episodes() -> None:
    model = small_model(counter_vec_env(1), n_episodes=5)
    log = RolloutLog()
    model.learn(1, callback=log)
    assert log.ends == [
        {
            "added": 5,
            "transitions": model.num_timesteps,
            "running": 0,
            "num_timesteps": model.num_timesteps,
            "n_updates": 0,
        }
    ]
    assert model._n_updates == model.gradient_steps  # learn(1): one collection, gradient_steps updates
    batch = model.replay_buffer.all_episodes()
    np.testing.assert_array_equal(np.unique(batch.observations[:, 1]), np.arange(5))


def check_whole_episodes(buffer: EpisodeReplayBuffer, final_atol: float = 0.0) -> set[tuple[int, int]]:
    """
    Every stored episode is one env's episode, complete and in order; return their (tag, number).

    :param final_atol: Tolerance on the final observation (VecNormalize reports it normalised, and
        un-normalising it again is exact only up to rounding).
    """
    batch = buffer.all_episodes()
    seen = set()
    for i, (start, length) in enumerate(zip(np.cumsum(batch.lengths) - batch.lengths, batch.lengths)):
        obs = batch.observations[start : start + length]
        assert np.all(obs[:, 1] == obs[0, 1]) and np.all(obs[:, 2] == obs[0, 2])
        np.testing.assert_array_equal(obs[:, 0], np.arange(length))
        np.testing.assert_array_equal(batch.rewards[start : start + length], 1.0 + np.arange(length))
        np.testing.assert_allclose(
            batch.terminal_observations[i], [length, obs[0, 1], obs[0, 2]], rtol=0, atol=final_atol
        )
        seen.add((int(obs[0, 2]), int(obs[0, 1])))
    return seen


def test_several_envs_waste_no_step_and_carry_running_episodes() -> None:
    n_envs = 3
    model = small_model(counter_vec_env(n_envs, max_length=9), n_episodes=4, buffer_size=100_000)
    log = RolloutLog()
    model.learn(400, callback=log)
    assert len(log.ends) >= 5
    for end in log.ends:
        # Every step taken is either in a stored episode or in an episode still running.
        assert end["transitions"] + end["running"] == end["num_timesteps"]
        assert end["n_updates"] == model.gradient_steps * (log.ends.index(end))
    assert any(end["running"] > 0 for end in log.ends)  # some episodes did span two rollouts
    assert [b["added"] - a["added"] for a, b in zip([{"added": 0}, *log.ends], log.ends)] and all(
        b["added"] - a["added"] >= 4 for a, b in zip([{"added": 0}, *log.ends], log.ends)
    )
    seen = check_whole_episodes(model.replay_buffer)
    # No episode lost: each env's finished episodes are all there, numbered 0, 1, 2, ...
    for tag in range(n_envs):
        numbers = sorted(n for t, n in seen if t == tag)
        assert numbers == list(range(len(numbers)))


def test_collector_keeps_only_the_rows_of_running_episodes() -> None:
    """Between rollouts the collector holds the steps of the episodes still running, not the whole history."""

    class RowsAtRolloutEnd(BaseCallback):
        rows: list[tuple[int, int]] = []  # noqa: RUF012

        def _on_rollout_end(self) -> None:
            collector = self.model._collector
            running = collector.episode_steps[collector._start >= 0]
            self.rows.append((len(collector._rows["rewards"]), int(running.max(initial=0))))

        def _on_step(self) -> bool:
            return True

    model = small_model(counter_vec_env(3, max_length=9), n_episodes=2, buffer_size=100_000)
    callback = RowsAtRolloutEnd()
    model.learn(600, callback=callback)
    assert len(callback.rows) >= 20
    # as many rows as the longest running episode has steps: the rest was forgotten
    assert all(rows == longest for rows, longest in callback.rows), callback.rows


def test_callback_stop_mid_rollout_drops_only_incomplete_episodes() -> None:
    class StopAt(BaseCallback):
        def _on_step(self) -> bool:
            return self.num_timesteps < 17

    class CountDropped(BaseCallback):
        dropped = 0

        def _on_rollout_end(self) -> None:
            self.dropped += self.model.logger.name_to_value["rollout/unused_steps"]

        def _on_step(self) -> bool:
            return True

    model = small_model(counter_vec_env(2, max_length=6), n_episodes=50)
    model.learn(10_000, callback=StopAt())
    assert model._n_updates == 0 and model.num_timesteps == 18
    counter = CountDropped()
    model.learn(60, reset_num_timesteps=False, callback=counter)
    check_whole_episodes(model.replay_buffer)  # the interrupted episodes were not stored in pieces
    assert model.replay_buffer.n_added >= 1
    # Every step is accounted for: stored, still running, or dropped (the interrupted episodes).
    running = model._collector.running_steps
    assert model.replay_buffer.size() + running + counter.dropped == model.num_timesteps
    assert counter.dropped > 0


def test_episode_longer_than_buffer_is_a_clear_error() -> None:
    env = DummyVecEnv([lambda: TimeLimit(CounterEnv(never_ends=True), 50)])
    model = small_model(env, buffer_size=20)
    with pytest.raises(EpisodeTooLongError, match=r"env 0 has run 21 steps.*buffer_size=20"):
        model.learn(1000)
    assert model.num_timesteps == 21  # stopped as soon as it could not fit, not at the episode's end


def test_max_episode_steps_guard() -> None:
    model = small_model(DummyVecEnv([lambda: CounterEnv(never_ends=True)]), max_episode_steps=30)
    with pytest.raises(EpisodeTooLongError, match=r"max_episode_steps=30"):
        model.learn(1000)


def test_on_rollout_end_runs_before_the_update_and_logs() -> None:
    model = small_model("CartPole-v1", gradient_steps=3)
    log = RolloutLog()
    model.learn(1, callback=log)
    assert log.ends[0]["n_updates"] == 0 and model._n_updates == 3
    logged = model.logger.name_to_value
    for key in (
        "train/is_weight_mean",
        "train/is_weight_max",
        "train/truncated_fraction",
        "train/ess",
        "train/policy_loss",
        "train/grad_norm",
        "train/n_updates",
    ):
        assert key in logged, key
    assert logged["train/n_updates"] == 3


# ------------------------------------------------------------------------------------ spaces


SPACE_ENVS = {
    "box": ("MlpPolicy", lambda: IdentityEnvBox(ep_length=6)),
    "multidiscrete": ("MlpPolicy", lambda: IdentityEnvMultiDiscrete(dim=2, ep_length=6)),
    "multibinary": ("MlpPolicy", lambda: IdentityEnvMultiBinary(dim=3, ep_length=6)),
    "dict_obs": ("MultiInputPolicy", lambda: TimeLimit(SimpleMultiObsEnv(random_start=True), 8)),
    "image_obs": ("CnnPolicy", lambda: FakeImageEnv(screen_height=36, screen_width=36, n_channels=1)),
}


@pytest.mark.parametrize("name", sorted(SPACE_ENVS))
@pytest.mark.parametrize("mode", ["per_decision", "per_step"])
def test_action_and_observation_spaces(name: str, mode: str) -> None:
    policy, make_env = SPACE_ENVS[name]
    env = DummyVecEnv([make_env, make_env])
    kwargs: dict[str, Any] = {} if policy == "CnnPolicy" else {"policy_kwargs": dict(net_arch=[8])}
    if name == "image_obs":
        env = DummyVecEnv([lambda: TimeLimit(make_env(), 5)])
    model = OffPolicyPG(
        policy,
        env,
        n_episodes=2,
        batch_episodes=3,
        gradient_steps=2,
        importance_weights=mode,
        baseline="value",
        seed=0,
        **kwargs,
    )
    before = policy_vector(model)
    model.learn(1)
    model.learn(1, reset_num_timesteps=False)
    assert model._n_updates == 4
    assert np.all(np.isfinite(policy_vector(model))) and not np.allclose(policy_vector(model), before)


def test_vec_normalize_stores_raw_data_and_normalises_when_sampling() -> None:
    env = VecNormalize(counter_vec_env(2), norm_obs=True, norm_reward=True, clip_obs=1e6)
    model = small_model(env, n_episodes=4, baseline="value")
    model.learn(200)
    buffer = model.replay_buffer
    check_whole_episodes(buffer, final_atol=1e-4)  # raw observations, rewards and final observations
    batch = buffer.sample(3, env=env)
    raw = buffer._get_samples(np.arange(buffer.n_episodes))
    assert not np.allclose(batch.observations, raw.observations[: len(batch.observations)])
    np.random.seed(0)
    picked = buffer.sample(3, env=env)
    np.random.seed(0)
    picked_raw = buffer.sample(3)
    np.testing.assert_allclose(picked.observations, env.normalize_obs(picked_raw.observations))
    np.testing.assert_allclose(picked.rewards, env.normalize_reward(picked_raw.rewards), rtol=1e-6)


# ------------------------------------------------------------------------------------ save / load


def test_save_load_and_continue_identically(tmp_path: Any) -> None:
    """
    docs/maths.md §7.  Both models reset their env when they continue (``learn()``'s default
    ``reset_num_timesteps=True``): a loaded model cannot resume an episode that was running in
    another env object, so "not stopping" is compared with the env reset (docs/offpolicy_pg.md).
    """

    def make_env() -> DummyVecEnv:
        # CartPole keeps no state across resets (CounterEnv numbers its episodes), so a fresh env
        # seeded the same way behaves as the old one after its reset.
        return DummyVecEnv([lambda: gym.make("CartPole-v1")] * 2)

    model = small_model(make_env(), learning_rate=3e-3, n_episodes=3, truncation=2.0, importance_weights="per_step")
    model.learn(300)
    model.save(tmp_path / "model")
    model.save_replay_buffer(tmp_path / "buffer")
    with zipfile.ZipFile(tmp_path / "model.zip") as archive:
        data = archive.read("data").decode()
    assert "_running" not in data and "replay_buffer" not in data

    loaded = OffPolicyPG.load(tmp_path / "model", env=make_env())
    for attr in (
        "importance_weights",
        "truncation",
        "batch_episodes",
        "buffer_size",
        "gradient_steps",
        "n_episodes",
        "num_timesteps",
        "_n_updates",
    ):
        assert getattr(loaded, attr) == getattr(model, attr), attr
    assert loaded.replay_buffer is not None and loaded.replay_buffer.n_episodes == 0
    loaded.load_replay_buffer(tmp_path / "buffer")
    assert loaded.replay_buffer.n_added == model.replay_buffer.n_added
    np.testing.assert_array_equal(policy_vector(loaded), policy_vector(model))

    for algo in (model, loaded):
        algo.set_random_seed(11)
        algo.learn(300)
    np.testing.assert_array_equal(policy_vector(loaded), policy_vector(model))
    assert loaded.replay_buffer.n_added == model.replay_buffer.n_added
    np.testing.assert_array_equal(loaded.replay_buffer.rewards, model.replay_buffer.rewards)
    assert loaded._n_updates == model._n_updates


def test_load_replay_buffer_checks_type(tmp_path: Any) -> None:
    from stable_baselines3.common.save_util import save_to_pkl

    save_to_pkl(tmp_path / "not_a_buffer", {"a": 1})
    model = small_model("CartPole-v1")
    with pytest.raises(TypeError, match="EpisodeReplayBuffer"):
        model.load_replay_buffer(tmp_path / "not_a_buffer")


def test_loaded_without_env_reset_drops_episodes_already_running(tmp_path: Any) -> None:
    env = counter_vec_env(1, max_length=9)
    model = small_model(env, n_episodes=2)
    model.learn(1)
    model.save(tmp_path / "model")
    loaded = OffPolicyPG.load(tmp_path / "model", env=env, force_reset=False)
    loaded.learn(40, reset_num_timesteps=False)
    check_whole_episodes(loaded.replay_buffer)


# ------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize("mode", ["per_decision", "per_step"])
def test_non_finite_reward_stops_training_and_keeps_parameters(mode: str) -> None:
    class Snapshot(BaseCallback):
        def _on_rollout_end(self) -> None:
            self.params = policy_vector(self.model)

        def _on_step(self) -> bool:
            return True

    env = DummyVecEnv([lambda: CounterEnv(max_length=5, inf_at_step=3)])
    model = small_model(env, importance_weights=mode, n_episodes=30)
    snapshot = Snapshot()
    with pytest.raises(NonFiniteLossError, match=r"rewards|returns"):
        model.learn(10_000, callback=snapshot)
    np.testing.assert_array_equal(policy_vector(model), snapshot.params)


def test_overflowing_weights_stop_training_with_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import sb3_reinforce.offpolicy_pg.offpolicy_pg as module

    monkeypatch.setattr(module, "importance_ratios", lambda log_prob, behaviour: np.full(len(log_prob), np.inf))
    model = small_model("CartPole-v1", truncation=None)
    before = policy_vector(model)
    with pytest.raises(NonFiniteLossError, match="importance weights"):
        model.learn(1)
    np.testing.assert_array_equal(policy_vector(model), before)
    # Truncation bounds them: the same ratios train fine.
    model = small_model("CartPole-v1", truncation=1.0)
    model.learn(1)


# ------------------------------------------------------------------------------------ learning

#: REINFORCE's own test budget for the same check (tests/test_learning.py).
REINFORCE_BUDGET = 50_000
CARTPOLE_BUDGET = 30_000


class StopWhenSolved(BaseCallback):
    """Once the training episodes are long, evaluate the deterministic policy on 10 episodes after every update."""

    def __init__(self) -> None:
        super().__init__()
        self.solved_at: int | None = None
        self.evaluations: list[tuple[int, float, float]] = []

    def _on_rollout_start(self) -> None:
        returns = [info["r"] for info in self.model.ep_info_buffer][-20:]
        if self.model._n_updates == 0 or np.mean(returns) < 475:
            return  # the benchmark's "solved" level (benchmarks/offpolicy_defaults.py)
        if self.evaluations and self.model.num_timesteps < self.evaluations[-1][0] + 1000:
            return  # at most one evaluation per 1000 training steps
        env = DummyVecEnv([lambda: gym.make("CartPole-v1")])
        env.seed(0)
        mean, std = evaluate_policy(self.model, env, n_eval_episodes=10, deterministic=True, warn=False)
        self.evaluations.append((self.model.num_timesteps, mean, std))
        if mean == 500.0 and std == 0.0:
            self.solved_at = self.model.num_timesteps

    def _on_step(self) -> bool:
        return self.solved_at is None


def test_cartpole_defaults_reach_500_with_fewer_steps_than_reinforce() -> None:
    """
    REINFORCE's check (seed 0, the deterministic policy scores 500 ± 0 over 10 evaluation episodes)
    with the defaults, inside a budget 40% below REINFORCE's.

    Measured (1 torch thread): solved at the first evaluation, after 21 255 env steps (about 20 s);
    seeds 1 and 2: 21 118 and 29 836.  REINFORCE's own test measures 24 630 steps for seed 0.
    """
    assert CARTPOLE_BUDGET < REINFORCE_BUDGET
    model = OffPolicyPG("MlpPolicy", "CartPole-v1", seed=0)
    callback = StopWhenSolved()
    model.learn(CARTPOLE_BUDGET, callback=callback)
    assert callback.solved_at is not None, f"not solved within {CARTPOLE_BUDGET} steps: {callback.evaluations}"
    assert callback.solved_at <= CARTPOLE_BUDGET
