"""OffPolicyPG: Monte-Carlo policy gradient that reuses past episodes through importance weights."""

from __future__ import annotations

import dataclasses
import io
import pathlib
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.save_util import load_from_pkl, save_to_pkl
from stable_baselines3.common.type_aliases import GymEnv, Schedule

from sb3_reinforce.common.collector import EpisodeCollector
from sb3_reinforce.common.episode_replay_buffer import EpisodeReplayBuffer
from sb3_reinforce.common.episodes import EpisodeBatch
from sb3_reinforce.common.episodic_algorithm import EpisodicPolicyGradient
from sb3_reinforce.common.estimator import IMPORTANCE_WEIGHTS, EstimatorSettings, bootstrapped_rewards
from sb3_reinforce.common.importance_weights import (
    approximate_kl,
    effective_sample_size,
    importance_ratios,
    truncated_fraction,
)
from sb3_reinforce.common.returns import discounted_returns
from sb3_reinforce.common.validation import check_choice, check_int, check_number
from sb3_reinforce.offpolicy_pg.policies import (
    CnnLstmPolicy,
    CnnPolicy,
    MlpLstmPolicy,
    MlpPolicy,
    MultiInputLstmPolicy,
    MultiInputPolicy,
)


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

    :param policy: The policy model to use (``MlpPolicy``, ``CnnPolicy``, ``MultiInputPolicy``; the recurrent
        ``MlpLstmPolicy``, ``CnnLstmPolicy``, ``MultiInputLstmPolicy``, sb3-contrib's LSTM policies, whose
        update backpropagates through whole episodes: ``docs/recurrent.md``) or an ``ActorCriticPolicy`` subclass.
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
    :param vf_epochs: With ``baseline="value"``, fit the value head, with an optimiser of its own,
        for this many epochs of minibatches on the episodes that **leave** the replay buffer (0: the
        value head learns only through ``vf_coef``).  An episode still stored is never in the fit,
        so the baseline applied to a sampled episode never depends on that episode's own returns,
        however often it is replayed.  Needs ``vf_coef=0`` (its term would fit the head on the
        stored episodes it is applied to).
    :param vf_batch_size: Steps per minibatch of the value fit (None: all the evicted steps).
    :param vf_learning_rate: Learning rate of the value fit, or a function of the remaining progress
        (None: ``learning_rate``).
    :param max_grad_norm: Clip the gradient to this norm before each step (None: no clipping).
    :param target_kl: Stop a rollout's ``gradient_steps`` early when the policy has moved too far: after
        each step, the divergence ``KL(pi_old || pi)`` of the current policy from the one the steps began
        with (the one that collected the rollout) is estimated on the episodes of the latest rollout, and
        the remaining steps are skipped once it exceeds ``1.5 * target_kl``, as in SB3's PPO; logged as
        ``train/approx_kl`` (None: no limit).
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
        vf_epochs: int = 0,
        vf_batch_size: int | None = None,
        vf_learning_rate: float | Schedule | None = None,
        max_grad_norm: float | None = None,
        target_kl: float | None = None,
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
        # Set before the base class validates the hyperparameters.
        self.batch_episodes, self.buffer_size, self.gradient_steps = batch_episodes, buffer_size, gradient_steps
        self.importance_weights, self.truncation = importance_weights, truncation
        self.target_kl = target_kl
        self._rollout_episodes = 0  # episodes stored by the latest rollout (for target_kl)
        self.replay_buffer = None
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

    # ------------------------------------------------------------------ checks and setup

    def _validate_hyperparameters(self) -> None:
        """Raise a ``ValueError`` naming the first invalid hyperparameter (the shared ones, then OffPolicyPG's)."""
        super()._validate_hyperparameters()
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
        check_number("target_kl", self.target_kl, 0.0, low_inclusive=False, allow_none=True)
        if self.vf_epochs > 0 and self.vf_coef != 0:
            raise ValueError(
                f"vf_coef={self.vf_coef!r} is not allowed with vf_epochs={self.vf_epochs}: it must be 0. The value "
                "fit of OffPolicyPG uses only the episodes that left the replay buffer, so that the baseline of a "
                "replayed episode never depends on its own returns; vf_coef's term would fit the value head on the "
                "stored episodes themselves"
            )

    def _setup_model(self) -> None:
        super()._setup_model()
        self.replay_buffer = EpisodeReplayBuffer(
            self.buffer_size,
            self.observation_space,
            self.action_space,
            device=self.device,
            n_envs=self.n_envs,
            mask_size=self._mask_size(),
        )

    def _make_collector(self, n_envs: int, mask_size: int | None) -> EpisodeCollector:
        """
        The rule of docs/maths.md §2.2: envs are not reset between rollouts; a rollout ends
        once ``n_episodes`` more episodes have ended, and the episodes still running continue in the next.
        Observations and rewards are recorded before ``VecNormalize`` (the buffer normalises them when
        it samples), and an episode that outgrows the buffer stops training as soon as it does.
        """
        return EpisodeCollector(
            n_envs, fresh_start=False, record_original=True, capacity=self.buffer_size, mask_size=mask_size
        )

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
        self._rollout_episodes = 0  # no rollout of this model's is in it yet

    # ------------------------------------------------------------------ collection and update

    def _store_episodes(self, episodes: EpisodeBatch) -> None:
        assert self.replay_buffer is not None
        evicted = self.replay_buffer.add_episodes(episodes, env=self._vec_normalize_env)
        if self.vf_epochs > 0 and evicted is not None:  # never an episode that can still be sampled
            rewards = bootstrapped_rewards(evicted, self.gamma, self._predict_values)
            self._fit_value(
                evicted.observations, discounted_returns(rewards, evicted.lengths, self.gamma, self.reward_to_go)
            )
            self.logger.record("rollout/vf_fit_episodes", evicted.n_episodes)
        self._rollout_episodes = episodes.n_episodes
        self.logger.record("rollout/new_episodes", episodes.n_episodes)
        self.logger.record("rollout/new_steps", episodes.n_steps)
        self.logger.record("rollout/buffer_episodes", self.replay_buffer.n_episodes)
        self.logger.record("rollout/buffer_transitions", self.replay_buffer.size())

    def train(self) -> None:
        """
        ``gradient_steps`` updates (docs/maths.md §6), each on ``batch_episodes`` episodes from the buffer;
        with ``target_kl``, fewer once the policy has moved that far from the latest rollout's.
        """
        if self.replay_buffer is None:
            raise RuntimeError("train() needs episodes in the replay buffer: call learn(), which collects them first")
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        stats: dict[str, list[float]] = {}
        steps_taken = 0
        # the latest rollout's episodes and their log-probabilities before the updates, for target_kl
        rollout = self._rollout_log_probs() if self.target_kl is not None else None
        for _ in range(self.gradient_steps):
            batch = self.replay_buffer.sample(self.batch_episodes, env=self._vec_normalize_env)
            evaluation = self._evaluate_episodes(batch)  # log pi(a_t|s_t), V(s_t), entropy
            # rho_t = pi(a_t|s_t) / mu(a_t|s_t), with mu the parameters that played the step
            ratios = importance_ratios(evaluation.log_prob.detach().cpu().numpy(), batch.log_probs)
            losses = self._losses(batch, evaluation, ratios)  # weights, returns, baselines, surrogate loss
            self._gradient_step(losses, evaluation)
            steps_taken += 1
            ess = effective_sample_size(losses.weights)
            step_stats = {
                "train/n_episodes": float(batch.n_episodes),
                "train/is_weight_mean": float(np.mean(losses.weights)),
                "train/is_weight_max": float(np.max(losses.weights)),
                "train/truncated_fraction": truncated_fraction(ratios, self.truncation),
                "train/ess": ess,
                "train/ess_fraction": ess / max(batch.n_steps, 1),
            }
            for key, value in step_stats.items():
                stats.setdefault(key, []).append(value)
            if self.target_kl is not None and rollout is not None:
                approx_kl = self._rollout_kl(*rollout)
                self.logger.record("train/approx_kl", approx_kl)
                if approx_kl > 1.5 * self.target_kl:
                    if self.verbose >= 1:
                        print(
                            f"Early stopping after gradient step {steps_taken} of {self.gradient_steps}: "
                            f"approx_kl {approx_kl:.4f} > 1.5 * target_kl ({self.target_kl})"
                        )
                    break
        for key, values in stats.items():
            self.logger.record(key, float(np.max(values)) if key.endswith("_max") else float(np.mean(values)))
        self.logger.record("train/gradient_steps", steps_taken)

    def _rollout_log_probs(self) -> tuple[EpisodeBatch, th.Tensor]:
        """The latest rollout's episodes (all stored ones before any rollout) and their log-probabilities now."""
        assert self.replay_buffer is not None
        count = min(self._rollout_episodes, self.replay_buffer.n_episodes) or self.replay_buffer.n_episodes
        episodes = self.replay_buffer.newest_episodes(count, env=self._vec_normalize_env)
        with th.no_grad():
            return episodes, self._evaluate_episodes(episodes).log_prob

    def _rollout_kl(self, episodes: EpisodeBatch, old_log_prob: th.Tensor) -> float:
        """
        ``KL(pi_old || pi)`` estimated on ``episodes``: how far the updates have moved the policy.

        :param episodes: The latest rollout's episodes.
        :param old_log_prob: Their actions' log-probabilities before the updates (under ``pi_old``).
        :return: ``mean((r_t - 1) - log r_t)`` with ``r_t = pi(a_t|s_t) / pi_old(a_t|s_t)``.
        """
        with th.no_grad():
            log_prob = self._evaluate_episodes(episodes).log_prob
        return approximate_kl(importance_ratios(log_prob.cpu().numpy(), old_log_prob.cpu().numpy()))

    def _estimator_settings(self) -> EstimatorSettings:
        return dataclasses.replace(
            super()._estimator_settings(), importance_weights=self.importance_weights, truncation=self.truncation
        )
