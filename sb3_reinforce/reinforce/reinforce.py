"""REINFORCE: Monte-Carlo policy gradient from whole episodes."""

from __future__ import annotations

from typing import Any, TypeVar

import numpy as np
import torch as th
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule
from stable_baselines3.common.vec_env import VecEnv

from sb3_reinforce.common.episodes import EpisodeBatch, take_steps
from sb3_reinforce.common.episodic_algorithm import EpisodicPolicyGradient, stack_steps
from sb3_reinforce.common.returns import discount_weights
from sb3_reinforce.common.surrogate import standardize, surrogate_loss
from sb3_reinforce.reinforce.policies import CnnPolicy, MlpPolicy, MultiInputPolicy

SelfREINFORCE = TypeVar("SelfREINFORCE", bound="REINFORCE")


class REINFORCE(EpisodicPolicyGradient):
    """
    REINFORCE (Williams, 1992): Monte-Carlo policy gradient with reward-to-go, discounting and baselines.

    Each update uses ``n_episodes`` complete episodes sampled with the current policy: every env
    is reset, and the batch is the first ``n_episodes`` episodes to *start* (ties broken by env
    index); collection ends when all of them have ended.  The update is one optimiser step on

    ``L = -(1/N) sum_i sum_t lambda_t log pi(a_t|s_t) (Ĝ_t - b_t)  - ent_coef * entropy + vf_coef * value_loss``

    (a mean over episodes and a sum over steps).  See ``docs/reinforce.md`` for the estimator and
    the bias of every option.

    :param policy: The policy model to use (``MlpPolicy``, ``CnnPolicy``, ``MultiInputPolicy``) or an
        ``ActorCriticPolicy`` subclass.
    :param env: The environment to learn from (if registered in Gym, can be str).
    :param learning_rate: Learning rate of the optimiser (Adam by default); it can be a function
        of the current progress remaining (from 1 to 0).
    :param n_episodes: Number of complete episodes per update (``N``); at least 2 with the
        ``"mean"`` and ``"optimal"`` baselines.
    :param gamma: Discount factor, in ``[0, 1]``.
    :param baseline: What is subtracted from the returns: ``"none"``; ``"mean"``, the mean return
        of the *other* episodes of the batch at the same time step (leave-one-out);
        ``"optimal"``, the variance-minimising constant ``E[||g||^2 R] / E[||g||^2]`` estimated
        from the other episodes; ``"value"``, the policy's value head ``V(s_t)``, fitted to the
        returns. All leave the gradient unbiased.
    :param reward_to_go: If True, the log-probability of action ``a_t`` is weighted by the
        discounted rewards from step ``t`` on; if False, by the episode's whole discounted return.
    :param unbiased_discount: If True, with reward-to-go, step ``t``'s term is multiplied by
        ``gamma^t``, which makes the update an unbiased estimate of the gradient of
        ``E[sum_t gamma^t r_t]``; if False (common practice), it estimates the gradient of the usual
        discounted surrogate.  Without reward-to-go the whole return is already discounted from the
        episode's start and the update is unbiased for that gradient with either setting.
    :param normalize_advantage: Standardise ``Ĝ_t - b_t`` over all steps of the batch (this
        rescales the gradient by a batch-dependent factor: no longer unbiased, often faster).
    :param ent_coef: Entropy coefficient of the loss.
    :param vf_coef: Value-function coefficient of the loss (used with ``baseline="value"``).
    :param max_grad_norm: Clip the gradient to this norm before the step (None: no clipping).
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

    def __init__(
        self,
        policy: str | type[MlpPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 1e-2,
        n_episodes: int = 8,
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
        self._envs_just_reset = False

    def collect_rollouts(self, env: VecEnv, callback: BaseCallback) -> bool:
        """
        Collect one batch of ``n_episodes`` complete episodes (SPEC §2) into ``self.rollout_buffer``.

        Every env starts a fresh episode: the envs are reset (unless SB3 has just reset them at the
        start of ``learn()``, and no step was taken since).  Each env's episode gets a batch slot in
        order of its start (ties broken by env index) until ``n_episodes`` slots are taken; steps of episodes without a
        slot are simulated but unused (counted in ``num_timesteps`` and logged as
        ``rollout/unused_steps``).  Collection ends when every batch episode has ended.

        :param env: The training env.
        :param callback: Callback fired at each step and at the start and end of the rollout.
        :return: False if the callback stopped training, True otherwise.
        """
        self._start_rollout(env, callback)
        n_envs, n_episodes = env.num_envs, self.n_episodes
        if not self._envs_just_reset:
            self._last_obs = env.reset()  # type: ignore[assignment]
            self._last_episode_starts = np.ones(n_envs, dtype=bool)
        self._envs_just_reset = False

        # slot[e]: batch episode that env e is running, or -1 when its steps are unused.
        slot = np.where(np.arange(n_envs) < n_episodes, np.arange(n_envs), -1)
        n_started = min(n_envs, n_episodes)
        n_running = n_started
        episode_steps = np.zeros(n_envs, dtype=np.int64)
        truncated = np.zeros(n_episodes, dtype=bool)
        terminal: list[Any] = [None] * n_episodes
        steps, slots = [], []
        unused_steps = 0

        while n_running > 0:
            step = self._step_envs(env, callback)
            if step is None:
                return False
            steps.append(step)
            slots.append(slot.copy())
            unused_steps += int((slot < 0).sum())
            episode_steps += 1
            self._check_episode_lengths(env, episode_steps, slot >= 0)
            for index in np.flatnonzero(step.dones):
                info = step.infos[index]
                episode_steps[index] = 0
                if slot[index] >= 0:
                    truncated[slot[index]] = bool(info.get("TimeLimit.truncated", False))
                    terminal[slot[index]] = info.get("terminal_observation")
                    n_running -= 1
                if n_started < n_episodes:
                    slot[index] = n_started
                    n_started += 1
                    n_running += 1
                else:
                    slot[index] = -1

        self.rollout_buffer = self._assemble_batch(steps, np.stack(slots), truncated, terminal)
        self.logger.record("rollout/unused_steps", unused_steps)
        self.logger.record("rollout/batch_steps", self.rollout_buffer.n_steps)
        callback.update_locals(locals())
        callback.on_rollout_end()
        return True

    @staticmethod
    def _assemble_batch(
        steps: list[Any], slots: np.ndarray, truncated: np.ndarray, terminal: list[Any]
    ) -> EpisodeBatch:
        """
        Gather the batch episodes' steps from the ``(T, n_envs)`` record into the flat episode layout.

        :param steps: The ``EnvStep`` of every collection step.
        :param slots: Batch slot of every (step, env) cell, -1 for unused cells.
        :param truncated: Whether each batch episode ended by truncation.
        :param terminal: Final observation of each batch episode.
        :return: The batch.
        """
        time_idx, env_idx = np.nonzero(slots >= 0)
        cell_slots = slots[time_idx, env_idx]
        order = np.argsort(cell_slots, kind="stable")  # by episode, then by time
        cells = (time_idx[order], env_idx[order])
        observations = take_steps(stack_steps([s.observations for s in steps]), cells)
        actions = np.stack([s.actions for s in steps])[cells]
        rewards = np.stack([s.rewards for s in steps]).astype(np.float64)[cells]
        log_probs = np.stack([s.log_probs for s in steps])[cells]
        lengths = np.bincount(cell_slots, minlength=len(truncated))
        return EpisodeBatch(
            observations=observations,
            actions=actions,
            rewards=rewards,
            lengths=lengths,
            truncated=truncated,
            terminal_observations=stack_steps(terminal),
            log_probs=log_probs,
        )

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
        # When SB3 has just reset the envs, the first collection starts from that reset rather than
        # resetting again: a second reset would not use the seeds given to set_random_seed().
        self._envs_just_reset = self._last_obs is not observations_before
        return result

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "_envs_just_reset"]

    def train(self) -> None:
        """One optimiser step on the REINFORCE loss of SPEC §4 over the collected batch."""
        batch = self.rollout_buffer
        assert batch is not None, "collect_rollouts() must run before train()"
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)

        values, log_prob, entropy = self._evaluate_batch(batch)
        _, returns, baselines = self._returns_and_advantages(batch, values, log_prob)
        advantages = th.as_tensor(returns - baselines, device=self.device)
        if self.normalize_advantage:
            advantages = standardize(advantages)
        weights = th.as_tensor(
            discount_weights(batch.lengths, self.gamma, self.unbiased_discount, self.reward_to_go), device=self.device
        )
        policy_loss = surrogate_loss(log_prob, advantages, weights, batch.n_episodes)

        self._apply_update(policy_loss, self._value_loss(values, returns), self._entropy_loss(entropy, log_prob))
        self._log_value_fit(values, returns)
        self.logger.record("train/n_episodes", batch.n_episodes)

    def learn(
        self: SelfREINFORCE,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 1,
        tb_log_name: str = "REINFORCE",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfREINFORCE:
        return super().learn(
            total_timesteps=total_timesteps,
            callback=callback,
            log_interval=log_interval,
            tb_log_name=tb_log_name,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )
