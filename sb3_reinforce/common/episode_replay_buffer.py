"""A replay buffer of whole episodes for OffPolicyPG, on Stable-Baselines3's ``BaseBuffer``.

SB3's ``ReplayBuffer`` stores single transitions ``(s, a, r, s', done)`` and samples them
independently.  Importance-weighted Monte-Carlo policy gradients need whole episodes instead, and
the probability ``mu(a_t|s_t)`` with which the behaviour policy chose each action.  This buffer
keeps SB3's conventions (``BaseBuffer`` base class, preallocated numpy arrays, actions stored with
``action_dim`` columns and float64 cast to float32, raw observations and rewards normalised at
sampling time by a ``VecNormalize`` passed to :meth:`EpisodeReplayBuffer.sample`) and changes the
unit of storage and of sampling to the episode.

Layout.  Steps live in a ring of ``buffer_size`` slots (observation, action, reward, behaviour
log-probability); the steps of one episode are consecutive (modulo the ring).  Episodes live in a
second ring of ``buffer_size`` slots (an episode has at least one step, so that many can never be
exceeded) holding the episode's final observation and one integer, ``start << 1 | truncated``.  An
episode's length is the distance to the next episode's start, so it needs no storage.  The
memory per transition is therefore ``2 * obs + action + 4 + 4 + 4`` bytes, exactly what SB3's
``ReplayBuffer`` allocates (``obs``, ``next_obs``, ``action``, and float32 ``reward``, ``done``,
``timeout``) for the same spaces.

Episodes are added whole.  When an episode does not fit, the oldest whole episodes are evicted
first; an episode longer than ``buffer_size`` is an error.
"""

from __future__ import annotations

from typing import Any, Union

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import BaseBuffer, ReplayBuffer
from stable_baselines3.common.vec_env import VecNormalize

from sb3_reinforce.common.episodes import EpisodeBatch, Observations, concatenate_episodes, take_steps, time_index
from sb3_reinforce.common.errors import EpisodeTooLongError

ObsStorage = Union[np.ndarray, dict[str, np.ndarray]]


def _allocate(space: spaces.Space, obs_shape: Any, size: int) -> ObsStorage:
    """Zero-filled storage for ``size`` observations of ``space`` (a dict of arrays for ``Dict`` spaces)."""
    if isinstance(space, spaces.Dict):
        return {
            key: np.zeros((size, *obs_shape[key]), dtype=sub_space.dtype) for key, sub_space in space.spaces.items()
        }
    return np.zeros((size, *obs_shape), dtype=space.dtype)


def _nbytes(storage: ObsStorage) -> int:
    if isinstance(storage, dict):
        return sum(value.nbytes for value in storage.values())
    return storage.nbytes


