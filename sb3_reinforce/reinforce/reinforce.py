"""REINFORCE: Monte-Carlo policy gradient from whole episodes."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.type_aliases import GymEnv, Schedule

from sb3_reinforce.common.collector import EpisodeCollector
from sb3_reinforce.common.episodes import EpisodeBatch
from sb3_reinforce.common.episodic_algorithm import EpisodicPolicyGradient
from sb3_reinforce.reinforce.policies import (
    CnnLstmPolicy,
    CnnPolicy,
    MlpLstmPolicy,
    MlpPolicy,
    MultiInputLstmPolicy,
    MultiInputPolicy,
)


class REINFORCE(EpisodicPolicyGradient):
    """
    REINFORCE (Williams, 1992): Monte-Carlo policy gradient with reward-to-go, discounting and baselines.

    Each update uses ``n_episodes`` complete episodes sampled with the current policy: every env
    is reset, and the batch is the first ``n_episodes`` episodes to *start* (ties broken by env
    index); collection ends when all of them have ended.  The update is one optimiser step on

    ``L = -(1/N) sum_i sum_t lambda_t log pi(a_t|s_t) (Ĝ_t - b_t)  - ent_coef * entropy + vf_coef * value_loss``

    (a mean over episodes and a sum over steps).  See ``docs/reinforce.md`` for the estimator and
    the bias of every option.

    :param policy: The policy model to use (``MlpPolicy``, ``CnnPolicy``, ``MultiInputPolicy``; the recurrent
        ``MlpLstmPolicy``, ``CnnLstmPolicy``, ``MultiInputLstmPolicy``, sb3-contrib's LSTM policies, whose
        update backpropagates through whole episodes: ``docs/recurrent.md``) or an ``ActorCriticPolicy`` subclass.
    :param env: The environment to learn from (if registered in Gym, can be str).
    :param learning_rate: Learning rate of the optimiser (Adam by default); it can be a function
        of the current progress remaining (from 1 to 0).
    :param n_episodes: Number of complete episodes per update (``N``); at least 2 with the
        ``"mean"`` and optimal baselines.
    :param gamma: Discount factor, in ``[0, 1]``.
    :param baseline: What is subtracted from the returns: ``"none"``; ``"mean"``, the mean return
        of the *other* episodes of the batch at the same time step (leave-one-out); the
        variance-minimising baselines, each estimated from the other episodes with every step's
        score ``g_t`` (docs/maths.md §5.4): ``"optimal"`` or ``"optimal_constant"``, one constant
        ``E[sum_t ||g_t||^2 Ĝ_t] / E[sum_t ||g_t||^2]``; ``"optimal_time"``, one per time step,
        ``E[||g_t||^2 Ĝ_t] / E[||g_t||^2]``; ``"optimal_coordinate"``, one per time step and
        parameter, ``E[g_{t,k}^2 Ĝ_t] / E[g_{t,k}^2]`` (their cost grows with the square of the
        batch's steps); ``"value"``, the policy's value head ``V(s_t)``, fitted to the returns.
        All leave the gradient unbiased.
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
    :param vf_epochs: With ``baseline="value"``, after each update fit the value head to the
        batch's returns for this many epochs of minibatches, with an optimiser of its own (0: the
        value head learns only through ``vf_coef``).  The fit comes after the update that used the
        baseline, so a batch's baseline never depends on that batch and the gradient stays unbiased.
        Only the value-only parameters move (value head, critic layers, the critic's own features
        extractor; not a features extractor shared with the actor).
    :param vf_batch_size: Steps per minibatch of the value fit (None: the whole batch).
    :param vf_learning_rate: Learning rate of the value fit, or a function of the remaining progress
        (None: ``learning_rate``).
    :param max_grad_norm: Clip the gradient to this norm before the step (None: no clipping).
    :param max_episode_steps: Guard against episodes that never end: if an env without a time limit
        runs an episode past this many steps, training stops with an error.
    :param recurrent_chunk_steps: With a recurrent policy (``MlpLstmPolicy`` ...), the update runs every
        episode through the LSTM from its first step; it evaluates the episodes in chunks of at most this
        many steps (episodes × the chunk's longest length; an episode longer than that is a chunk of its
        own) and accumulates their gradients, recomputing each chunk in the backward pass, so that the
        memory held is one chunk's.  The gradient is the same for every value.  None: the whole batch at
        once.  Ignored by feedforward policies.  See ``docs/recurrent.md``.
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
        "MlpLstmPolicy": MlpLstmPolicy,
        "CnnLstmPolicy": CnnLstmPolicy,
        "MultiInputLstmPolicy": MultiInputLstmPolicy,
    }

    #: The batch of the last rollout (SB3's on-policy algorithms keep theirs under the same name).
    rollout_buffer: EpisodeBatch | None

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
        vf_epochs: int = 0,
        vf_batch_size: int | None = None,
        vf_learning_rate: float | Schedule | None = None,
        max_grad_norm: float | None = None,
        max_episode_steps: int = 100_000,
        recurrent_chunk_steps: int | None = 20_000,
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
            vf_epochs=vf_epochs,
            vf_batch_size=vf_batch_size,
            vf_learning_rate=vf_learning_rate,
            max_grad_norm=max_grad_norm,
            max_episode_steps=max_episode_steps,
            recurrent_chunk_steps=recurrent_chunk_steps,
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
        self.rollout_buffer = None

    def _make_collector(self, n_envs: int, mask_size: int | None) -> EpisodeCollector:
        """
        The batch rule of docs/maths.md §2.1: every env is reset at each rollout (unless SB3 has just reset
        them at the start of ``learn()``); the batch is the first ``n_episodes`` episodes to start (ties
        broken by env index), and collection ends when all of them have ended.  Steps of the other
        episodes are simulated but unused: they count in ``num_timesteps`` and are logged as
        ``rollout/unused_steps``.
        """
        return EpisodeCollector(n_envs, fresh_start=True, mask_size=mask_size)

    def _store_episodes(self, episodes: EpisodeBatch) -> None:
        self.rollout_buffer = episodes
        self.logger.record("rollout/batch_steps", episodes.n_steps)

    def train(self) -> None:
        """One optimiser step on the REINFORCE loss (docs/maths.md §4) over the collected batch."""
        batch = self.rollout_buffer
        if batch is None:
            raise RuntimeError("train() needs a batch of episodes: call learn(), which collects them first")
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)

        evaluation = self._evaluate_episodes(batch)  # log pi(a_t|s_t), V(s_t), entropy
        on_policy = np.ones(batch.n_steps)  # rho_t = 1: the episodes were played by the current policy
        losses = self._losses(batch, evaluation, on_policy)  # returns, baselines, surrogate loss
        self._gradient_step(losses, evaluation)
        self.logger.record("train/n_episodes", batch.n_episodes)
        if self.vf_epochs > 0:  # after the update: this batch's baseline was V before seeing it
            self._fit_value(batch.observations, losses.value_targets)
