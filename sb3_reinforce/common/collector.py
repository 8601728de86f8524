"""Stepping a VecEnv with the policy and handing over finished episodes (docs/maths.md §2).

:class:`EpisodeCollector` is the one place where per-step data is recorded.  Every vector step
appends one row per field (observations, actions, rewards, behaviour log-probabilities, and the
action masks when the env has them) for all envs at once; an episode is a run of rows of one
env's column, from the row where it started to the row where it ended.  When a collection ends,
the finished episodes are gathered from the stacked record with one fancy-indexing operation per
field into an :class:`EpisodeBatch`.

Two batch rules ask it for episodes:

- REINFORCE, :meth:`EpisodeCollector.collect` with ``fresh_start=True``: every env is reset and
  the batch is the first ``n_episodes`` episodes to *start* (ties broken by env index); collection
  ends when all of them have ended.  Steps of the other episodes are simulated but unused.
- OffPolicyPG, ``fresh_start=False``: the envs keep running; collection ends once ``n_episodes``
  more episodes have ended, and the episodes still running continue at the next collection.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import gymnasium
import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.utils import obs_as_tensor
from stable_baselines3.common.vec_env import VecEnv

from sb3_reinforce.common.action_sampling import sample_actions
from sb3_reinforce.common.episodes import EpisodeBatch, Observations, take_steps, time_index
from sb3_reinforce.common.errors import EpisodeTooLongError
from sb3_reinforce.common.masking import env_action_masks
from sb3_reinforce.common.recurrent import HiddenStates, is_recurrent

if TYPE_CHECKING:
    from sb3_reinforce.common.episodic_algorithm import EpisodicPolicyGradient

#: The per-step fields every collection records, in the layout of :class:`EpisodeBatch`.
STEP_FIELDS = ("observations", "actions", "rewards", "log_probs")
#: The per-step field recorded when the env has action masks (docs/masking.md).
MASK_FIELD = "action_masks"


def stack_steps(steps: Sequence[Observations]) -> Observations:
    """
    Stack per-step arrays (or dicts of arrays) along a new leading time axis.

    >>> stack_steps([np.zeros(2), np.ones(2)]).shape
    (2, 2)

    :param steps: One array (or dict) per step, each with leading axis ``n_envs``.
    :return: Array (or dict) of shape ``(T, n_envs, ...)``.
    """
    first = steps[0]
    if isinstance(first, dict):
        return {key: np.stack([step[key] for step in steps]) for key in first}  # type: ignore[index]
    return np.stack(steps)  # type: ignore[arg-type]


def env_time_limits(env: VecEnv) -> np.ndarray:
    """
    Which envs of ``env`` end their episodes with a ``TimeLimit`` wrapper.

    rl-zoo3 replaces ``gymnasium.wrappers.TimeLimit`` by a subclass when it is imported.  gymnasium's
    original class matches envs wrapped before and after that, so it is the one asked about; but
    it can then no longer be pickled by name, which subprocess envs need, and those are asked
    about the current class instead.

    :param env: The training env.
    :return: One boolean per env.
    """
    current = gymnasium.wrappers.TimeLimit
    originals = [c for c in current.__mro__ if c.__name__ == "TimeLimit" and c.__module__.startswith("gymnasium")]
    original = originals[-1] if originals else current
    try:
        return np.asarray(env.env_is_wrapped(original), dtype=bool)
    except pickle.PicklingError:
        return np.asarray(env.env_is_wrapped(current), dtype=bool)


class FinishedEpisode(NamedTuple):
    """
    Where a finished episode lies in the record, and how it ended.

    :param env: The env that played it.
    :param first_row: Row of its first step.
    :param last_row: Row of its last step.
    :param truncated: Whether it ended by truncation (e.g. a time limit) rather than termination.
    :param terminal_observation: The observation after its last step.
    """

    env: int
    first_row: int
    last_row: int
    truncated: bool
    terminal_observation: Observations


class EpisodeCollector:
    """
    Steps a VecEnv with the model's policy and hands over finished episodes.

    It holds what must survive from one collection to the next: the record of the episodes still
    running, where each of them started, and how many steps each env's current episode has taken.
    It is not saved with the model: a loaded model starts a new one.

    :param n_envs: Number of envs of the training VecEnv.
    :param fresh_start: The batch rule: True for REINFORCE's (reset, first ``n_episodes`` to
        start), False for OffPolicyPG's (continue, ``n_episodes`` more to end); see the module docstring.
    :param record_original: Record the observations and rewards as the envs produced them, before a
        ``VecNormalize`` wrapper normalised them (OffPolicyPG normalises them again when it samples).
    :param capacity: Stop with an error as soon as a recorded episode has more steps than this
        (OffPolicyPG: the replay buffer's size); None: no limit.
    :param mask_size: Entries of the env's action masks, which are then read before every step,
        applied to the sampling and recorded (docs/masking.md); None: the env has no masks.
    """

    def __init__(
        self,
        n_envs: int,
        fresh_start: bool,
        record_original: bool = False,
        capacity: int | None = None,
        mask_size: int | None = None,
    ):
        self.n_envs = n_envs
        self.fresh_start = fresh_start
        self.record_original = record_original
        self.capacity = capacity
        self.mask_size = mask_size
        fields = STEP_FIELDS if mask_size is None else (*STEP_FIELDS, MASK_FIELD)
        #: One list of per-step rows per field; row ``k`` holds the ``k``-th step of every env.
        self._rows: dict[str, list[Any]] = {name: [] for name in fields}
        #: Row where each env's current episode started, or -1 when that episode is not recorded.
        self._start = np.full(n_envs, -1, dtype=np.int64)
        #: Steps taken so far in each env's current episode (recorded or not).
        self.episode_steps = np.zeros(n_envs, dtype=np.int64)
        #: Steps taken but not recorded in any handed-over or running episode, since last read.
        self.unused_steps = 0
        # Whether the envs have been reset (by SB3's learn()) since the last step: REINFORCE's
        # first collection then starts from that reset instead of resetting again.
        self._just_reset = False
        self._last_original_obs: Observations | None = None
        self._time_limited: np.ndarray | None = None
        # Steps since the collection started, for gSDE's noise resampling.
        self._collection_steps = 0
        # A recurrent policy's states of every env, kept from one collection to the next (made at the first step).
        self._hidden_states: HiddenStates | None = None

    # ------------------------------------------------------------------ state

    @property
    def running_steps(self) -> int:
        """Steps recorded in the episodes still running (they are handed over when they end)."""
        return int(self.episode_steps[self._start >= 0].sum())

    def start_episodes(self) -> None:
        """
        The envs have just been reset: every env starts a new episode, recorded from its first step.

        Steps recorded in episodes that were running are counted as unused.
        """
        self.unused_steps += self.running_steps
        self._clear_rows()
        self._start[:] = 0
        self.episode_steps[:] = 0
        self._just_reset = True

    def on_learn_start(self, model: EpisodicPolicyGradient, env_was_reset: bool) -> None:
        """
        Take up the envs where ``learn()`` leaves them: just reset, or as the last collection left them.

        A new collector that finds the envs under way (not reset) records nothing until each
        env's current episode has ended, since those episodes cannot be recorded from their start.

        :param model: The model (its ``VecNormalize`` wrapper, if any).
        :param env_was_reset: Whether SB3's ``_setup_learn`` has just reset the envs.
        """
        if env_was_reset:
            self.start_episodes()
        if env_was_reset or self._last_original_obs is None:
            self._update_original_obs(model)

    def _update_original_obs(self, model: EpisodicPolicyGradient) -> None:
        if self.record_original and model._vec_normalize_env is not None:
            self._last_original_obs = model._vec_normalize_env.get_original_obs()

    def drop_running_episodes(self) -> None:
        """The running episodes cannot be recorded whole: drop their steps, and those of their rest."""
        self.unused_steps += self.running_steps
        self._clear_rows()
        self._start[:] = -1

    def take_unused_steps(self) -> int:
        """
        Read and reset the count of unused steps.

        :return: Steps simulated but not part of any episode handed over or still recorded, since the last call.
        """
        unused, self.unused_steps = self.unused_steps, 0
        return unused

    def _clear_rows(self) -> None:
        for rows in self._rows.values():
            rows.clear()

    # ------------------------------------------------------------------ collection

    def collect(
        self, model: EpisodicPolicyGradient, env: VecEnv, callback: BaseCallback, n_episodes: int
    ) -> tuple[EpisodeBatch | None, bool]:
        """
        Step the envs with ``model.policy`` until the batch rule is met, and hand over the episodes.

        When the callback stops training mid-collection, REINFORCE's partial batch is dropped (it
        would not follow the batch rule) while OffPolicyPG's episodes that ended are still handed
        over (each is complete); the episodes then running are dropped.

        :param model: The model: its policy acts; its ``_last_obs``, ``num_timesteps`` and episode
            statistics are kept up to date as SB3's own collection loops keep them.
        :param env: The training env.
        :param callback: Callback whose ``on_rollout_start`` and ``on_step`` run here.
        :param n_episodes: How many episodes to hand over.
        :return: ``(episodes, completed)``: the episodes, in the order they started (``fresh_start``)
            or ended (otherwise), None if there are none to hand over; ``completed`` is False when
            the callback stopped training.
        """
        model.policy.set_training_mode(False)
        self._collection_steps = 0
        if model.use_sde:
            model.policy.reset_noise(env.num_envs)
        callback.on_rollout_start()
        if self.fresh_start:
            self._reset_for_batch(model, env, n_episodes)
        finished: list[FinishedEpisode] = []
        n_recorded = int((self._start >= 0).sum())
        unrecorded = len(self._start) - n_recorded  # envs whose current episode is not recorded
        while len(finished) < n_episodes:
            step = self._step(model, env, callback)
            if step is None:
                # The step was taken but its data is lost: the running episodes are incomplete.
                handed = None if self.fresh_start or not finished else self._hand_over(finished)
                self.drop_running_episodes()
                self.unused_steps += env.num_envs
                self.episode_steps += 1
                return handed, False
            dones, infos, new_obs = step
            self.unused_steps += unrecorded
            self.episode_steps += 1
            self._check_lengths(model, env)
            if not dones.any():
                continue
            row = len(self._rows["rewards"]) - 1
            for index in np.flatnonzero(dones).tolist():
                if self._start[index] >= 0:
                    info = infos[index]
                    terminal = self._terminal(model, info, new_obs, index)
                    truncated = bool(info.get("TimeLimit.truncated", False))
                    finished.append(FinishedEpisode(index, int(self._start[index]), row, truncated, terminal))
                if not self.fresh_start or n_recorded < n_episodes:
                    self._start[index] = row + 1
                    n_recorded += 1
                else:
                    self._start[index] = -1
                self.episode_steps[index] = 0
            unrecorded = int((self._start < 0).sum())
        return self._hand_over(finished), True

    def _reset_for_batch(self, model: EpisodicPolicyGradient, env: VecEnv, n_episodes: int) -> None:
        """REINFORCE's batch rule: every env starts a new episode now; the first ``n_episodes`` envs are recorded."""
        if not self._just_reset:
            model._last_obs = env.reset()  # type: ignore[assignment]
            model._last_episode_starts = np.ones(env.num_envs, dtype=bool)
            self._update_original_obs(model)
        self._just_reset = False
        self._clear_rows()
        self.episode_steps[:] = 0
        self._start = np.where(np.arange(env.num_envs) < n_episodes, 0, -1)

    def _step(
        self, model: EpisodicPolicyGradient, env: VecEnv, callback: BaseCallback
    ) -> tuple[np.ndarray, list[dict[str, Any]], Observations] | None:
        """
        One step of every env with actions sampled from the policy; record it.

        As in SB3's ``collect_rollouts``: the callback's ``on_step`` runs after the env step, and
        when it asks to stop, the model's observation and episode statistics are not updated.
        With gSDE, a new noise matrix is drawn every ``sde_sample_freq`` steps of the collection.

        :return: ``(dones, infos, new_obs)``, or None when the callback asked to stop training.
        """
        observations = model._last_obs
        if observations is None:
            raise RuntimeError("the env has not been reset: call learn() to collect episodes")
        steps = self._collection_steps
        if model.use_sde and model.sde_sample_freq > 0 and steps > 0 and steps % model.sde_sample_freq == 0:
            model.policy.reset_noise(env.num_envs)
        self._collection_steps += 1
        masks = None if self.mask_size is None else env_action_masks(env, self.mask_size)
        action_tensor, log_prob_tensor = self._sample(model, obs_as_tensor(observations, model.device), masks)
        actions = action_tensor.cpu().numpy()
        log_probs = log_prob_tensor.cpu().numpy()
        new_obs, rewards, dones, infos = env.step(env_actions(model, actions))
        model.num_timesteps += env.num_envs
        callback.update_locals(locals())
        if not callback.on_step():
            return None
        model._update_info_buffer(infos, dones)
        model._last_obs = new_obs  # type: ignore[assignment]
        model._last_episode_starts = dones
        normalizer = model._vec_normalize_env
        if self.record_original and normalizer is not None:
            observations, self._last_original_obs = self._last_original_obs, normalizer.get_original_obs()
            rewards = normalizer.get_original_reward()
        # One row of every field of STEP_FIELDS, for all envs.
        rows = self._rows
        rows["observations"].append(observations)
        rows["actions"].append(actions)
        rows["rewards"].append(rewards)
        rows["log_probs"].append(log_probs)
        if masks is not None:
            rows[MASK_FIELD].append(masks)
        return dones, infos, new_obs  # type: ignore[return-value]

    def _sample(
        self, model: EpisodicPolicyGradient, observations: th.Tensor | dict[str, th.Tensor], masks: np.ndarray | None
    ) -> tuple[th.Tensor, th.Tensor]:
        """
        Actions and log-probabilities for every env; a recurrent policy also advances its hidden states.

        A recurrent policy's state of an env is reset on the step where that env starts an episode
        (``model._last_episode_starts``: set by every env reset and every ``done``).

        :param model: The model (its policy).
        :param observations: The envs' observations, as tensors.
        :param masks: The envs' action masks (None: no masking).
        :return: ``(actions, log_probs)``.
        """
        if not is_recurrent(model.policy):
            return sample_actions(model.policy, observations, action_masks=masks)
        if self._hidden_states is None:
            self._hidden_states = HiddenStates(model.policy, self.n_envs)  # type: ignore[arg-type]
        return self._hidden_states.sample(model.policy, observations, model._last_episode_starts, masks)  # type: ignore[arg-type]

    def _terminal(
        self, model: EpisodicPolicyGradient, info: dict[str, Any], new_obs: Observations, index: int
    ) -> Observations:
        """The observation after an episode's last step, from the VecEnv's ``terminal_observation``."""
        final = info.get("terminal_observation")
        if final is None:  # a VecEnv that does not report it: nothing better is known
            return take_steps(new_obs, np.array(index))
        if self.record_original and model._vec_normalize_env is not None:
            return model._vec_normalize_env.unnormalize_obs(final)
        return final  # type: ignore[no-any-return]

    def _hand_over(self, finished: list[FinishedEpisode]) -> EpisodeBatch:
        """Gather the finished episodes from the record, then forget every row no running episode needs."""
        if self.fresh_start:
            finished.sort(key=lambda episode: (episode.first_row, episode.env))  # by start, ties by env index
        envs = np.array([episode.env for episode in finished], dtype=np.int64)
        starts = np.array([episode.first_row for episode in finished], dtype=np.int64)
        lengths = np.array([episode.last_row for episode in finished], dtype=np.int64) - starts + 1
        cells = (np.repeat(starts, lengths) + time_index(lengths), np.repeat(envs, lengths))
        steps = {name: take_steps(stack_steps(rows), cells) for name, rows in self._rows.items()}
        batch = EpisodeBatch(
            observations=steps["observations"],
            actions=steps["actions"],  # type: ignore[arg-type]
            rewards=steps["rewards"].astype(np.float64),  # type: ignore[union-attr]
            lengths=lengths,
            truncated=np.array([episode.truncated for episode in finished], dtype=bool),
            terminal_observations=stack_steps([episode.terminal_observation for episode in finished]),
            log_probs=steps["log_probs"].astype(np.float64),  # type: ignore[union-attr]
            action_masks=steps.get(MASK_FIELD),  # type: ignore[arg-type]
        )
        self._forget_unneeded_rows()
        return batch

    def _forget_unneeded_rows(self) -> None:
        """Drop the rows before the first row of the oldest recorded running episode."""
        recorded = self._start >= 0
        keep_from = int(self._start[recorded].min()) if recorded.any() else len(self._rows["rewards"])
        if keep_from > 0:
            for rows in self._rows.values():
                del rows[:keep_from]
            self._start[recorded] -= keep_from

    # ------------------------------------------------------------------ guards

    def _check_lengths(self, model: EpisodicPolicyGradient, env: VecEnv) -> None:
        """
        The ``max_episode_steps`` guard, for envs without a time limit, then the ``capacity`` guard.

        :param model: The model (its ``max_episode_steps``).
        :param env: The training env.
        """
        steps = self.episode_steps
        longest = int(steps.max())
        if longest <= model.max_episode_steps and (self.capacity is None or longest <= self.capacity):
            return
        endless = (steps > model.max_episode_steps) & ~self._time_limits(env)
        oversized = (self._start >= 0) & (steps > self.capacity) if self.capacity is not None else endless & False
        for too_long, limit in ((endless, "max_episode_steps"), (oversized, "buffer_size")):
            if too_long.any():
                index = int(np.flatnonzero(too_long)[0])
                raise EpisodeTooLongError(self._too_long_message(model, env, index, limit))

    def _too_long_message(self, model: EpisodicPolicyGradient, env: VecEnv, index: int, limit: str) -> str:
        steps = int(self.episode_steps[index])
        if limit == "max_episode_steps":
            return (
                f"An episode of env {index} ({_env_name(env, index)}) has run {steps} steps without ending, more "
                f"than max_episode_steps={model.max_episode_steps}, and the env has no time limit. Wrap the env in "
                "gymnasium.wrappers.TimeLimit, or raise max_episode_steps if its episodes are really that long."
            )
        return (
            f"An episode of env {index} has run {steps} steps, more than the replay buffer holds "
            f"(buffer_size={self.capacity} transitions). Raise buffer_size above the longest episode, or limit "
            "the episode length (e.g. gymnasium.wrappers.TimeLimit)."
        )

    def _time_limits(self, env: VecEnv) -> np.ndarray:
        """Which envs end their episodes with a ``TimeLimit`` (asked once)."""
        if self._time_limited is None:
            self._time_limited = env_time_limits(env)
        return self._time_limited


def _env_name(env: VecEnv, index: int) -> str:
    """The registered id of env ``index``, for messages."""
    try:
        spec = env.get_attr("spec", [index])[0]
    except (AttributeError, NotImplementedError):
        return "unknown env"
    return spec.id if spec is not None else "unregistered env"


def env_actions(model: EpisodicPolicyGradient, actions: np.ndarray) -> np.ndarray:
    """
    Map sampled actions to what the env accepts, as SB3's ``collect_rollouts`` does.

    The actions take the action space's shape; ``Box`` actions are then rescaled from ``[-1, 1]``
    (tanh-squashed policies) or clipped to the bounds.

    :param model: The model (its policy and action space).
    :param actions: Actions in the distribution's flat layout, leading axis ``n_envs``.
    :return: The actions to pass to ``env.step``.
    """
    action_space = model.action_space
    actions = actions.reshape((-1, *action_space.shape))  # type: ignore[misc, arg-type]
    if isinstance(action_space, spaces.Box):
        if model.policy.squash_output:
            return model.policy.unscale_action(actions)
        return np.clip(actions, action_space.low, action_space.high)
    return actions