class EpisodeReplayBuffer(BaseBuffer):
    """
    Replay buffer of complete episodes (see the module docstring for the layout).

    :param buffer_size: Capacity in transitions (steps), summed over all stored episodes.
    :param observation_space: Observation space (``Dict`` spaces are stored key by key).
    :param action_space: Action space.
    :param device: PyTorch device of the policy (kept for SB3 compatibility; samples are numpy).
    :param n_envs: Number of envs feeding the buffer (informative: episodes are stored whole,
        whatever env they came from).
    :param mask_size: Entries of the action mask stored with every step (docs/masking.md); None
        when the env has no action masks.
    """

    observations: ObsStorage
    final_observations: ObsStorage
    actions: np.ndarray
    rewards: np.ndarray
    log_probs: np.ndarray
    action_masks: np.ndarray | None

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        device: th.device | str = "auto",
        n_envs: int = 1,
        mask_size: int | None = None,
    ):
        if isinstance(buffer_size, bool) or not isinstance(buffer_size, (int, np.integer)) or buffer_size < 1:
            raise ValueError(f"buffer_size={buffer_size!r} is not allowed: it must be an integer >= 1")
        super().__init__(int(buffer_size), observation_space, action_space, device, n_envs=n_envs)
        size = self.buffer_size
        self.observations = _allocate(observation_space, self.obs_shape, size)
        self.actions = np.zeros((size, self.action_dim), dtype=ReplayBuffer._maybe_cast_dtype(action_space.dtype))
        self.rewards = np.zeros(size, dtype=np.float32)
        self.log_probs = np.zeros(size, dtype=np.float32)
        self.action_masks = None if mask_size is None else np.ones((size, mask_size), dtype=bool)
        self.final_observations = _allocate(observation_space, self.obs_shape, size)
        # start << 1 | truncated, for each episode slot.
        meta_dtype = np.int32 if 2 * size < np.iinfo(np.int32).max else np.int64
        self.episode_meta = np.zeros(size, dtype=meta_dtype)
        self.reset()

    # ------------------------------------------------------------------ bookkeeping

    def reset(self) -> None:
        """Forget every stored episode (the arrays are kept)."""
        super().reset()
        #: Ring index of the oldest stored episode.
        self.first_episode = 0
        #: Number of stored episodes.
        self.n_episodes = 0
        #: Number of stored transitions.
        self.n_transitions = 0
        #: Total number of episodes ever added (evicted ones included).
        self.n_added = 0

    def size(self) -> int:
        """
        Number of transitions stored (SB3's ``BaseBuffer.size``).

        :return: The number of stored steps, summed over the stored episodes.
        """
        return self.n_transitions

    @property
    def nbytes(self) -> int:
        """Bytes allocated by the storage arrays."""
        arrays = [self.actions, self.rewards, self.log_probs, self.episode_meta]
        if self.action_masks is not None:
            arrays.append(self.action_masks)
        return _nbytes(self.observations) + _nbytes(self.final_observations) + sum(a.nbytes for a in arrays)

    def _slots(self, episodes: np.ndarray) -> np.ndarray:
        """Ring slots of the stored episodes numbered ``0 .. n_episodes-1`` from the oldest."""
        return (self.first_episode + np.asarray(episodes, dtype=np.int64)) % self.buffer_size

    def _starts(self, episodes: np.ndarray) -> np.ndarray:
        return (self.episode_meta[self._slots(episodes)] >> 1).astype(np.int64)

    def episode_lengths(self, episodes: np.ndarray | None = None) -> np.ndarray:
        """
        Lengths of stored episodes.

        :param episodes: Episode numbers (0 = oldest stored); all episodes when None.
        :return: Lengths, int64.
        """
        if episodes is None:
            episodes = np.arange(self.n_episodes)
        episodes = np.asarray(episodes, dtype=np.int64)
        starts = self._starts(episodes)
        is_last = episodes == self.n_episodes - 1
        next_starts = np.where(is_last, self.pos, self._starts(np.minimum(episodes + 1, self.n_episodes - 1)))
        lengths = (next_starts - starts) % self.buffer_size
        # A single episode filling the whole ring has the same start and end.
        return np.where(lengths == 0, self.buffer_size, lengths)

    def episode_truncated(self, episodes: np.ndarray | None = None) -> np.ndarray:
        """
        Whether stored episodes ended by truncation.

        :param episodes: Episode numbers (0 = oldest stored); all episodes when None.
        :return: Booleans.
        """
        if episodes is None:
            episodes = np.arange(self.n_episodes)
        return (self.episode_meta[self._slots(episodes)] & 1).astype(bool)

    # ------------------------------------------------------------------ adding

    def add(  # type: ignore[override]
        self,
        observations: Observations,
        actions: np.ndarray,
        rewards: np.ndarray,
        log_probs: np.ndarray,
        final_observation: Observations,
        truncated: bool,
        action_masks: np.ndarray | None = None,
    ) -> None:
        """
        Store one complete episode, evicting the oldest whole episodes if it does not fit.

        :param observations: Observation of each step (the one the action was chosen from),
            leading axis ``T`` (a dict of such arrays for ``Dict`` spaces).
        :param actions: Action of each step, leading axis ``T``.
        :param rewards: Reward of each step, shape ``(T,)``.
        :param log_probs: ``log mu(a_t|s_t)`` of each step under the policy that sampled it, shape ``(T,)``.
        :param final_observation: The observation after the last step (one observation).
        :param truncated: Whether the episode ended by truncation rather than termination.
        :param action_masks: The action mask of each step, shape ``(T, mask_size)``, for a buffer built
            with a ``mask_size`` (None there: every action was allowed, e.g. ``learn(use_masking=False)``).
        """
        length = len(rewards)
        if action_masks is not None and self.action_masks is None:
            raise ValueError("this buffer stores no action masks (it was built with mask_size=None)")
        if length < 1:
            raise ValueError("an episode must have at least one step")
        if length > self.buffer_size:
            raise EpisodeTooLongError(
                f"An episode of {length} steps does not fit in the replay buffer (buffer_size={self.buffer_size} "
                "transitions). Raise buffer_size above the longest episode, or limit the episode length "
                "(e.g. gymnasium.wrappers.TimeLimit)."
            )
        while self.buffer_size - self.n_transitions < length:
            self._evict_oldest()
        cells = (self.pos + np.arange(length)) % self.buffer_size
        self._write(self.observations, cells, observations, length)
        self.actions[cells] = np.asarray(actions).reshape(length, self.action_dim)
        self.rewards[cells] = np.asarray(rewards, dtype=np.float32).reshape(length)
        self.log_probs[cells] = np.asarray(log_probs, dtype=np.float32).reshape(length)
        if self.action_masks is not None:  # an episode played without masks allowed every action
            masks = True if action_masks is None else np.asarray(action_masks, dtype=bool).reshape(length, -1)
            self.action_masks[cells] = masks
        slot = int(self._slots(np.array([self.n_episodes]))[0])
        self._write(self.final_observations, np.array([slot]), final_observation, 1)
        self.episode_meta[slot] = (self.pos << 1) | int(bool(truncated))
        self.pos = int((self.pos + length) % self.buffer_size)
        self.n_episodes += 1
        self.n_transitions += length
        self.n_added += 1
        self.full = self.n_transitions == self.buffer_size

    def add_episodes(self, batch: EpisodeBatch, env: VecNormalize | None = None) -> EpisodeBatch | None:
        """
        Store every episode of ``batch``, in order (see :meth:`add`), and hand back those that left.

        :param batch: Complete episodes, with the behaviour log-probability of every action.
        :param env: ``VecNormalize`` wrapper whose current statistics normalise the evicted episodes'
            observations and rewards (None: as stored).
        :return: The episodes evicted to make room (older ones, or ones of ``batch`` itself when it
            holds more than the buffer), oldest first, read before they were overwritten; None if none.
        """
        evicted: list[EpisodeBatch] = []
        ends = np.cumsum(batch.lengths)
        for index, (start, end) in enumerate(zip(ends - batch.lengths, ends)):
            evicted += self._make_room(int(end - start), env)
            self.add(
                take_steps(batch.observations, slice(start, end)),
                batch.actions[start:end],
                batch.rewards[start:end],
                batch.log_probs[start:end],
                final_observation=take_steps(batch.terminal_observations, index),
                truncated=bool(batch.truncated[index]),
                action_masks=None if batch.action_masks is None else batch.action_masks[start:end],
            )
        return concatenate_episodes(evicted) if evicted else None

    def _make_room(self, length: int, env: VecNormalize | None) -> list[EpisodeBatch]:
        """Evict the oldest episodes until ``length`` steps fit; return them, read before eviction."""
        evicted = []
        while length <= self.buffer_size and self.n_episodes > 0 and self.buffer_size - self.n_transitions < length:
            evicted.append(self._get_samples(np.array([0]), env=env))
            self._evict_oldest()
        return evicted

    def _write(self, storage: ObsStorage, cells: np.ndarray, values: Observations, count: int) -> None:
        """Copy ``count`` observations into ``cells`` of ``storage``, reshaped to the stored shape."""
        if isinstance(storage, dict):
            if not isinstance(values, dict):
                raise TypeError(
                    "the observation space is a Dict space: observations must be a dict of arrays, "
                    f"got {type(values).__name__}"
                )
            for key, array in storage.items():
                array[cells] = np.asarray(values[key]).reshape(count, *array.shape[1:])
        else:
            storage[cells] = np.asarray(values).reshape(count, *storage.shape[1:])

    def _evict_oldest(self) -> None:
        length = int(self.episode_lengths(np.array([0]))[0])
        self.first_episode = (self.first_episode + 1) % self.buffer_size
        self.n_episodes -= 1
        self.n_transitions -= length
        self.full = False

    def extend(self, *args: Any, **kwargs: Any) -> None:
        """Not supported: add episodes one at a time with :meth:`add`."""
        raise NotImplementedError("EpisodeReplayBuffer stores whole episodes: use add() once per episode")

    # ------------------------------------------------------------------ sampling

    def sample(self, batch_size: int, env: VecNormalize | None = None) -> EpisodeBatch:  # type: ignore[override]
        """
        Sample ``batch_size`` distinct episodes uniformly (all of them if fewer are stored).

        Uses numpy's global generator, which SB3's ``set_random_seed`` seeds.  The episodes come
        back in the order they were added.

        :param batch_size: Number of episodes to sample.
        :param env: ``VecNormalize`` wrapper whose current statistics normalise the observations
            and rewards (None: returned as stored).
        :return: The episodes.
        """
        if self.n_episodes == 0:
            raise ValueError("the replay buffer holds no episode yet")
        count = min(int(batch_size), self.n_episodes)
        episodes = np.sort(np.random.choice(self.n_episodes, size=count, replace=False))
        return self._get_samples(episodes, env=env)

    def _get_samples(self, batch_inds: np.ndarray, env: VecNormalize | None = None) -> EpisodeBatch:  # type: ignore[override]
        """
        The stored episodes ``batch_inds`` (0 = oldest stored) as an :class:`EpisodeBatch`.

        :param batch_inds: Episode numbers.
        :param env: Optional ``VecNormalize`` used to normalise observations and rewards.
        :return: The episodes, in the order given.
        """
        episodes = np.asarray(batch_inds, dtype=np.int64)
        lengths = self.episode_lengths(episodes)
        cells = (np.repeat(self._starts(episodes), lengths) + time_index(lengths)) % self.buffer_size
        slots = self._slots(episodes)
        actions = self.actions[cells]
        if isinstance(self.action_space, spaces.Discrete):
            actions = actions.reshape(-1)
        rewards = np.asarray(self._normalize_reward(self.rewards[cells], env), dtype=np.float64)
        return EpisodeBatch(
            observations=self._normalize_obs(self._read(self.observations, cells), env),
            actions=actions,
            rewards=rewards,
            lengths=lengths,
            truncated=self.episode_truncated(episodes),
            terminal_observations=self._normalize_obs(self._read(self.final_observations, slots), env),
            log_probs=self.log_probs[cells].astype(np.float64),
            action_masks=None if self.action_masks is None else self.action_masks[cells],
        )

    @staticmethod
    def _read(storage: ObsStorage, cells: np.ndarray) -> Observations:
        if isinstance(storage, dict):
            return {key: value[cells] for key, value in storage.items()}
        return storage[cells]

    def all_episodes(self, env: VecNormalize | None = None) -> EpisodeBatch:
        """
        Every stored episode, oldest first.

        :param env: Optional ``VecNormalize`` used to normalise observations and rewards.
        :return: The episodes.
        """
        return self._get_samples(np.arange(self.n_episodes), env=env)

    def newest_episodes(self, count: int, env: VecNormalize | None = None) -> EpisodeBatch:
        """
        The ``count`` most recently stored episodes, oldest first.

        :param count: How many, from 1 to the number stored.
        :param env: Optional ``VecNormalize`` used to normalise observations and rewards.
        :return: The episodes.
        """
        if not 1 <= count <= self.n_episodes:
            raise ValueError(f"count={count} must be between 1 and the number of stored episodes ({self.n_episodes})")
        return self._get_samples(np.arange(self.n_episodes - count, self.n_episodes), env=env)
