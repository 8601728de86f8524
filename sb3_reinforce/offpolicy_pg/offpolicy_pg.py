"""OffPolicyPG: Monte-Carlo policy gradient that reuses past episodes through importance weights."""

from __future__ import annotations

import io
import pathlib
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch as th
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.save_util import load_from_pkl, save_to_pkl
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule
from stable_baselines3.common.vec_env import VecEnv

from sb3_reinforce.common.episode_replay_buffer import EpisodeReplayBuffer
from sb3_reinforce.common.episodes import EpisodeBatch, Observations, take_steps
from sb3_reinforce.common.episodic_algorithm import EpisodicPolicyGradient, stack_steps
from sb3_reinforce.common.errors import EpisodeTooLongError
from sb3_reinforce.common.importance_weights import (
    effective_sample_size,
    importance_ratios,
    per_decision_mean_baseline,
    per_decision_returns,
    per_decision_value_targets,
    per_decision_weights,
    truncated_fraction,
    truncated_ratios,
)
from sb3_reinforce.common.returns import discount_weights, discounted_returns
from sb3_reinforce.common.surrogate import standardize, surrogate_loss
from sb3_reinforce.common.validation import check_choice, check_int, check_number
from sb3_reinforce.offpolicy_pg.policies import CnnPolicy, MlpPolicy, MultiInputPolicy

SelfOffPolicyPG = TypeVar("SelfOffPolicyPG", bound="OffPolicyPG")

#: Importance-weighting schemes of SPEC §6.
IMPORTANCE_WEIGHTS = ("per_decision", "per_step")


def _env_row(observations: Observations, index: int) -> Observations:
    """Env ``index``'s entry of a VecEnv observation (array or dict of arrays)."""
    return take_steps(observations, np.array(index))


class RunningEpisodes:
    """
    The steps of the episode each env is running, kept from one rollout to the next.

    An env's episode is *valid* when all its steps were recorded.  After an interruption (a
    callback stopping training mid-step, or a model loaded without resetting its env) the episodes
    then running are invalid: their remaining steps are simulated, counted as unused, and the
    episode is dropped when it ends.

    :param n_envs: Number of envs.
    :param valid: Whether the envs' current episodes start now (True) or are already under way (False).
    """

    def __init__(self, n_envs: int, valid: bool):
        self.n_envs = n_envs
        self.observations: list[list[Observations]] = [[] for _ in range(n_envs)]
        self.actions: list[list[np.ndarray]] = [[] for _ in range(n_envs)]
        self.rewards: list[list[float]] = [[] for _ in range(n_envs)]
        self.log_probs: list[list[float]] = [[] for _ in range(n_envs)]
        self.valid = np.full(n_envs, valid, dtype=bool)
        #: Steps taken so far by each env's current episode (recorded or not).
        self.steps = np.zeros(n_envs, dtype=np.int64)

    def record(self, index: int, observation: Observations, action: np.ndarray, reward: float, log_prob: float) -> None:
        """
        Count one step of env ``index`` and keep it if its episode is valid.

        :param index: Env index.
        :param observation: Observation the action was chosen from.
        :param action: The sampled action.
        :param reward: The (unnormalised) reward.
        :param log_prob: ``log mu(a|s)`` under the sampling parameters.
        """
        self.steps[index] += 1
        if self.valid[index]:
            self.observations[index].append(observation)
            self.actions[index].append(action)
            self.rewards[index].append(reward)
            self.log_probs[index].append(log_prob)

    def finish(self, index: int) -> tuple[Observations, np.ndarray, np.ndarray, np.ndarray] | None:
        """
        End env ``index``'s episode: return its steps if valid, and start a fresh (valid) one.

        :param index: Env index.
        :return: ``(observations, actions, rewards, log_probs)`` stacked along time, or None if
            the episode was invalid.
        """
        episode = None
        if self.valid[index]:
            episode = (
                stack_steps(self.observations[index]),
                np.stack(self.actions[index]),
                np.asarray(self.rewards[index], dtype=np.float64),
                np.asarray(self.log_probs[index], dtype=np.float64),
            )
        self.observations[index], self.actions[index] = [], []
        self.rewards[index], self.log_probs[index] = [], []
        self.valid[index] = True
        self.steps[index] = 0
        return episode

    def invalidate(self) -> None:
        """Drop every running episode's recorded steps; the episodes stay invalid until they end."""
        for index in range(self.n_envs):
            self.observations[index], self.actions[index] = [], []
            self.rewards[index], self.log_probs[index] = [], []
        self.valid[:] = False


