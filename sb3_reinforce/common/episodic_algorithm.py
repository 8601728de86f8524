"""Base class shared by REINFORCE and OffPolicyPG: stepping envs, the learn loop and the policy-gradient update.

SB3's ``OnPolicyAlgorithm`` is built around a fixed number of steps per env (``n_steps``) and a
fixed-size ``RolloutBuffer``; these algorithms collect whole episodes instead, so they derive from
``BaseAlgorithm`` and reuse SB3's policies, callbacks, logger and save/load unchanged.
"""

from __future__ import annotations

import copy
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import gymnasium
import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.policies import (
    ActorCriticCnnPolicy,
    ActorCriticPolicy,
    BasePolicy,
    MultiInputActorCriticPolicy,
)
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule
from stable_baselines3.common.utils import explained_variance, obs_as_tensor, safe_mean
from stable_baselines3.common.vec_env import VecEnv

from sb3_reinforce.common.action_sampling import sample_actions
from sb3_reinforce.common.baselines import episode_score_sq_norms, leave_one_out_baseline, optimal_baseline
from sb3_reinforce.common.episodes import EpisodeBatch, Observations, take_steps
from sb3_reinforce.common.errors import EpisodeTooLongError, NonFiniteLossError, UnsupportedActionSpaceError
from sb3_reinforce.common.returns import discounted_returns, episode_returns
from sb3_reinforce.common.validation import check_choice, check_int, check_number

SelfEpisodicPolicyGradient = TypeVar("SelfEpisodicPolicyGradient", bound="EpisodicPolicyGradient")

#: Action spaces whose distributions SB3's actor-critic policies can sample and score.
SUPPORTED_ACTION_SPACES: tuple[type[spaces.Space], ...] = (
    spaces.Box,
    spaces.Discrete,
    spaces.MultiDiscrete,
    spaces.MultiBinary,
)


def _time_limit_classes() -> list[type]:
    """
    ``TimeLimit`` classes to test envs against, most general first.

    rl-zoo3 replaces ``gymnasium.wrappers.TimeLimit`` by a subclass when it is imported.  gymnasium's
    original class matches envs wrapped before and after that; but it can no longer be pickled by name
    (for subprocess envs), where the current class is the one to send.
    """
    current = gymnasium.wrappers.TimeLimit
    originals = [
        cls for cls in current.__mro__ if cls.__name__ == "TimeLimit" and cls.__module__.startswith("gymnasium")
    ]
    return [*originals[-1:], current] if originals and originals[-1] is not current else [current]


@dataclass
class EnvStep:
    """
    One step of all envs, as seen by the collection loops.

    :param observations: Observations the actions were chosen from, leading axis ``n_envs``.
    :param actions: Actions sampled from the policy (before clipping to the action space).
    :param log_probs: Log-probability of each action under the sampling policy, shape ``(n_envs,)``.
    :param rewards: Rewards, shape ``(n_envs,)``.
    :param dones: Whether each env's episode ended at this step, shape ``(n_envs,)``.
    :param infos: The envs' info dicts.
    """

    observations: Observations
    actions: np.ndarray
    log_probs: np.ndarray
    rewards: np.ndarray
    dones: np.ndarray
    infos: list[dict[str, Any]]


def stack_steps(steps: Sequence[Observations]) -> Observations:
    """
    Stack per-step arrays (or dicts of arrays) along a new leading time axis.

    :param steps: One array (or dict) per step, each with leading axis ``n_envs``.
    :return: Array (or dict) of shape ``(T, n_envs, ...)``.
    """
    first = steps[0]
    if isinstance(first, dict):
        return {key: np.stack([step[key] for step in steps]) for key in first}  # type: ignore[index]
    return np.stack(steps)  # type: ignore[arg-type]


class EpisodicPolicyGradient(BaseAlgorithm):
    """
    Policy gradient from complete episodes (the shared machinery; use ``REINFORCE`` or ``OffPolicyPG``).

    :param policy: The policy model to use (``MlpPolicy``, ``CnnPolicy``, ``MultiInputPolicy``) or class.
    :param env: The environment to learn from (if registered in Gym, can be str).
    :param learning_rate: Learning rate, or a function of the remaining progress (from 1 to 0).
    :param n_episodes: Number of new episodes per rollout.
    :param gamma: Discount factor, in ``[0, 1]``.
    :param baseline: Baseline subtracted from the returns.
    :param reward_to_go: Weight each action by the rewards that follow it instead of the episode's whole return.
    :param unbiased_discount: Multiply step ``t``'s term by ``gamma^t``.
    :param normalize_advantage: Standardise the advantages over all steps of the batch.
    :param ent_coef: Entropy coefficient of the loss.
    :param vf_coef: Value-function coefficient of the loss (value baseline only).
    :param max_grad_norm: Clip the gradient to this norm (None: no clipping).
    :param max_episode_steps: Stop with an error when an env without a time limit runs an episode longer than this.
    :param use_sde: Explore with generalized State-Dependent Exploration (gSDE; ``Box`` actions only).
    :param sde_sample_freq: With gSDE, draw a new noise matrix every this many steps (-1: once per rollout).
    :param stats_window_size: Window size for the rollout logging (episodes averaged).
    :param tensorboard_log: The log location for tensorboard (if None, no logging).
    :param monitor_wrapper: When creating an environment, whether to wrap it in a ``Monitor``.
    :param policy_kwargs: Additional arguments passed to the policy on creation.
    :param verbose: Verbosity level: 0 no output, 1 info, 2 debug.
    :param seed: Seed for the pseudo random generators.
    :param device: Device (cpu, cuda, ...) on which the code should be run.
    :param _init_setup_model: Whether or not to build the network at the creation of the instance.
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": ActorCriticPolicy,
        "CnnPolicy": ActorCriticCnnPolicy,
        "MultiInputPolicy": MultiInputActorCriticPolicy,
    }
    #: Baselines this class accepts.
    allowed_baselines: ClassVar[tuple[str, ...]] = ("none", "mean", "optimal", "value")
    #: Baselines that compare an episode with the other episodes of its batch (need ``n_episodes >= 2``).
    leave_one_out_baselines: ClassVar[tuple[str, ...]] = ("mean", "optimal")

    policy: ActorCriticPolicy
    rollout_buffer: EpisodeBatch | None

    def __init__(
        self,
        policy: str | type[ActorCriticPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule,
        n_episodes: int,
        gamma: float,
        baseline: str,
        reward_to_go: bool,
        unbiased_discount: bool,
        normalize_advantage: bool,
        ent_coef: float,
        vf_coef: float,
        max_grad_norm: float | None,
        max_episode_steps: int,
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
        self.n_episodes = n_episodes
        self.gamma = gamma
        self.baseline = baseline
        self.reward_to_go = reward_to_go
        self.unbiased_discount = unbiased_discount
        self.normalize_advantage = normalize_advantage
        self.ent_coef = ent_coef
        self.vf_coef = vf_coef
        self.max_grad_norm = max_grad_norm
        self.max_episode_steps = max_episode_steps
        self.use_sde = use_sde
        self.sde_sample_freq = sde_sample_freq
        # Steps taken since the current rollout started (when gSDE draws a new noise matrix).
        self._rollout_steps = 0
        # Bad hyperparameters are reported before the env is even built.
        self._validate_hyperparameters(learning_rate)
        self._check_policy_kwargs(policy_kwargs)
        super().__init__(
            policy=policy,
            env=env,
            learning_rate=learning_rate,
            policy_kwargs=policy_kwargs,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            verbose=verbose,
            device=device,
            support_multi_env=True,
            monitor_wrapper=monitor_wrapper,
            seed=seed,
            # The gSDE action-space check is ours (its message names the parameter), so the base class
            # is told use_sde=False and the value is restored just after.
            use_sde=False,
            sde_sample_freq=sde_sample_freq,
        )
        self.use_sde = use_sde
        # SB3's load() builds the model without an env, hence without an action space yet.
        self._check_action_space(getattr(self, "action_space", None))
        self.rollout_buffer = None
        self._time_limited: np.ndarray | None = None
        if _init_setup_model:
            self._setup_model()

    # ------------------------------------------------------------------ checks

    def _validate_hyperparameters(self, learning_rate: float | Schedule | None = None) -> None:
        """
        Raise a ``ValueError`` naming the first invalid hyperparameter.

        Subclasses extend this with their own parameters.

        :param learning_rate: The learning rate, checked when it is a number.
        """
        if learning_rate is not None and not callable(learning_rate):
            check_number("learning_rate", learning_rate, 0.0, low_inclusive=False)
        check_choice("baseline", self.baseline, self.allowed_baselines)
        if self.baseline in self.leave_one_out_baselines:
            check_int("n_episodes", self.n_episodes, 2, f"with baseline={self.baseline!r} (it is leave-one-out)")
        else:
            check_int("n_episodes", self.n_episodes, 1)
        check_number("gamma", self.gamma, 0.0, 1.0)
        check_number("ent_coef", self.ent_coef)
        check_number("vf_coef", self.vf_coef, 0.0)
        check_number("max_grad_norm", self.max_grad_norm, 0.0, low_inclusive=False, allow_none=True)
        check_int("max_episode_steps", self.max_episode_steps, 1)
        for flag in ("reward_to_go", "unbiased_discount", "normalize_advantage", "use_sde"):
            value = getattr(self, flag)
            if not isinstance(value, (bool, np.bool_)):
                raise ValueError(f"{flag}={value!r} is not allowed: it must be True or False")
        if self.sde_sample_freq != -1:
            check_int("sde_sample_freq", self.sde_sample_freq, 1, "or -1 (one noise matrix per rollout)")

    def _check_policy_kwargs(self, policy_kwargs: dict[str, Any] | None) -> None:
        """
        Reject the policy's gSDE-only options without ``use_sde=True`` (SB3 would ignore or assert on them).

        :param policy_kwargs: The ``policy_kwargs`` given.
        """
        if self.use_sde or not policy_kwargs:
            return
        if policy_kwargs.get("squash_output"):
            raise ValueError(
                "policy_kwargs['squash_output']=True is only allowed with use_sde=True "
                "(SB3 squashes actions with tanh only for gSDE)"
            )
        for name in ("full_std", "use_expln"):
            if name in policy_kwargs:
                raise ValueError(f"policy_kwargs[{name!r}] is a gSDE option: it is only allowed with use_sde=True")

    def _check_action_space(self, action_space: spaces.Space | None) -> None:
        if action_space is None:
            return
        if not isinstance(action_space, SUPPORTED_ACTION_SPACES):
            allowed = ", ".join(space.__name__ for space in SUPPORTED_ACTION_SPACES)
            raise UnsupportedActionSpaceError(
                f"action_space={action_space} is not supported: the policy can only sample from {allowed}"
            )
        if self.use_sde and not isinstance(action_space, spaces.Box):
            raise ValueError(
                f"use_sde=True is not allowed with action_space={action_space}: gSDE needs continuous (Box) "
                "actions; use use_sde=False"
            )

    def set_env(self, env: GymEnv, force_reset: bool = True) -> None:
        """
        Replace the training env (see SB3's ``BaseAlgorithm.set_env``).

        :param env: The new environment; its spaces must match the model's.
        :param force_reset: Force a reset of the new env at the next ``learn()``.
        """
        super().set_env(env, force_reset=force_reset)
        self._time_limited = None

    # ------------------------------------------------------------------ model

    def _setup_model(self) -> None:
        self._setup_lr_schedule()
        self.set_random_seed(self.seed)
        self.policy = self.policy_class(  # type: ignore[assignment]
            self.observation_space, self.action_space, self.lr_schedule, use_sde=self.use_sde, **self.policy_kwargs
        )
        self.policy = self.policy.to(self.device)

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "_time_limited"]

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        return ["policy", "policy.optimizer"], []

    # ------------------------------------------------------------------ collection

    def _env_actions(self, actions: np.ndarray) -> np.ndarray:
        """Map sampled actions to what the env accepts (SB3's rescaling / clipping for ``Box``)."""
        if isinstance(self.action_space, spaces.Box):
            if self.policy.squash_output:
                return self.policy.unscale_action(actions)
            return np.clip(actions, self.action_space.low, self.action_space.high)
        return actions

    def _start_rollout(self, env: VecEnv, callback: BaseCallback) -> None:
        """
        What every rollout starts with: evaluation mode, a fresh gSDE noise matrix, the callback.

        :param env: The training env.
        :param callback: Callback whose ``on_rollout_start`` runs.
        """
        self.policy.set_training_mode(False)
        self._rollout_steps = 0
        if self.use_sde:
            self.policy.reset_noise(env.num_envs)
        callback.on_rollout_start()

    def _step_envs(self, env: VecEnv, callback: BaseCallback) -> EnvStep | None:
        """
        Sample actions from the current policy, step every env once and fire the step callback.

        With gSDE, a new noise matrix is drawn every ``sde_sample_freq`` steps of the rollout.

        :param env: The training env.
        :param callback: Callback whose ``on_step`` runs after the step.
        :return: The step, or None when the callback asked to stop training.
        """
        observations = self._last_obs
        assert observations is not None, "No previous observation was provided"
        steps = self._rollout_steps
        if self.use_sde and self.sde_sample_freq > 0 and steps > 0 and steps % self.sde_sample_freq == 0:
            self.policy.reset_noise(env.num_envs)
        self._rollout_steps += 1
        action_tensor, log_prob_tensor = sample_actions(self.policy, obs_as_tensor(observations, self.device))
        actions = action_tensor.cpu().numpy()
        log_probs = log_prob_tensor.cpu().numpy()
        new_obs, rewards, dones, infos = env.step(self._env_actions(actions))
        self.num_timesteps += env.num_envs
        callback.update_locals(locals())
        if not callback.on_step():
            return None
        self._update_info_buffer(infos, dones)
        self._last_obs = new_obs  # type: ignore[assignment]
        self._last_episode_starts = dones
        return EnvStep(observations, actions, log_probs, rewards, dones, infos)

    def _env_time_limits(self, env: VecEnv) -> np.ndarray:
        """Which envs end their episodes with a ``TimeLimit`` (computed once per env)."""
        if self._time_limited is None or len(self._time_limited) != env.num_envs:
            self._time_limited = np.zeros(env.num_envs, dtype=bool)
            for time_limit in _time_limit_classes():
                try:
                    self._time_limited = np.asarray(env.env_is_wrapped(time_limit), dtype=bool)
                    break
                except Exception:  # e.g. the class cannot be pickled to subprocess envs
                    continue
        return self._time_limited

    def _check_episode_lengths(self, env: VecEnv, episode_steps: np.ndarray, watched: np.ndarray) -> None:
        """
        The ``max_episode_steps`` guard: fail when a watched env without a time limit runs too long.

        :param env: The training env.
        :param episode_steps: Steps taken so far in each env's current episode.
        :param watched: Which envs to check.
        """
        too_long = watched & (episode_steps > self.max_episode_steps) & ~self._env_time_limits(env)
        if too_long.any():
            index = int(np.flatnonzero(too_long)[0])
            try:
                spec = env.get_attr("spec", [index])[0]
                name = spec.id if spec is not None else "unregistered env"
            except (AttributeError, NotImplementedError):
                name = "unknown env"
            raise EpisodeTooLongError(
                f"An episode of env {index} ({name}) has run {int(episode_steps[index])} steps without ending, "
                f"more than max_episode_steps={self.max_episode_steps}, and the env has no time limit. "
                "Wrap the env in gymnasium.wrappers.TimeLimit, or raise max_episode_steps if its episodes "
                "are really that long."
            )

    # ------------------------------------------------------------------ learning

    def learn(
        self: SelfEpisodicPolicyGradient,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 1,
        tb_log_name: str = "run",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfEpisodicPolicyGradient:
        """
        Train: collect, update, repeat, until ``total_timesteps`` env steps have been taken.

        As in SB3, the budget is checked before each cycle and a cycle is never cut short, so
        ``learn(1)`` runs exactly one collect-then-update cycle.

        :param total_timesteps: Number of env steps (summed over envs) to train for, at least.
        :param callback: Callback(s) called at every step, with the state of the algorithm.
        :param log_interval: Number of cycles between two logger dumps.
        :param tb_log_name: The name of the run for TensorBoard logging.
        :param reset_num_timesteps: Whether or not to reset the current timestep number (used in logging).
        :param progress_bar: Display a progress bar using tqdm and rich.
        :return: The trained model.
        """
        self._validate_hyperparameters()
        iteration = 0
        total_timesteps, callback = self._setup_learn(
            total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar
        )
        callback.on_training_start(locals(), globals())
        assert self.env is not None
        while self.num_timesteps < total_timesteps:
            if not self.collect_rollouts(self.env, callback):
                break
            iteration += 1
            self._update_current_progress_remaining(self.num_timesteps, total_timesteps)
            if log_interval is not None and iteration % log_interval == 0:
                self.dump_logs(iteration)
            self.train()
        callback.on_training_end()
        return self

    def collect_rollouts(self, env: VecEnv, callback: BaseCallback) -> bool:
        """
        Collect the episodes of one update.

        :param env: The training env.
        :param callback: Callback fired at each step and at the start and end of the rollout.
        :return: False if the callback stopped training, True otherwise.
        """
        raise NotImplementedError

    def train(self) -> None:
        """Update the policy from the collected episodes."""
        raise NotImplementedError

    def dump_logs(self, iteration: int = 0) -> None:
        """
        Write the rollout and time statistics to the logger and dump it.

        :param iteration: Number of cycles done in this ``learn()`` call.
        """
        assert self.ep_info_buffer is not None and self.ep_success_buffer is not None
        elapsed = max((time.time_ns() - self.start_time) / 1e9, sys.float_info.epsilon)
        fps = int((self.num_timesteps - self._num_timesteps_at_start) / elapsed)
        if iteration > 0:
            self.logger.record("time/iterations", iteration, exclude="tensorboard")
        if len(self.ep_info_buffer) > 0:
            self.logger.record("rollout/ep_rew_mean", safe_mean([info["r"] for info in self.ep_info_buffer]))
            self.logger.record("rollout/ep_len_mean", safe_mean([info["l"] for info in self.ep_info_buffer]))
        if len(self.ep_success_buffer) > 0:
            self.logger.record("rollout/success_rate", safe_mean(self.ep_success_buffer))
        self.logger.record("time/fps", fps)
        self.logger.record("time/time_elapsed", int(elapsed), exclude="tensorboard")
        self.logger.record("time/total_timesteps", self.num_timesteps, exclude="tensorboard")
        self.logger.dump(step=self.num_timesteps)

    # ------------------------------------------------------------------ the update, shared pieces

    def _evaluate_batch(self, batch: EpisodeBatch) -> tuple[th.Tensor, th.Tensor, th.Tensor | None]:
        """
        Values, log-probabilities and entropies of the batch's steps under the current policy.

        :param batch: The episodes.
        :return: ``(values (M,), log_prob (M,), entropy (M,) or None)``, with their autograd graphs.
        """
        observations = obs_as_tensor(batch.observations, self.device)  # type: ignore[arg-type]
        actions = th.as_tensor(batch.actions, device=self.device)
        actions = actions.long() if isinstance(self.action_space, spaces.Discrete) else actions.float()
        values, log_prob, entropy = self.policy.evaluate_actions(observations, actions)  # type: ignore[arg-type]
        return values.flatten(), log_prob, entropy

    def _bootstrapped_rewards(self, batch: EpisodeBatch) -> np.ndarray:
        """
        The batch's rewards, with ``r_{T-1} += gamma V(s_T)`` for truncated episodes when a value baseline is used.

        Without a value function there is nothing to bootstrap with, and a truncated episode is
        treated as if it had ended there (SPEC §3).

        :param batch: The episodes.
        :return: Rewards, float64, shape ``(M,)``.
        """
        rewards = np.array(batch.rewards, dtype=np.float64)
        if self.baseline != "value" or not batch.truncated.any():
            return rewards
        truncated = np.flatnonzero(batch.truncated)
        terminal = take_steps(batch.terminal_observations, truncated)
        with th.no_grad():
            values = self.policy.predict_values(obs_as_tensor(terminal, self.device))  # type: ignore[arg-type]
        rewards[batch.last_step_index[truncated]] += self.gamma * values.flatten().cpu().numpy().astype(np.float64)
        return rewards

    def _compute_baseline(
        self,
        batch: EpisodeBatch,
        returns: np.ndarray,
        values: th.Tensor,
        log_prob: th.Tensor,
        rewards: np.ndarray,
    ) -> np.ndarray:
        """
        The baseline ``b_t`` of SPEC §5 for every step.

        :param batch: The episodes.
        :param returns: ``Ĝ_t``, shape ``(M,)``.
        :param values: ``V(s_t)`` from the value head, shape ``(M,)``.
        :param log_prob: ``log pi(a_t|s_t)`` with its graph (the optimal baseline differentiates it).
        :param rewards: The rewards the returns were computed from.
        :return: ``b_t``, float64, shape ``(M,)``.
        """
        if self.baseline == "none":
            return np.zeros_like(returns)
        if self.baseline == "mean":
            return leave_one_out_baseline(returns, batch.lengths, self.reward_to_go)
        if self.baseline == "optimal":
            norms = episode_score_sq_norms(log_prob, batch.lengths, list(self.policy.parameters()))
            per_episode = optimal_baseline(norms, episode_returns(rewards, batch.lengths, self.gamma))
            return np.repeat(per_episode, batch.lengths)
        return values.detach().cpu().numpy().astype(np.float64)

    def _returns_and_advantages(
        self, batch: EpisodeBatch, values: th.Tensor, log_prob: th.Tensor
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """
        Rewards (bootstrapped where SPEC §3 says so), returns ``Ĝ_t`` and baselines ``b_t`` of the batch.

        :param batch: The episodes.
        :param values: ``V(s_t)``, shape ``(M,)``.
        :param log_prob: ``log pi(a_t|s_t)`` with its graph.
        :return: ``(rewards, returns, baselines)``, each float64 of shape ``(M,)``.
        """
        rewards = self._bootstrapped_rewards(batch)
        self._require_finite("rewards", rewards)
        returns = discounted_returns(rewards, batch.lengths, self.gamma, self.reward_to_go)
        self._require_finite("returns", returns)
        baselines = self._compute_baseline(batch, returns, values, log_prob, rewards)
        self._require_finite(f"baseline ({self.baseline})", baselines)
        return rewards, returns, baselines

    @staticmethod
    def _require_finite(name: str, value: np.ndarray | th.Tensor) -> None:
        finite = bool(th.isfinite(value).all()) if isinstance(value, th.Tensor) else bool(np.isfinite(value).all())
        if not finite:
            raise NonFiniteLossError(
                f"{name} became non-finite (NaN or inf); the update was skipped and the parameters "
                "are unchanged. Check the env's rewards and the learning rate."
            )

    def _value_loss(self, values: th.Tensor, returns: np.ndarray) -> th.Tensor:
        """Mean squared error of the value head against ``Ĝ_t`` (zero when no value baseline is used)."""
        if self.baseline != "value":
            return th.zeros((), device=self.device)
        targets = th.as_tensor(returns, device=self.device, dtype=values.dtype)
        return th.nn.functional.mse_loss(values, targets)

    @staticmethod
    def _entropy_loss(entropy: th.Tensor | None, log_prob: th.Tensor) -> th.Tensor:
        """Minus the mean entropy (estimated by ``-log pi`` when the distribution has no closed form)."""
        if entropy is None:
            return log_prob.mean()
        return -entropy.mean()

    def _apply_update(
        self,
        policy_loss: th.Tensor,
        value_loss: th.Tensor,
        entropy_loss: th.Tensor,
    ) -> float:
        """
        One optimiser step on ``policy_loss + ent_coef * entropy_loss + vf_coef * value_loss``.

        Every term and the gradient are checked before the step: if any is not finite, a
        :class:`NonFiniteLossError` is raised and no parameter (nor optimiser state) changes.

        :param policy_loss: The surrogate loss.
        :param value_loss: The value-function loss.
        :param entropy_loss: Minus the mean entropy.
        :return: The gradient norm before clipping.
        """
        for name, term in (("policy_loss", policy_loss), ("value_loss", value_loss), ("entropy_loss", entropy_loss)):
            self._require_finite(name, term)
        loss = policy_loss + self.ent_coef * entropy_loss + self.vf_coef * value_loss
        self.policy.optimizer.zero_grad()
        loss.backward()
        grads = [p.grad for p in self.policy.parameters() if p.grad is not None]
        grad_norm = (
            th.linalg.vector_norm(th.stack([th.linalg.vector_norm(g) for g in grads])) if grads else th.zeros(())
        )
        self._require_finite("gradient", grad_norm)
        if self.max_grad_norm is not None:
            th.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
        self._guarded_step()
        self._n_updates += 1
        self.logger.record("train/policy_loss", policy_loss.item())
        self.logger.record("train/value_loss", value_loss.item())
        self.logger.record("train/entropy_loss", entropy_loss.item())
        self.logger.record("train/loss", loss.item())
        self.logger.record("train/grad_norm", grad_norm.item())
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        if hasattr(self.policy, "log_std"):
            self.logger.record("train/std", th.exp(self.policy.log_std).mean().item())
        return float(grad_norm)

    def _guarded_step(self) -> None:
        """
        ``optimizer.step()``, undone if it makes a parameter non-finite (e.g. a huge learning rate).

        The parameters and the optimiser state are restored before :class:`NonFiniteLossError` is raised.
        """
        optimizer = self.policy.optimizer
        parameters = list(self.policy.parameters())
        saved_parameters = [p.detach().clone() for p in parameters]
        saved_state = copy.deepcopy(optimizer.state_dict())
        error: Exception | None = None
        try:
            optimizer.step()
        except RuntimeError as exc:  # e.g. an overflow inside the optimiser
            error = exc
        if error is None and all(bool(th.isfinite(p).all()) for p in parameters):
            return
        with th.no_grad():
            for parameter, saved in zip(parameters, saved_parameters):
                parameter.copy_(saved)
        optimizer.load_state_dict(saved_state)
        raise NonFiniteLossError(
            "the parameters became non-finite (NaN or inf) in the optimiser step; the step was undone and the "
            "parameters and optimiser state are unchanged. Lower the learning rate or set max_grad_norm."
        ) from error

    def _update_current_progress_remaining(self, num_timesteps: int, total_timesteps: int) -> None:
        # A cycle of whole episodes can overshoot the budget; schedules never see a negative progress.
        super()._update_current_progress_remaining(num_timesteps, total_timesteps)
        self._current_progress_remaining = max(0.0, self._current_progress_remaining)

    def _log_value_fit(self, values: th.Tensor, returns: np.ndarray) -> None:
        """Log how much of the returns' variance the value head explains (value baseline only)."""
        if self.baseline == "value":
            self.logger.record(
                "train/explained_variance",
                float(explained_variance(values.detach().cpu().numpy(), returns.astype(np.float32))),
            )
