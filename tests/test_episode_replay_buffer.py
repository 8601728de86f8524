"""EpisodeReplayBuffer: whole-episode storage, eviction, sampling without replacement, memory, pickling."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces
from stable_baselines3.common.buffers import DictReplayBuffer, ReplayBuffer
from stable_baselines3.common.save_util import load_from_pkl, save_to_pkl

from sb3_reinforce.common.episode_replay_buffer import EpisodeReplayBuffer
from sb3_reinforce.common.errors import EpisodeTooLongError

OBS_SPACE = spaces.Box(-10.0, 10.0, shape=(3,), dtype=np.float32)
ACTION_SPACE = spaces.Discrete(4)


def make_episode(tag: int, length: int, obs_dim: int = 3, truncated: bool = False) -> dict:
    """An episode whose every entry encodes ``(tag, t)``, so that any mix-up is visible."""
    t = np.arange(length, dtype=np.float64)
    return {
        "observations": (tag * 100.0 + t[:, None] + np.zeros((length, obs_dim))).astype(np.float32),
        "actions": (tag + np.arange(length)) % 4,
        "rewards": tag + t / 10.0,
        "log_probs": -(tag + t / 100.0),
        "final_observation": np.full(obs_dim, -tag, dtype=np.float32),
        "truncated": truncated,
    }


def check_episode(buffer: EpisodeReplayBuffer, index: int, episode: dict) -> None:
    """Stored episode ``index`` (0 = oldest) equals ``episode``."""
    batch = buffer._get_samples(np.array([index]))
    assert batch.n_episodes == 1
    assert batch.lengths[0] == len(episode["rewards"])
    np.testing.assert_array_equal(batch.observations, episode["observations"])
    np.testing.assert_array_equal(batch.actions, episode["actions"])
    np.testing.assert_allclose(batch.rewards, episode["rewards"], rtol=1e-6)
    np.testing.assert_allclose(batch.log_probs, episode["log_probs"], rtol=1e-6)
    np.testing.assert_array_equal(batch.terminal_observations[0], episode["final_observation"])
    assert bool(batch.truncated[0]) == episode["truncated"]
    assert batch.actions.dtype == np.int64 and batch.rewards.dtype == np.float64


def test_round_trip_and_wrap_around() -> None:
    buffer = EpisodeReplayBuffer(20, OBS_SPACE, ACTION_SPACE)
    episodes = [make_episode(tag, length, truncated=tag % 2 == 1) for tag, length in enumerate([7, 5, 6, 4, 9])]
    for episode in episodes[:3]:
        buffer.add(**episode)
    assert buffer.size() == 18 and buffer.n_episodes == 3
    for i, episode in enumerate(episodes[:3]):
        check_episode(buffer, i, episode)
    # Episode 3 (4 steps) needs 2 more slots than are free: episode 0 (7 steps) leaves; it wraps around.
    buffer.add(**episodes[3])
    assert buffer.n_episodes == 3 and buffer.size() == 15
    for i, episode in enumerate(episodes[1:4]):
        check_episode(buffer, i, episode)
    # Episode 4 (9 steps) needs 4 more slots than are free: episode 1 (5 steps), the oldest, leaves whole.
    buffer.add(**episodes[4])
    assert buffer.n_episodes == 3 and buffer.size() == 19 and buffer.n_added == 5
    for i, episode in enumerate(episodes[2:5]):
        check_episode(buffer, i, episode)
    np.testing.assert_array_equal(buffer.episode_lengths(), [6, 4, 9])
    np.testing.assert_array_equal(buffer.episode_truncated(), [False, True, False])


def test_eviction_keeps_whole_episodes_over_many_wraps() -> None:
    rng = np.random.default_rng(0)
    capacity = 37
    buffer = EpisodeReplayBuffer(capacity, OBS_SPACE, ACTION_SPACE)
    added = []
    for tag in range(200):
        episode = make_episode(tag, int(rng.integers(1, capacity + 1)), truncated=bool(rng.integers(2)))
        buffer.add(**episode)
        added.append(episode)
        # What is stored is exactly the longest suffix of the added episodes that fits.
        lengths = [len(e["rewards"]) for e in added]
        kept = 0
        while kept < len(added) and sum(lengths[len(added) - kept - 1 :]) <= capacity:
            kept += 1
        assert buffer.n_episodes == kept
        assert buffer.size() == sum(lengths[len(added) - kept :])
        for i, expected in enumerate(added[len(added) - kept :]):
            check_episode(buffer, i, expected)


def test_episode_as_long_as_the_buffer_fits_and_longer_is_an_error() -> None:
    buffer = EpisodeReplayBuffer(10, OBS_SPACE, ACTION_SPACE)
    buffer.add(**make_episode(1, 3))
    buffer.add(**make_episode(2, 10))
    assert buffer.n_episodes == 1 and buffer.size() == 10 and buffer.full
    check_episode(buffer, 0, make_episode(2, 10))
    with pytest.raises(EpisodeTooLongError, match=r"11 steps.*buffer_size=10"):
        buffer.add(**make_episode(3, 11))
    # The failed add changed nothing.
    check_episode(buffer, 0, make_episode(2, 10))
    with pytest.raises(ValueError, match="at least one step"):
        buffer.add(**make_episode(4, 0))


@pytest.mark.parametrize("size", [0, -3, 2.5, True])
def test_bad_buffer_size(size: object) -> None:
    with pytest.raises(ValueError, match="buffer_size"):
        EpisodeReplayBuffer(size, OBS_SPACE, ACTION_SPACE)  # type: ignore[arg-type]


def test_sampling_is_without_replacement_and_uniform() -> None:
    buffer = EpisodeReplayBuffer(1000, OBS_SPACE, ACTION_SPACE)
    n_stored, batch = 12, 5
    for tag in range(n_stored):
        buffer.add(**make_episode(tag, 1 + tag % 4))
    with pytest.raises(ValueError, match="no episode"):
        EpisodeReplayBuffer(10, OBS_SPACE, ACTION_SPACE).sample(3)
    np.random.seed(0)
    counts = np.zeros(n_stored)
    n_draws = 3000
    for _ in range(n_draws):
        sample = buffer.sample(batch)
        tags = (sample.observations[sample.time_index == 0, 0] // 100).astype(int)
        assert len(set(tags.tolist())) == batch == sample.n_episodes  # distinct episodes
        assert np.all(np.diff(tags) > 0)  # in the order they were added
        counts[tags] += 1
    # Each episode is in a batch with probability batch / n_stored; binomial 5-sigma band.
    p = batch / n_stored
    assert np.all(np.abs(counts - n_draws * p) < 5 * np.sqrt(n_draws * p * (1 - p)))
    # Fewer stored than asked for: all of them, once each.
    everything = buffer.sample(100)
    assert everything.n_episodes == n_stored and everything.n_steps == buffer.size()


def test_dict_observations_and_box_actions() -> None:
    obs_space = spaces.Dict(
        {"image": spaces.Box(0, 255, shape=(2, 3, 3), dtype=np.uint8), "vec": spaces.Box(-1.0, 1.0, shape=(2,))}
    )
    action_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float64)
    buffer = EpisodeReplayBuffer(9, obs_space, action_space)
    assert buffer.actions.dtype == np.float32  # SB3's convention for float64 action spaces
    rng = np.random.default_rng(1)
    episodes = []
    for length in (3, 4, 5):
        obs = {
            "image": rng.integers(0, 255, size=(length, 2, 3, 3)).astype(np.uint8),
            "vec": rng.uniform(-1, 1, size=(length, 2)).astype(np.float32),
        }
        final = {"image": np.full((2, 3, 3), length, dtype=np.uint8), "vec": np.full(2, length, dtype=np.float32)}
        actions = rng.uniform(-1, 1, size=(length, 2)).astype(np.float32)
        episodes.append((obs, actions, final))
        buffer.add(obs, actions, np.ones(length), np.zeros(length), final, truncated=True)
    assert buffer.n_episodes == 2  # the 5-step episode evicted the 3-step one
    batch = buffer.all_episodes()
    for key in ("image", "vec"):
        np.testing.assert_array_equal(
            batch.observations[key], np.concatenate([episodes[1][0][key], episodes[2][0][key]])
        )
        np.testing.assert_array_equal(batch.terminal_observations[key][1], episodes[2][2][key])
    np.testing.assert_array_equal(batch.actions, np.concatenate([episodes[1][1], episodes[2][1]]))


class FakeVecNormalize:
    """The two methods of ``VecNormalize`` the buffer calls when sampling."""

    def normalize_obs(self, obs: np.ndarray) -> np.ndarray:
        return (obs - 1.0) / 2.0

    def normalize_reward(self, reward: np.ndarray) -> np.ndarray:
        return reward * 10.0


def test_normalisation_happens_at_sampling_time() -> None:
    buffer = EpisodeReplayBuffer(10, OBS_SPACE, ACTION_SPACE)
    episode = make_episode(1, 4)
    buffer.add(**episode)
    batch = buffer.sample(1, env=FakeVecNormalize())  # type: ignore[arg-type]
    np.testing.assert_allclose(batch.observations, (episode["observations"] - 1.0) / 2.0)
    np.testing.assert_allclose(batch.terminal_observations[0], (episode["final_observation"] - 1.0) / 2.0)
    np.testing.assert_allclose(batch.rewards, episode["rewards"] * 10.0, rtol=1e-6)
    check_episode(buffer, 0, episode)  # the stored data stays raw


SPACE_CASES = {
    "box_obs_discrete_action": (OBS_SPACE, ACTION_SPACE),
    "image_obs_box_action": (
        spaces.Box(0, 255, shape=(4, 84, 84), dtype=np.uint8),
        spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32),
    ),
    "box_obs_multidiscrete_action": (spaces.Box(-1.0, 1.0, shape=(17,)), spaces.MultiDiscrete([3, 4, 5])),
    "discrete_obs_multibinary_action": (spaces.Discrete(5), spaces.MultiBinary(6)),
    "dict_obs": (
        spaces.Dict({"a": spaces.Box(-1.0, 1.0, shape=(5,)), "b": spaces.Box(0, 255, shape=(3, 8, 8), dtype=np.uint8)}),
        spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float64),
    ),
}


@pytest.mark.parametrize("case", sorted(SPACE_CASES))
def test_memory_per_transition_is_no_more_than_replay_buffer(case: str) -> None:
    obs_space, action_space = SPACE_CASES[case]
    capacity = 1000
    ours = EpisodeReplayBuffer(capacity, obs_space, action_space)
    reference_class = DictReplayBuffer if isinstance(obs_space, spaces.Dict) else ReplayBuffer
    reference = reference_class(capacity, obs_space, action_space, handle_timeout_termination=True)
    reference_bytes = sum(
        sum(v.nbytes for v in array.values()) if isinstance(array, dict) else array.nbytes
        for array in (
            reference.observations,
            reference.next_observations,
            reference.actions,
            reference.rewards,
            reference.dones,
            reference.timeouts,
        )
    )
    # Everything the buffer allocates is accounted for by ``nbytes``.
    counted = {"observations", "final_observations", "actions", "rewards", "log_probs", "episode_meta"}
    arrays = {
        k
        for k, v in vars(ours).items()
        if isinstance(v, np.ndarray) or (isinstance(v, dict) and all(isinstance(a, np.ndarray) for a in v.values()))
    }
    assert arrays == counted
    assert ours.nbytes / capacity <= reference_bytes / capacity


def test_pickle_round_trip(tmp_path) -> None:
    buffer = EpisodeReplayBuffer(30, OBS_SPACE, ACTION_SPACE)
    episodes = [make_episode(tag, 4 + tag) for tag in range(6)]
    for episode in episodes:
        buffer.add(**episode)
    save_to_pkl(tmp_path / "buffer", buffer)
    loaded = load_from_pkl(tmp_path / "buffer")
    assert isinstance(loaded, EpisodeReplayBuffer)
    assert loaded.n_episodes == buffer.n_episodes and loaded.size() == buffer.size()
    for i, episode in enumerate(episodes[-buffer.n_episodes :]):
        check_episode(loaded, i, episode)
    loaded.add(**make_episode(9, 8))
    check_episode(loaded, loaded.n_episodes - 1, make_episode(9, 8))


def test_reset_and_extend() -> None:
    buffer = EpisodeReplayBuffer(10, OBS_SPACE, ACTION_SPACE)
    buffer.add(**make_episode(1, 4))
    buffer.reset()
    assert buffer.size() == 0 and buffer.n_episodes == 0
    buffer.add(**make_episode(2, 10))
    check_episode(buffer, 0, make_episode(2, 10))
    with pytest.raises(NotImplementedError, match="whole episodes"):
        buffer.extend()