@dataclass
class OffPolicyLosses:
    """
    The loss terms of one OffPolicyPG update, before the optimiser step.

    :param policy_loss: The SPEC §6 surrogate loss (its gradient is the policy-gradient estimate).
    :param value_loss: Mean squared error of the value head (zero without the value baseline).
    :param entropy_loss: Minus the mean entropy.
    :param values: ``V(s_t)`` with its graph.
    :param value_targets: What the value head is fitted to.
    :param stats: Importance-weight statistics, keyed by their logger names.
    """

    policy_loss: th.Tensor
    value_loss: th.Tensor
    entropy_loss: th.Tensor
    values: th.Tensor
    value_targets: np.ndarray
    stats: dict[str, float]


class OffPolicyPG(EpisodicPolicyGradient):
    """
    Off-policy Monte-Carlo policy gradient: REINFORCE on replayed episodes, corrected by importance weights.

    Each rollout steps the envs with the current policy until ``n_episodes`` new episodes have
    ended and stores them whole in an :class:`EpisodeReplayBuffer`, with the log-probability
    ``log mu(a_t|s_t)`` of every action under the parameters that sampled it.  Envs are not reset
    between rollouts: an episode still running when a rollout ends continues in the next one, so
    no step is wasted (from a fresh start with one env, a rollout is exactly ``n_episodes`` whole
    episodes).  Then ``gradient_steps`` updates each sample ``batch_episodes`` distinct episodes
    from the buffer and recompute ``rho_t = pi(a_t|s_t) / mu(a_t|s_t)`` at the current parameters,
    truncated at ``truncation``:

    - ``"per_decision"``: ``w_t = prod_{k<=t} rhō_k`` and
      ``L = -(1/B) sum_i sum_t lambda_t log pi(a_t|s_t) (sum_{t'>=t} gamma^(t'-t) w_t' r_t' - w_t b_t)``
      (unbiased without truncation);
    - ``"per_step"``: ``L = -(1/B) sum_i sum_t lambda_t rhō_t log pi(a_t|s_t) (Ĝ_t - b_t)``
      (first-order approximation: biased, lower variance).

    When the sampling policy is the current one, both reduce exactly to REINFORCE's update.  See
    ``docs/offpolicy_pg.md`` for the estimators, the bias and variance of each option and the
    benchmark behind the defaults.

    :param policy: The policy model to use (``MlpPolicy``, ``CnnPolicy``, ``MultiInputPolicy``) or an
        ``ActorCriticPolicy`` subclass.
    :param env: The environment to learn from (if registered in Gym, can be str).
    :param learning_rate: Learning rate of the optimiser (Adam by default); it can be a function
        of the current progress remaining (from 1 to 0).
    :param n_episodes: Number of new episodes collected per rollout (at least 2 with the
        ``"mean"`` baseline).
    :param batch_episodes: Number of distinct episodes sampled from the buffer for each
        gradient step (``B``; all stored episodes when fewer are stored); at least 2 with the
        ``"mean"`` baseline.
    :param buffer_size: Capacity of the replay buffer in transitions; the oldest whole episodes
        are evicted first.  An episode longer than this stops training with an error.
    :param gradient_steps: Number of gradient steps after each rollout.
    :param importance_weights: ``"per_decision"`` (cumulative weights, unbiased without
        truncation) or ``"per_step"`` (one ratio per step, biased, low variance).
    :param truncation: Truncate every ratio at this level, ``min(rho_t, truncation)``, to bound the
        variance at the price of a bias (None: no truncation).
    :param gamma: Discount factor, in ``[0, 1]``.
    :param baseline: What is subtracted from the returns: ``"none"``; ``"mean"``, the
        leave-one-out mean over the *other* sampled episodes of the (importance-weighted) return
        at the same time step; ``"value"``, the policy's value head ``V(s_t)``, fitted to the
        (importance-weighted) returns.  None of them biases the gradient.
    :param reward_to_go: If True, the log-probability of action ``a_t`` is weighted by the
        discounted rewards from step ``t`` on; if False, by the episode's whole discounted return.
    :param unbiased_discount: If True, step ``t``'s term is multiplied by ``gamma^t`` (an unbiased
        estimate of the gradient of ``E[sum_t gamma^t r_t]``); if False (common practice), the
        usual discounted surrogate.
    :param normalize_advantage: Standardise the per-step advantage (``Ĝ_t - b_t``, or
        ``Ĝ^w_t - w_t b_t`` per decision) over all steps of the batch.
    :param ent_coef: Entropy coefficient of the loss.
    :param vf_coef: Value-function coefficient of the loss (used with ``baseline="value"``).
    :param max_grad_norm: Clip the gradient to this norm before each step (None: no clipping).
    :param max_episode_steps: Guard against episodes that never end: if an env without a time limit
        runs an episode past this many steps, training stops with an error.
    :param use_sde: Explore with generalized State-Dependent Exploration (gSDE, ``Box`` actions only):
        the noise is a function of the state, drawn as a random matrix that is kept for several
        steps.  The update uses each action's per-step (marginal) log-probability, as SB3's A2C and
        PPO do, so with gSDE it is no longer an exact estimate of the gradient (see ``docs/choosing.md``).
    :param sde_sample_freq: With gSDE, draw a new noise matrix every ``sde_sample_freq`` steps
        (-1: only at the start of each rollout).
    :param stats_window_size: Window size for the rollout logging, specifying the number of episodes
        to average the reported success rate, mean episode length, and mean reward over.
    :param tensorboard_log: The log location for tensorboard (if None, no logging).
    :param monitor_wrapper: When creating an environment, whether to wrap it in a ``Monitor``.
    :param policy_kwargs: Additional arguments passed to the policy on creation (e.g. ``net_arch``,
        ``ortho_init``, ``optimizer_class``, ``optimizer_kwargs``).
    :param verbose: Verbosity level: 0 for no output, 1 for info messages (such as device or
        wrappers used), 2 for debug messages.
    :param seed: Seed for the pseudo random generators.
    :param device: Device (cpu, cuda, ...) on which the code should be run.
        Setting it to auto, the code will be run on the GPU if possible.
    :param _init_setup_model: Whether or not to build the network at the creation of the instance.
    """

    policy_aliases = {  # noqa: RUF012
        "MlpPolicy": MlpPolicy,
        "CnnPolicy": CnnPolicy,
        "MultiInputPolicy": MultiInputPolicy,
    }
    allowed_baselines = ("none", "mean", "value")
    leave_one_out_baselines = ("mean",)

    replay_buffer: EpisodeReplayBuffer | None

    def __init__(
        self,
        policy: str | type[MlpPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 1e-2,
        n_episodes: int = 4,
        batch_episodes: int = 8,
        buffer_size: int = 2_000,
        gradient_steps: int = 1,
        importance_weights: str = "per_step",
        truncation: float | None = 1.0,
        gamma: float = 0.99,
        baseline: str = "mean",
        reward_to_go: bool = True,
        unbiased_discount: bool = False,
        normalize_advantage: bool = False,
        ent_coef: float = 0.0,
        vf_coef: float = 0.5,
        max_grad_norm: float | None = None,
        max_episode_steps: int = 100_000,
        use_sde: bool = False,
        sde_sample_freq: int = -1,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        monitor_wrapper: bool = True,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        _init_setup_model: bool = True,
    ):
        # Set before the base class validates the hyperparameters.
        self.batch_episodes = batch_episodes
        self.buffer_size = buffer_size
        self.gradient_steps = gradient_steps
        self.importance_weights = importance_weights
        self.truncation = truncation
        self.replay_buffer = None
        self._running: RunningEpisodes | None = None
        # Recorded steps dropped (env reset, interrupted rollout) since the last rollout was logged.
        self._dropped_steps = 0
        self._last_original_obs: Observations | None = None
        super().__init__(
            policy,
            env,
            learning_rate=learning_rate,
            n_episodes=n_episodes,
            gamma=gamma,
            baseline=baseline,
            reward_to_go=reward_to_go,
            unbiased_discount=unbiased_discount,
            normalize_advantage=normalize_advantage,
            ent_coef=ent_coef,
            vf_coef=vf_coef,
            max_grad_norm=max_grad_norm,
            max_episode_steps=max_episode_steps,
            use_sde=use_sde,
            sde_sample_freq=sde_sample_freq,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            monitor_wrapper=monitor_wrapper,
            policy_kwargs=policy_kwargs,
            verbose=verbose,
            seed=seed,
            device=device,
            _init_setup_model=_init_setup_model,
        )

    # ------------------------------------------------------------------ checks and setup

    def _validate_hyperparameters(self, learning_rate: float | Schedule | None = None) -> None:
        """
        Raise a ``ValueError`` naming the first invalid hyperparameter (REINFORCE's, then OffPolicyPG's).

        :param learning_rate: The learning rate, checked when it is a number.
        """
        super()._validate_hyperparameters(learning_rate)
        check_choice("importance_weights", self.importance_weights, IMPORTANCE_WEIGHTS)
        check_number("truncation", self.truncation, 0.0, low_inclusive=False, allow_none=True)
        if self.baseline in self.leave_one_out_baselines:
            check_int(
                "batch_episodes", self.batch_episodes, 2, f"with baseline={self.baseline!r} (it is leave-one-out)"
            )
        else:
            check_int("batch_episodes", self.batch_episodes, 1)
        check_int("buffer_size", self.buffer_size, 1)
        check_int("gradient_steps", self.gradient_steps, 1)

    def _setup_model(self) -> None:
        super()._setup_model()
        self.replay_buffer = EpisodeReplayBuffer(
            self.buffer_size, self.observation_space, self.action_space, device=self.device, n_envs=self.n_envs
        )

    def _excluded_save_params(self) -> list[str]:
        # Running episodes are not saved: a loaded model resets its env (SB3's default) and starts afresh.
        return [*super()._excluded_save_params(), "_running", "_last_original_obs"]

    def _setup_learn(
        self,
        total_timesteps: int,
        callback: MaybeCallback = None,
        reset_num_timesteps: bool = True,
        tb_log_name: str = "run",
        progress_bar: bool = False,
    ) -> tuple[int, BaseCallback]:
        observations_before = self._last_obs
        result = super()._setup_learn(total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar)
        # SB3 resets the env (new observations) when reset_num_timesteps or when it has none yet.
        env_reset = self._last_obs is not observations_before or observations_before is None
        assert self.env is not None
        n_envs = self.env.num_envs
        if env_reset or self._running is None or self._running.n_envs != n_envs:
            if self._running is not None:
                self._dropped_steps += int(self._running.steps.sum())
            # Without a reset, the episodes under way were not recorded from their start.
            self._running = RunningEpisodes(n_envs, valid=env_reset)
        if self._vec_normalize_env is not None and (env_reset or self._last_original_obs is None):
            self._last_original_obs = self._vec_normalize_env.get_original_obs()
        return result

    # ------------------------------------------------------------------ replay buffer

    def save_replay_buffer(self, path: str | pathlib.Path | io.BufferedIOBase) -> None:
        """
        Save the replay buffer (its complete episodes) as a pickle file.

        Episodes still running are not part of it (see ``docs/offpolicy_pg.md``).

        :param path: Path to the file where the replay buffer should be saved; if a str or
            ``pathlib.Path``, the directories are created if necessary.
        """
        assert self.replay_buffer is not None, "The replay buffer is not defined"
        save_to_pkl(path, self.replay_buffer, self.verbose)

    def load_replay_buffer(self, path: str | pathlib.Path | io.BufferedIOBase, truncate_last_traj: bool = True) -> None:
        """
        Load a replay buffer saved by :meth:`save_replay_buffer`.

        :param path: Path to the pickled replay buffer.
        :param truncate_last_traj: Accepted for the signature of SB3's off-policy algorithms (rl-zoo3's
            ``-i`` passes it).  SB3 uses it to close an episode that was still running when its buffer was
            saved; this buffer only ever holds complete episodes, so there is never such an episode and
            the value makes no difference.
        """
        buffer = load_from_pkl(path, self.verbose)
        if not isinstance(buffer, EpisodeReplayBuffer):
            raise TypeError(f"expected an EpisodeReplayBuffer, the file holds a {type(buffer).__name__}")
        buffer.device = self.device
        self.replay_buffer = buffer

    # ------------------------------------------------------------------ collection

    def collect_rollouts(self, env: VecEnv, callback: BaseCallback) -> bool:
        """
        Step the envs until ``n_episodes`` new episodes have ended; store every ended episode.

        Envs are not reset: episodes still running at the end continue in the next rollout.

        :param env: The training env.
        :param callback: Callback fired at each step and at the start and end of the rollout.
        :return: False if the callback stopped training, True otherwise.
        """
        assert self.replay_buffer is not None and self._running is not None, "call learn() to collect"
        running = self._running
        self._start_rollout(env, callback)
        new_episodes = new_steps = 0
        while new_episodes < self.n_episodes:
            original_obs = self._last_original_obs if self._vec_normalize_env is not None else self._last_obs
            step = self._step_envs(env, callback)
            if step is None:
                # The step was taken but its data is lost, so the running episodes are incomplete from
                # now on; their steps are counted as dropped when they end (or when the env is reset).
                running.steps += 1
                running.invalidate()
                return False
            rewards = step.rewards
            if self._vec_normalize_env is not None:
                rewards = self._vec_normalize_env.get_original_reward()
                self._last_original_obs = self._vec_normalize_env.get_original_obs()
            assert original_obs is not None
            for env_index in range(env.num_envs):
                running.record(
                    env_index,
                    _env_row(original_obs, env_index),
                    step.actions[env_index],
                    float(rewards[env_index]),
                    float(step.log_probs[env_index]),
                )
            self._check_episode_lengths(env, running.steps, np.ones(env.num_envs, dtype=bool))
            self._check_buffer_fits(running)
            for index in np.flatnonzero(step.dones).tolist():
                length = int(running.steps[index])
                episode = running.finish(index)
                if episode is None:
                    self._dropped_steps += length
                    continue
                info = step.infos[index]
                self.replay_buffer.add(
                    *episode,
                    final_observation=self._final_observation(info, index),
                    truncated=bool(info.get("TimeLimit.truncated", False)),
                )
                new_episodes += 1
                new_steps += length

        self.logger.record("rollout/new_episodes", new_episodes)
        self.logger.record("rollout/new_steps", new_steps)
        self.logger.record("rollout/unused_steps", self._dropped_steps)
        self._dropped_steps = 0
        self.logger.record("rollout/buffer_episodes", self.replay_buffer.n_episodes)
        self.logger.record("rollout/buffer_transitions", self.replay_buffer.size())
        callback.update_locals(locals())
        callback.on_rollout_end()
        return True

    def _check_buffer_fits(self, running: RunningEpisodes) -> None:
        """Fail as soon as a recorded episode has more steps than the replay buffer can hold."""
        too_long = running.valid & (running.steps > self.buffer_size)
        if too_long.any():
            index = int(np.flatnonzero(too_long)[0])
            raise EpisodeTooLongError(
                f"An episode of env {index} has run {int(running.steps[index])} steps, more than the replay "
                f"buffer holds (buffer_size={self.buffer_size} transitions). Raise buffer_size above the "
                "longest episode, or limit the episode length (e.g. gymnasium.wrappers.TimeLimit)."
            )

    def _final_observation(self, info: dict[str, Any], index: int) -> Observations:
        """The raw observation after an episode's last step, from the VecEnv's ``terminal_observation``."""
        final = info.get("terminal_observation")
        if final is None:  # a VecEnv that does not report it: nothing better is known
            assert self._last_obs is not None
            return _env_row(self._last_obs, index)
        if self._vec_normalize_env is not None:
            final = self._vec_normalize_env.unnormalize_obs(final)
        return final

    # ------------------------------------------------------------------ update

    def train(self) -> None:
        """``gradient_steps`` updates, each on ``batch_episodes`` episodes sampled from the replay buffer."""
        assert self.replay_buffer is not None, "collect_rollouts() must run before train()"
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        stats: dict[str, list[float]] = {}
        for _ in range(self.gradient_steps):
            batch = self.replay_buffer.sample(self.batch_episodes, env=self._vec_normalize_env)
            for key, value in self.update_on_batch(batch).items():
                stats.setdefault(key, []).append(value)
        for key, values in stats.items():
            self.logger.record(key, float(np.max(values)) if key.endswith("_max") else float(np.mean(values)))

    def update_on_batch(self, batch: EpisodeBatch) -> dict[str, float]:
        """
        One optimiser step on the loss of SPEC §6 over ``batch`` (episodes sampled by earlier policies).

        :param batch: The episodes, with the behaviour log-probabilities of their actions.
        :return: Importance-weight statistics of this step (logged by :meth:`train`).
        """
        self.rollout_buffer = batch
        losses = self.losses(batch)
        self._apply_update(losses.policy_loss, losses.value_loss, losses.entropy_loss)
        self._log_value_fit(losses.values, losses.value_targets)
        return losses.stats

    def losses(self, batch: EpisodeBatch) -> OffPolicyLosses:
        """
        The loss terms of SPEC §6 over ``batch`` at the current parameters, with their autograd graphs.

        :param batch: The episodes, with the behaviour log-probabilities of their actions.
        :return: The policy, value and entropy losses, the value targets and the weight statistics.
        """
        values, log_prob, entropy = self._evaluate_batch(batch)
        ratios = importance_ratios(log_prob.detach().cpu().numpy(), batch.log_probs)
        clipped = truncated_ratios(ratios, self.truncation)
        discounts = discount_weights(batch.lengths, self.gamma, self.unbiased_discount, self.reward_to_go)

        if self.importance_weights == "per_step":
            applied = clipped
            self._require_finite("importance weights", applied)
            _, returns, baselines = self._returns_and_advantages(batch, values, log_prob)
            advantages_np = returns - baselines
            value_targets = returns
            step_weights = discounts * applied
        else:
            applied = per_decision_weights(clipped, batch.lengths)
            self._require_finite("importance weights", applied)
            rewards = self._bootstrapped_rewards(batch)
            self._require_finite("rewards", rewards)
            weighted_returns = per_decision_returns(rewards, applied, batch.lengths, self.gamma, self.reward_to_go)
            self._require_finite("importance-weighted returns", weighted_returns)
            baselines = self._per_decision_baseline(batch, weighted_returns, values)
            self._require_finite(f"baseline ({self.baseline})", baselines)
            advantages_np = weighted_returns - applied * baselines
            value_targets = weighted_returns
            if self.baseline == "value":
                plain = discounted_returns(rewards, batch.lengths, self.gamma, self.reward_to_go)
                value_targets = per_decision_value_targets(weighted_returns, applied, plain)
            step_weights = discounts

        advantages = th.as_tensor(advantages_np, device=self.device)
        if self.normalize_advantage:
            advantages = standardize(advantages)
        policy_loss = surrogate_loss(
            log_prob, advantages, th.as_tensor(step_weights, device=self.device), batch.n_episodes
        )
        ess = effective_sample_size(applied)
        stats = {
            "train/n_episodes": float(batch.n_episodes),
            "train/is_weight_mean": float(np.mean(applied)),
            "train/is_weight_max": float(np.max(applied)),
            "train/truncated_fraction": truncated_fraction(ratios, self.truncation),
            "train/ess": ess,
            "train/ess_fraction": ess / max(batch.n_steps, 1),
        }
        return OffPolicyLosses(
            policy_loss=policy_loss,
            value_loss=self._value_loss(values, value_targets),
            entropy_loss=self._entropy_loss(entropy, log_prob),
            values=values,
            value_targets=value_targets,
            stats=stats,
        )

    def _per_decision_baseline(
        self, batch: EpisodeBatch, weighted_returns: np.ndarray, values: th.Tensor
    ) -> np.ndarray:
        """
        ``b_t`` of the per-decision loss, which enters it as ``w_t b_t``.

        :param batch: The episodes.
        :param weighted_returns: ``Ĝ^w_t``.
        :param values: ``V(s_t)``.
        :return: ``b_t``, float64, shape ``(M,)``.
        """
        if self.baseline == "mean" and batch.n_episodes >= 2:
            return per_decision_mean_baseline(weighted_returns, batch.lengths, self.reward_to_go)
        if self.baseline == "value":
            return values.detach().cpu().numpy().astype(np.float64)
        return np.zeros_like(weighted_returns)

    def _compute_baseline(
        self,
        batch: EpisodeBatch,
        returns: np.ndarray,
        values: th.Tensor,
        log_prob: th.Tensor,
        rewards: np.ndarray,
    ) -> np.ndarray:
        """
        SPEC §5's baseline for the per-step loss; a buffer left with a single episode has no "others", so ``b = 0``.

        :param batch: The episodes.
        :param returns: ``Ĝ_t``.
        :param values: ``V(s_t)``.
        :param log_prob: ``log pi(a_t|s_t)`` with its graph.
        :param rewards: The rewards the returns were computed from.
        :return: ``b_t``, float64, shape ``(M,)``.
        """
        if self.baseline == "mean" and batch.n_episodes < 2:
            return np.zeros_like(returns)
        return super()._compute_baseline(batch, returns, values, log_prob, rewards)

    def learn(
        self: SelfOffPolicyPG,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 1,
        tb_log_name: str = "OffPolicyPG",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfOffPolicyPG:
        return super().learn(
            total_timesteps=total_timesteps,
            callback=callback,
            log_interval=log_interval,
            tb_log_name=tb_log_name,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )
