"""Base class of REINFORCE and OffPolicyPG: what joins the episode pipeline to Stable-Baselines3.

SB3's ``OnPolicyAlgorithm`` is built around a fixed number of steps per env (``n_steps``) and a
fixed-size ``RolloutBuffer``; these algorithms collect whole episodes instead, so they derive from
``BaseAlgorithm`` and reuse SB3's policies, callbacks, logger and save/load unchanged.  This module
holds the SB3 glue only: the constructor and its checks, the learn loop, and the calls into the
pipeline's stages, each in a module of its own (docs/architecture.md):

- :mod:`~sb3_reinforce.common.collector` steps the envs and hands over whole episodes;
- :mod:`~sb3_reinforce.common.estimator` turns episodes into loss terms;
- :mod:`~sb3_reinforce.common.gradient_step` takes the optimiser step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.policies import (
    ActorCriticCnnPolicy,
    ActorCriticPolicy,
    BasePolicy,
    MultiInputActorCriticPolicy,
)
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule
from stable_baselines3.common.utils import explained_variance, obs_as_tensor, update_learning_rate
from stable_baselines3.common.vec_env import VecEnv

from sb3_reinforce.common.baselines import BASELINES, OPTIMAL_BASELINES
from sb3_reinforce.common.collector import EpisodeCollector
from sb3_reinforce.common.episodes import EpisodeBatch, Observations, take_steps
from sb3_reinforce.common.errors import UnsupportedActionSpaceError, UnsupportedObservationSpaceError
from sb3_reinforce.common.estimator import (
    EstimatorSettings,
    LossTerms,
    PolicyEvaluation,
    policy_gradient_losses,
)
from sb3_reinforce.common.gradient_step import GuardedStep, gradient_step
from sb3_reinforce.common.masking import (
    check_maskable_action_space,
    env_has_action_masks,
    mask_size,
    masked_policy_class,
    policy_takes_masks,
)
from sb3_reinforce.common.recurrent import evaluate_episode_sequences, history_value_function, is_recurrent
from sb3_reinforce.common.validation import check_choice, check_int, check_number
from sb3_reinforce.common.value_fit import fit_value_function, value_only_parameters

SelfEpisodicPolicyGradient = TypeVar("SelfEpisodicPolicyGradient", bound="EpisodicPolicyGradient")

#: Action spaces whose distributions SB3's actor-critic policies can sample and score.
SUPPORTED_ACTION_SPACES: tuple[type[spaces.Space], ...] = (
    spaces.Box,
    spaces.Discrete,
    spaces.MultiDiscrete,
    spaces.MultiBinary,
)
#: Observation spaces SB3's policies can read (``Dict`` spaces of these, one level deep).
SUPPORTED_OBSERVATION_SPACES: tuple[type[spaces.Space], ...] = (
    spaces.Box,
    spaces.Discrete,
    spaces.MultiDiscrete,
    spaces.MultiBinary,
    spaces.Dict,
)


class EpisodicPolicyGradient(BaseAlgorithm):
    """
    Policy gradient from complete episodes (the shared machinery; use ``REINFORCE`` or ``OffPolicyPG``).

    :param policy: The policy model to use (``MlpPolicy``, ``CnnPolicy``, ``MultiInputPolicy``, or the recurrent
        ``MlpLstmPolicy``, ``CnnLstmPolicy``, ``MultiInputLstmPolicy``) or class.
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
    :param vf_epochs: Epochs of the value head's own fit (value baseline only; 0: none).
    :param vf_batch_size: Steps per minibatch of that fit (None: all of them).
    :param vf_learning_rate: Learning rate of that fit (None: ``learning_rate``).
    :param max_grad_norm: Clip the gradient to this norm (None: no clipping).
    :param max_episode_steps: Stop with an error when an env without a time limit runs an episode longer than this.
    :param recurrent_chunk_steps: With a recurrent policy, most padded steps evaluated at once in the update
        (None: the whole batch); memory stays bounded, the gradient is unchanged.
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
    allowed_baselines: ClassVar[tuple[str, ...]] = BASELINES
    #: Baselines that compare an episode with the other episodes of its batch (need ``n_episodes >= 2``).
    leave_one_out_baselines: ClassVar[tuple[str, ...]] = ("mean", *OPTIMAL_BASELINES)

    policy: ActorCriticPolicy
    #: Whether the model applies the env's action masks (docs/masking.md): set when the env it is
    #: built with exposes ``action_masks()``, and saved with the model.
    use_masking: bool = False

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
        vf_epochs: int,
        vf_batch_size: int | None,
        vf_learning_rate: float | Schedule | None,
        max_grad_norm: float | None,
        max_episode_steps: int,
        recurrent_chunk_steps: int | None,
        use_sde: bool,
        sde_sample_freq: int,
        stats_window_size: int,
        tensorboard_log: str | None,
        monitor_wrapper: bool,
        policy_kwargs: dict[str, Any] | None,
        verbose: int,
        seed: int | None,
        device: th.device | str,
        _init_setup_model: bool,
    ):
        # Collection (docs/maths.md §2).
        self.n_episodes, self.max_episode_steps = n_episodes, max_episode_steps
        # Recurrent policies: how much of a batch the update holds in memory at once (docs/recurrent.md).
        self.recurrent_chunk_steps = recurrent_chunk_steps
        self.use_sde, self.sde_sample_freq = use_sde, sde_sample_freq
        # The estimator (§3-5).
        self.gamma, self.baseline = gamma, baseline
        self.reward_to_go, self.unbiased_discount = reward_to_go, unbiased_discount
        self.normalize_advantage = normalize_advantage
        # The loss and the optimiser step.
        self.ent_coef, self.vf_coef, self.max_grad_norm = ent_coef, vf_coef, max_grad_norm
        # The value head's own fit (docs/maths.md §5.3).
        self.vf_epochs, self.vf_batch_size, self.vf_learning_rate = vf_epochs, vf_batch_size, vf_learning_rate
        self.vf_optimizer: th.optim.Optimizer | None = None
        self._vf_guard = GuardedStep()
        # A policy given by name may become its maskable counterpart (docs/masking.md); a class is used as given.
        self._policy_alias = isinstance(policy, str)
        # Whether the current learn() applies action masks (learn()'s use_masking).
        self._use_masking_arg: bool | None = None
        # Bad hyperparameters are reported before the env is even built.
        if not callable(learning_rate):
            check_number("learning_rate", learning_rate, 0.0, low_inclusive=False)
        self._validate_hyperparameters()
        self._check_policy_kwargs(policy_kwargs)
        super().__init__(
            policy,
            env,
            learning_rate,
            support_multi_env=True,
            policy_kwargs=policy_kwargs,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            verbose=verbose,
            device=device,
            # The gSDE action-space check is ours (its message names the parameter), so the base class
            # is told use_sde=False and the value is restored just after.
            use_sde=False,
            sde_sample_freq=sde_sample_freq,
            monitor_wrapper=monitor_wrapper,
            seed=seed,
        )
        self.use_sde = use_sde
        self._check_recurrent_options()
        self.use_masking = self.env is not None and env_has_action_masks(self.env)
        # SB3's load() builds the model without an env, hence without spaces yet.
        self._check_action_space(getattr(self, "action_space", None))
        if _init_setup_model:  # load() restores the saved policy class, then checks the env at learn()
            self._check_masking_policy()
        self._collector: EpisodeCollector | None = None
        self._step_guard = GuardedStep()
        if _init_setup_model:
            self._setup_model()

    # ------------------------------------------------------------------ checks

    def _validate_hyperparameters(self) -> None:
        """
        Raise a ``ValueError`` naming the first invalid hyperparameter.

        Subclasses extend this with their own parameters.
        """
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
        check_int("vf_epochs", self.vf_epochs, 0)
        if self.vf_epochs > 0 and self.baseline != "value":
            raise ValueError(
                f"vf_epochs={self.vf_epochs} is only allowed with baseline='value' (it fits the value head); "
                f"got baseline={self.baseline!r}"
            )
        if self.vf_batch_size is not None:
            check_int("vf_batch_size", self.vf_batch_size, 1, "or None (the whole batch)")
        if not callable(self.vf_learning_rate):
            check_number("vf_learning_rate", self.vf_learning_rate, 0.0, low_inclusive=False, allow_none=True)
        if self.recurrent_chunk_steps is not None:
            check_int("recurrent_chunk_steps", self.recurrent_chunk_steps, 1, "or None (the whole batch at once)")
        self._check_recurrent_options()

    @property
    def recurrent(self) -> bool:
        """Whether the policy is recurrent (an LSTM policy; docs/recurrent.md)."""
        policy_class = getattr(self, "policy_class", None)
        return policy_class is not None and is_recurrent(policy_class)

    def _check_recurrent_options(self) -> None:
        """Refuse, before training, the options recurrent policies do not support (docs/recurrent.md)."""
        if not self.recurrent:
            return
        if self.use_sde:
            raise ValueError(
                "use_sde=True is not supported with a recurrent policy (MlpLstmPolicy, CnnLstmPolicy, "
                "MultiInputLstmPolicy): use use_sde=False"
            )
        if self.vf_epochs > 0:
            raise ValueError(
                f"vf_epochs={self.vf_epochs} is not supported with a recurrent policy: the value fit regresses "
                "V on single steps, and a recurrent V needs whole episodes; use vf_epochs=0 (the value head "
                "then learns through vf_coef)"
            )

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

    @staticmethod
    def _wrap_env(env: GymEnv, verbose: int = 0, monitor_wrapper: bool = True) -> VecEnv:
        # Checked before SB3 wraps the env: its wrappers fail on some spaces with messages of their own.
        check_observation_space(env.observation_space)
        return BaseAlgorithm._wrap_env(env, verbose, monitor_wrapper)

    def _check_action_space(self, action_space: spaces.Space | None) -> None:
        """
        Reject an action space the policy cannot sample from, naming the space and what is supported.

        :param action_space: The env's action space (None when not known yet).
        """
        if action_space is None:
            return
        if not isinstance(action_space, SUPPORTED_ACTION_SPACES):
            raise UnsupportedActionSpaceError(
                f"action_space={action_space} is not supported: the policy can only sample from "
                f"{_names(SUPPORTED_ACTION_SPACES)}"
            )
        if self.use_sde and not isinstance(action_space, spaces.Box):
            raise ValueError(
                f"use_sde=True is not allowed with action_space={action_space}: gSDE needs continuous (Box) "
                "actions; use use_sde=False"
            )
        if self.use_masking:
            check_maskable_action_space(action_space)

    def _check_masking_policy(self) -> None:
        """Refuse a policy class given explicitly that cannot apply the env's action masks (docs/masking.md)."""
        if not self.use_masking or policy_takes_masks(self.policy_class):
            return
        if not self._policy_alias:
            raise ValueError(
                f"The env exposes action_masks(), but policy={self.policy_class.__name__} cannot apply action "
                "masks: give the policy by name ('MlpPolicy', 'CnnPolicy', 'MultiInputPolicy': they become "
                "maskable ones), or a subclass of sb3_contrib.common.maskable.policies.MaskableActorCriticPolicy"
            )
        masked_policy_class(self.policy_class)  # a name without a maskable counterpart is refused now

    def _check_env_masks(self, env: VecEnv, use_masking: bool | None = None) -> None:
        """
        Refuse an env whose action masks do not match the model: masks the policy would ignore, or none to apply.

        :param env: The training env.
        :param use_masking: ``learn()``'s ``use_masking``: False accepts any env (masks are not used).
        """
        if use_masking is False:
            return
        has_masks = env_has_action_masks(env)
        if has_masks and not self.use_masking:
            raise ValueError(
                "The env exposes action_masks(), but this model was built without action masks, so its policy would "
                "ignore them: build the model with an env that has them (the policy then becomes a maskable one), "
                "or pass use_masking=False to learn() to train without them"
            )
        if self.use_masking and not has_masks:
            raise ValueError(
                "This model applies action masks (the env it was built with exposes action_masks()), but the env "
                "does not: wrap each of its envs in sb3_contrib.common.wrappers.ActionMasker, give it an "
                "action_masks() method, or pass use_masking=False to learn() to train without masks"
            )

    def _masking_for_learn(self, use_masking: bool | None) -> bool:
        """
        Whether this ``learn()`` call applies action masks.

        :param use_masking: ``learn()``'s argument: None follows the model, True requires masks, False turns them off.
        :return: True when the collector reads and applies the env's masks.
        """
        if use_masking is None:
            return self.use_masking
        if not isinstance(use_masking, (bool, np.bool_)):
            raise ValueError(f"use_masking={use_masking!r} is not allowed: it must be True, False or None")
        if use_masking and not self.use_masking:
            raise ValueError(
                "use_masking=True is not allowed: this model was built with an env without action_masks(), so its "
                "policy cannot apply masks; build it with an env that has them"
            )
        return bool(use_masking)

    def set_env(self, env: GymEnv, force_reset: bool = True) -> None:
        """
        Replace the training env (see SB3's ``BaseAlgorithm.set_env``).

        Episodes running in the old env are dropped; the new env's are recorded from their start.
        Whether its action masks match the model is checked by ``learn()`` (docs/masking.md).

        :param env: The new environment; its spaces must match the model's.
        :param force_reset: Force a reset of the new env at the next ``learn()``.
        """
        super().set_env(env, force_reset=force_reset)
        self._collector = None

    # ------------------------------------------------------------------ model

    def _setup_model(self) -> None:
        if self.use_masking:  # "MlpPolicy" & co. become sb3-contrib's maskable policies
            self.policy_class = masked_policy_class(self.policy_class)  # type: ignore[assignment]
        self._setup_lr_schedule()
        self.set_random_seed(self.seed)
        # sb3-contrib's maskable policies have no gSDE (it needs Box actions, which cannot be masked).
        sde = {} if policy_takes_masks(self.policy_class) else {"use_sde": self.use_sde}
        self.policy = self.policy_class(  # type: ignore[assignment]
            self.observation_space, self.action_space, self.lr_schedule, **sde, **self.policy_kwargs
        )
        self.policy = self.policy.to(self.device)
        if self.vf_epochs > 0:
            self.vf_optimizer = self.policy.optimizer_class(  # type: ignore[call-arg]
                value_only_parameters(self.policy), lr=self._vf_learning_rate(), **self.policy.optimizer_kwargs
            )

    def _excluded_save_params(self) -> list[str]:
        # The collector holds the episodes under way: a loaded model starts afresh (SB3 resets its env).
        return [
            *super()._excluded_save_params(),
            "_collector",
            "_step_guard",
            "vf_optimizer",
            "_vf_guard",
            "_use_masking_arg",
            "_policy_alias",
        ]

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        state_dicts = ["policy", "policy.optimizer"]
        return [*state_dicts, "vf_optimizer"] if self.vf_optimizer is not None else state_dicts, []

    def _make_collector(self, n_envs: int, mask_size: int | None) -> EpisodeCollector:
        """
        The collector of this algorithm's batch rule.

        :param n_envs: Number of envs.
        :param mask_size: Entries of the action masks it reads and applies (None: no masks).
        :return: The collector.
        """
        raise NotImplementedError

    def _mask_size(self) -> int | None:
        """Entries of the model's action masks (None: the model has none)."""
        return mask_size(self.action_space) if self.use_masking else None

    # ------------------------------------------------------------------ learning

    def _setup_learn(
        self,
        total_timesteps: int,
        callback: MaybeCallback = None,
        reset_num_timesteps: bool = True,
        tb_log_name: str = "run",
        progress_bar: bool = False,
    ) -> tuple[int, BaseCallback]:
        # SB3's _setup_learn resets the env exactly when it starts counting afresh or has no observation yet.
        env_reset = reset_num_timesteps or self._last_obs is None
        if self.env is not None:
            self._check_env_masks(self.env, self._use_masking_arg)
        result = super()._setup_learn(total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar)
        assert self.env is not None
        masks = self._mask_size() if self._masking_for_learn(self._use_masking_arg) else None
        collector = self._collector
        if collector is None or collector.n_envs != self.env.num_envs or collector.mask_size != masks:
            collector = self._collector = self._make_collector(self.env.num_envs, masks)
        collector.on_learn_start(self, env_reset)
        return result

    def learn(
        self: SelfEpisodicPolicyGradient,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 1,
        tb_log_name: str | None = None,
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
        use_masking: bool | None = None,
    ) -> SelfEpisodicPolicyGradient:
        """
        Train: collect, update, repeat, until ``total_timesteps`` env steps have been taken.

        The loop of SB3's ``OnPolicyAlgorithm.learn``: the budget is checked before each cycle and a
        cycle is never cut short, so ``learn(1)`` runs exactly one collect-then-update cycle, and
        ``num_timesteps`` ends at or above ``total_timesteps``, by up to one cycle of whole episodes
        (docs/maths.md §7.2).

        :param total_timesteps: Number of env steps (summed over envs) to train for, at least.
        :param callback: Callback(s) called at every step, with the state of the algorithm.
        :param log_interval: Number of cycles between two logger dumps.
        :param tb_log_name: The name of the run for TensorBoard logging (default: the class name,
            ``"REINFORCE"`` or ``"OffPolicyPG"``).
        :param reset_num_timesteps: Whether or not to reset the current timestep number (used in logging).
        :param progress_bar: Display a progress bar using tqdm and rich.
        :param use_masking: Apply the env's action masks (docs/masking.md): None (default) when the model
            has them, True to require them, False to train without them (``MaskablePPO.learn``'s option).
        :return: The trained model.
        """
        self._validate_hyperparameters()
        self._masking_for_learn(use_masking)  # checked before any env step
        self._use_masking_arg = use_masking
        iteration = 0
        total_timesteps, callback = self._setup_learn(
            total_timesteps, callback, reset_num_timesteps, tb_log_name or type(self).__name__, progress_bar
        )
        callback.on_training_start(locals(), globals())
        assert self.env is not None
        while self.num_timesteps < total_timesteps:
            if not self.collect_rollouts(self.env, callback):
                break
            iteration += 1
            self._update_current_progress_remaining(self.num_timesteps, total_timesteps)
            if log_interval is not None and iteration % log_interval == 0:
                assert self.ep_info_buffer is not None
                self.dump_logs(iteration)
            self.train()
        callback.on_training_end()
        return self

    def collect_rollouts(self, env: VecEnv, callback: BaseCallback) -> bool:
        """
        Collect the episodes of one cycle and store them (see the subclass's batch rule).

        :param env: The training env.
        :param callback: Callback fired at each step and at the start and end of the rollout.
        :return: False if the callback stopped training, True otherwise.
        """
        assert self._collector is not None, "call learn() to collect episodes"
        episodes, completed = self._collector.collect(self, env, callback, self.n_episodes)
        if episodes is not None:
            self._store_episodes(episodes)
        if not completed:
            return False
        self.logger.record("rollout/unused_steps", self._collector.take_unused_steps())
        callback.update_locals(locals())
        callback.on_rollout_end()
        return True

    def _store_episodes(self, episodes: EpisodeBatch) -> None:
        """Keep the collected episodes for :meth:`train` (and log what the rollout added)."""
        raise NotImplementedError

    def train(self) -> None:
        """Update the policy from the collected episodes."""
        raise NotImplementedError

    def dump_logs(self, iteration: int = 0) -> None:
        """
        Write the rollout and time statistics to the logger and dump it (SB3's ``OnPolicyAlgorithm.dump_logs``).

        :param iteration: Number of cycles done in this ``learn()`` call.
        """
        OnPolicyAlgorithm.dump_logs(self, iteration)  # type: ignore[arg-type]

    def _update_current_progress_remaining(self, num_timesteps: int, total_timesteps: int) -> None:
        # A cycle of whole episodes can overshoot the budget; schedules never see a negative progress.
        super()._update_current_progress_remaining(num_timesteps, total_timesteps)
        self._current_progress_remaining = max(0.0, self._current_progress_remaining)

    # ------------------------------------------------------------------ the update's stages

    def _evaluate_episodes(self, batch: EpisodeBatch) -> PolicyEvaluation:
        """
        Values, log-probabilities and entropies of the batch's steps under the current policy.

        :param batch: The episodes.
        :return: The evaluation, with its autograd graphs.
        """
        if self.recurrent:  # each episode through the LSTM from its first step
            return evaluate_episode_sequences(self.policy, batch, self.recurrent_chunk_steps)  # type: ignore[arg-type]
        observations = obs_as_tensor(batch.observations, self.device)  # type: ignore[arg-type]
        actions = th.as_tensor(batch.actions, device=self.device)
        actions = actions.long() if isinstance(self.action_space, spaces.Discrete) else actions.float()
        # the masked distribution the actions were sampled from, when there are masks
        masks = None if batch.action_masks is None else th.as_tensor(batch.action_masks, device=self.device)

        def evaluate(steps: slice | np.ndarray) -> tuple[th.Tensor, th.Tensor, th.Tensor | None]:
            chunk = (take_steps(observations, steps), actions[steps])  # type: ignore[arg-type]
            if masks is None:
                return self.policy.evaluate_actions(*chunk)  # type: ignore[arg-type]
            return self.policy.evaluate_actions(*chunk, action_masks=masks[steps])  # type: ignore[call-arg, arg-type]

        values, log_prob, entropy = evaluate(slice(None))
        # Each step's log-probability depends on its own observation only: it can be recomputed alone.
        return PolicyEvaluation(
            values=values.flatten(), log_prob=log_prob, entropy=entropy, step_log_prob=lambda steps: evaluate(steps)[1]
        )

    def predict(
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
        action_masks: np.ndarray | None = None,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """
        Get the policy action from an observation (and optional hidden state), as SB3's ``predict``.

        :param observation: The input observation (a batch of them from a VecEnv).
        :param state: The last hidden states (recurrent policies only).
        :param episode_start: Whether each env starts a new episode (recurrent policies only).
        :param deterministic: Return the mode of the distribution instead of a sample.
        :param action_masks: Which actions are allowed (docs/masking.md), as the env's
            ``action_masks()`` returns them; only for a model that applies masks.  None: no mask.
        :return: The action(s) and the next hidden state.
        """
        if action_masks is None:
            return self.policy.predict(observation, state, episode_start, deterministic)
        if not policy_takes_masks(type(self.policy)):
            raise ValueError(
                f"action_masks were given, but this model's policy ({type(self.policy).__name__}) does not apply "
                "action masks: build the model with an env that exposes action_masks()"
            )
        return self.policy.predict(observation, state, episode_start, deterministic, action_masks=action_masks)  # type: ignore[call-arg]

    def _predict_values(self, observations: Observations) -> np.ndarray:
        """``V(s)`` of a batch of observations, without gradient, as float64."""
        with th.no_grad():
            values = self.policy.predict_values(obs_as_tensor(observations, self.device))  # type: ignore[arg-type]
        return values.flatten().cpu().numpy().astype(np.float64)

    def _estimator_settings(self) -> EstimatorSettings:
        """The estimator's options, from the hyperparameters."""
        return EstimatorSettings(
            gamma=self.gamma,
            reward_to_go=self.reward_to_go,
            unbiased_discount=self.unbiased_discount,
            normalize_advantage=self.normalize_advantage,
            baseline=self.baseline,
        )

    def _losses(self, batch: EpisodeBatch, evaluation: PolicyEvaluation, ratios: np.ndarray) -> LossTerms:
        """The loss terms of docs/maths.md §4/§6 for ``batch``, whose actions have importance ratios ``ratios``."""
        return policy_gradient_losses(
            batch,
            evaluation,
            ratios,
            self._estimator_settings(),
            self._bootstrap_value_function(batch),
            list(self.policy.parameters()),
        )

    def _bootstrap_value_function(self, batch: EpisodeBatch) -> Callable[[Observations], np.ndarray]:
        """
        ``V`` of the final observations of ``batch``'s truncated episodes, for bootstrapping (docs/maths.md §3.2).

        A recurrent critic's value depends on the episode's history: it is then computed from ``batch``.

        :param batch: The episodes of the update.
        :return: The value function the estimator applies to the final observations.
        """
        if self.recurrent:
            return history_value_function(self.policy, batch, self.recurrent_chunk_steps)  # type: ignore[arg-type]
        return self._predict_values

    def _vf_learning_rate(self) -> float:
        """The value fit's learning rate at the current progress."""
        rate = self.vf_learning_rate if self.vf_learning_rate is not None else self.lr_schedule
        return float(rate(self._current_progress_remaining)) if callable(rate) else float(rate)

    def _fit_value(self, observations: Observations, targets: np.ndarray) -> None:
        """
        ``vf_epochs`` of minibatch regression of the value head on ``targets`` (docs/maths.md §5.3), then log the fit.

        :param observations: Observations of the steps to fit on.
        :param targets: Their returns.
        """
        if self.vf_optimizer is None:
            raise RuntimeError("vf_epochs > 0 needs the value optimiser: set vf_epochs before the model is built")
        update_learning_rate(self.vf_optimizer, self._vf_learning_rate())
        loss = fit_value_function(
            self.policy,
            self.vf_optimizer,
            [p for group in self.vf_optimizer.param_groups for p in group["params"]],
            observations,
            targets,
            self.vf_epochs,
            self.vf_batch_size,
            self.max_grad_norm,
            self._vf_guard,
        )
        fitted = self._predict_values(observations)
        self.logger.record("train/vf_fit_loss", loss)
        self.logger.record("train/vf_fit_explained_variance", float(explained_variance(fitted, targets)))

    def _gradient_step(self, losses: LossTerms, evaluation: PolicyEvaluation) -> None:
        """
        One guarded optimiser step on the loss terms, then log them.

        :param losses: The loss terms.
        :param evaluation: The evaluation they came from (the value head's fit is logged).
        """
        loss, grad_norm = gradient_step(
            self.policy, losses, self.ent_coef, self.vf_coef, self.max_grad_norm, self._step_guard
        )
        self._n_updates += 1
        self.logger.record("train/policy_loss", losses.policy_loss.item())
        self.logger.record("train/value_loss", losses.value_loss.item())
        self.logger.record("train/entropy_loss", losses.entropy_loss.item())
        self.logger.record("train/loss", loss.item())
        self.logger.record("train/grad_norm", grad_norm.item())
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        if hasattr(self.policy, "log_std"):
            self.logger.record("train/std", th.exp(self.policy.log_std).mean().item())
        if self.baseline == "value":
            self.logger.record(
                "train/explained_variance",
                float(
                    explained_variance(
                        evaluation.values.detach().cpu().numpy(), losses.value_targets.astype(np.float32)
                    )
                ),
            )


def _names(classes: tuple[type[spaces.Space], ...]) -> str:
    return ", ".join(space.__name__ for space in classes)


def check_observation_space(observation_space: spaces.Space) -> None:
    """
    Reject an observation space SB3's policies cannot read, naming it and what is supported.

    :param observation_space: The env's observation space.
    :raises UnsupportedObservationSpaceError: For anything but the spaces of ``SUPPORTED_OBSERVATION_SPACES``.
    """
    readable = tuple(space for space in SUPPORTED_OBSERVATION_SPACES if space is not spaces.Dict)
    inner = observation_space.spaces.values() if isinstance(observation_space, spaces.Dict) else []
    if not isinstance(observation_space, SUPPORTED_OBSERVATION_SPACES) or not all(
        isinstance(space, readable) for space in inner
    ):
        raise UnsupportedObservationSpaceError(
            f"observation_space={observation_space} is not supported: the policy can only read "
            f"{_names(readable)}, or a Dict of them (use MultiInputPolicy for Dict spaces)"
        )
