"""Recurrent (LSTM) policies: hidden states during collection, whole episodes through the LSTM in the update.

The policies are sb3-contrib's recurrent actor-critic policies (``MlpLstmPolicy``,
``CnnLstmPolicy``, ``MultiInputLstmPolicy``).  Two things change with them (docs/recurrent.md):

- **Collection.**  :class:`HiddenStates` keeps the actor LSTM's hidden and cell states of every
  env from one vector step to the next, and from one collection to the next (OffPolicyPG's episodes
  run on across collections).  A state is reset to zero on the step where its env starts an
  episode (``model._last_episode_starts``, which SB3's env reset and every ``done`` set).
- **The update.**  :func:`evaluate_episode_sequences` runs each episode through the LSTM from its
  first step with a zero state.  The episodes are padded to a common length and laid sequence-major,
  ``(n_episodes, length)``, the layout of sb3-contrib's ``_process_sequence``; the LSTM is causal,
  so the outputs at the real steps do not depend on the padding after them, and the padded outputs
  are dropped.  The log-probabilities are therefore exactly those of the sampled episodes under the
  current parameters, and their gradient is full backpropagation through time.

Memory.  The autograd graph of an LSTM holds every step it has seen.  The episodes of a batch are
therefore split into chunks of at most ``chunk_steps`` padded steps (an episode longer than that is a
chunk of its own), and, when there is more than one chunk, each chunk is evaluated under
activation checkpointing (``torch.utils.checkpoint``): its forward pass keeps no graph, and the
backward pass recomputes one chunk at a time and accumulates its gradient.  The gradient is the
same (chain rule; the recomputation is the same computation), and the memory held is that of one
chunk's graph plus the per-step outputs.

Values.  ``V(s_t)`` of a recurrent critic is a function of the history, not of ``s_t`` alone; the
values of the update come from the same sequence evaluation, and the value of a truncated
episode's final observation, used for bootstrapping, from the critic run over the episode followed
by that observation (:func:`terminal_values`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from sb3_contrib.common.maskable.distributions import MaskableDistribution
from sb3_contrib.common.recurrent.policies import (
    RecurrentActorCriticCnnPolicy,
    RecurrentActorCriticPolicy,
    RecurrentMultiInputActorCriticPolicy,
)
from sb3_contrib.common.recurrent.type_aliases import RNNStates
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.utils import obs_as_tensor
from torch.utils.checkpoint import checkpoint

from sb3_reinforce.common.episodes import EpisodeBatch, Observations, episode_offsets, take_steps, time_index
from sb3_reinforce.common.estimator import PolicyEvaluation
from sb3_reinforce.common.maskable_policies import raw_masked_distribution


def is_recurrent(policy: BasePolicy | type[BasePolicy]) -> bool:
    """
    Whether ``policy`` (an instance or a class) is one of sb3-contrib's recurrent actor-critic policies.

    :param policy: A policy or a policy class.
    :return: True for ``RecurrentActorCriticPolicy`` and its subclasses.
    """
    cls = policy if isinstance(policy, type) else type(policy)
    return issubclass(cls, RecurrentActorCriticPolicy)


def zero_states(lstm: th.nn.LSTM, n_sequences: int, device: th.device) -> tuple[th.Tensor, th.Tensor]:
    """
    Zero hidden and cell states of ``lstm`` for ``n_sequences`` sequences.

    :param lstm: The LSTM.
    :param n_sequences: Batch size (envs during collection, episodes in the update).
    :param device: Device of the states.
    :return: ``(h, c)``, each of shape ``(num_layers, n_sequences, hidden_size)``.
    """
    shape = (lstm.num_layers, n_sequences, lstm.hidden_size)
    return th.zeros(shape, device=device), th.zeros(shape, device=device)


class HiddenStates:
    """
    The actor LSTM's states of every env during collection (see the module docstring).

    :param policy: The recurrent policy.
    :param n_envs: Number of envs.
    """

    def __init__(self, policy: RecurrentActorCriticPolicy, n_envs: int):
        self.states = zero_states(policy.lstm_actor, n_envs, policy.device)

    def sample(
        self,
        policy: RecurrentActorCriticPolicy,
        observations: th.Tensor | dict[str, th.Tensor],
        episode_starts: np.ndarray,
        action_masks: np.ndarray | None = None,
    ) -> tuple[th.Tensor, th.Tensor]:
        """
        Sample one action per env and its log-probability, and advance the states (no gradient).

        :param policy: The recurrent policy.
        :param observations: The envs' current observations, as tensors on the policy's device.
        :param episode_starts: Which envs start an episode at this step (their state is reset first).
        :param action_masks: Which actions each env allows (a maskable recurrent policy only; None: all).
        :return: ``(actions, log_probs)`` in the distribution's flat layout, as ``sample_actions`` returns them.
        """
        starts = th.as_tensor(np.asarray(episode_starts), dtype=th.float32, device=policy.device)
        with th.no_grad():
            distribution, states = policy.get_distribution(observations, self.states, starts)  # type: ignore[arg-type]
            if action_masks is not None:
                distribution.apply_masking(action_masks)  # type: ignore[attr-defined]
            actions = distribution.get_actions()
            log_probs = distribution.log_prob(actions)
        self.states = (states[0], states[1])
        return actions, log_probs


def episode_chunks(lengths: np.ndarray, chunk_steps: int | None) -> list[np.ndarray]:
    """
    Split the episodes into chunks whose padded size, episodes × longest length, is at most ``chunk_steps``.

    The episodes are taken longest first, so that episodes of similar lengths share a chunk and
    little is padded; an episode longer than ``chunk_steps`` is a chunk of its own.

    >>> episode_chunks(np.array([2, 5, 3, 1]), 6)
    [array([1]), array([2, 0]), array([3])]
    >>> episode_chunks(np.array([2, 5, 3, 1]), None)
    [array([0, 1, 2, 3])]

    :param lengths: Episode lengths, shape ``(N,)``.
    :param chunk_steps: Most padded steps per chunk (None: one chunk, the episodes in their order).
    :return: The episode numbers of each chunk.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    if chunk_steps is None:
        return [np.arange(len(lengths))]
    order = np.argsort(-lengths, kind="stable")
    chunks, first = [], 0
    while first < len(order):
        size = max(1, chunk_steps // int(lengths[order[first]]))
        chunks.append(order[first : first + size])
        first += size
    return chunks


def padded_cells(lengths: np.ndarray, width: int) -> np.ndarray:
    """
    Flat index, in a sequence-major ``(n_episodes, width)`` grid, of every step of the episodes.

    >>> padded_cells(np.array([2, 1]), 3)
    array([0, 1, 3])

    :param lengths: Lengths of the episodes laid in the grid, shape ``(n,)``.
    :param width: Steps per row (at least the longest length).
    :return: Cells, shape ``(sum(lengths),)``, in the flat episode layout.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    return np.repeat(np.arange(len(lengths)) * width, lengths) + time_index(lengths)


def scatter_steps(values: Observations, cells: np.ndarray, size: int) -> Observations:
    """
    Place per-step arrays (or dicts of arrays) at ``cells`` of zero arrays of ``size`` rows.

    :param values: Arrays with leading axis ``len(cells)``.
    :param cells: Destination rows.
    :param size: Rows of the result.
    :return: The padded arrays, zeros outside ``cells``.
    """
    if isinstance(values, dict):
        return {key: scatter_steps(value, cells, size) for key, value in values.items()}  # type: ignore[misc]
    padded = np.zeros((size, *values.shape[1:]), dtype=values.dtype)
    padded[cells] = values
    return padded


def _action_tensor(actions: np.ndarray, action_space: spaces.Space, device: th.device) -> th.Tensor:
    tensor = th.as_tensor(actions, device=device)
    return tensor.long() if isinstance(action_space, spaces.Discrete) else tensor.float()


def _evaluate_grid(
    policy: RecurrentActorCriticPolicy,
    observations: th.Tensor | dict[str, th.Tensor],
    actions: th.Tensor,
    n_sequences: int,
    cells: th.Tensor,
    action_masks: th.Tensor | None = None,
) -> tuple[th.Tensor, th.Tensor, th.Tensor | None]:
    """``evaluate_actions`` over a sequence-major grid of episodes from zero states, read back at ``cells``."""
    device = actions.device
    states = RNNStates(zero_states(policy.lstm_actor, n_sequences, device), _critic_states(policy, n_sequences))
    no_starts = th.zeros(len(actions), device=device)  # zero states already: no reset inside a sequence
    if action_masks is None:
        values, log_prob, entropy = policy.evaluate_actions(observations, actions, states, no_starts)  # type: ignore[arg-type]
    else:  # a maskable recurrent policy, with the recorded masks
        values, log_prob, entropy = policy.evaluate_actions(  # type: ignore[call-arg]
            observations,  # type: ignore[arg-type]
            actions,
            states,
            no_starts,
            action_masks=action_masks,
        )
    return values.flatten()[cells], log_prob[cells], None if entropy is None else entropy[cells]


def _critic_states(policy: RecurrentActorCriticPolicy, n_sequences: int) -> tuple[th.Tensor, th.Tensor]:
    """Zero states of the critic's LSTM (the actor's shape when the critic has none: they are then unused)."""
    lstm = policy.lstm_critic if policy.lstm_critic is not None else policy.lstm_actor
    return zero_states(lstm, n_sequences, policy.device)


def _padded_masks(masks: np.ndarray, cells: np.ndarray, size: int, policy: RecurrentActorCriticPolicy) -> th.Tensor:
    """Action masks placed at ``cells`` of a grid of ``size`` rows; the padding allows every action."""
    padded = np.ones((size, *masks.shape[1:]), dtype=bool)
    padded[cells] = masks
    return th.as_tensor(padded, device=policy.device)


def evaluate_episode_sequences(
    policy: RecurrentActorCriticPolicy, batch: EpisodeBatch, chunk_steps: int | None
) -> PolicyEvaluation:
    """
    Values, log-probabilities and entropies of the batch's steps, each episode run from its first step.

    See the module docstring: every episode starts from zero states; chunks of at most
    ``chunk_steps`` padded steps are checkpointed when there are several of them.

    :param policy: The recurrent policy.
    :param batch: The episodes.
    :param chunk_steps: Most padded steps per chunk (None: the whole batch at once).
    :return: The evaluation in the flat episode layout, with its autograd graphs.
    """
    chunks = episode_chunks(batch.lengths, chunk_steps)
    offsets = episode_offsets(batch.lengths)
    outputs, order = [], []
    for episodes in chunks:
        lengths = batch.lengths[episodes]
        steps = np.repeat(offsets[episodes], lengths) + time_index(lengths)  # rows of the batch
        width = int(lengths.max())
        cells = padded_cells(lengths, width)
        size = len(episodes) * width
        observations = obs_as_tensor(scatter_steps(take_steps(batch.observations, steps), cells, size), policy.device)  # type: ignore[arg-type]
        actions = _action_tensor(scatter_steps(batch.actions[steps], cells, size), policy.action_space, policy.device)  # type: ignore[arg-type]
        masks = None if batch.action_masks is None else _padded_masks(batch.action_masks[steps], cells, size, policy)
        arguments = (policy, observations, actions, len(episodes), th.as_tensor(cells, device=policy.device), masks)
        if len(chunks) > 1:
            outputs.append(checkpoint(_evaluate_grid, *arguments, use_reentrant=False))
        else:
            outputs.append(_evaluate_grid(*arguments))
        order.append(steps)
    # Back to the batch's order: position k of the concatenation holds row order[k].
    inverse = th.as_tensor(np.argsort(np.concatenate(order), kind="stable"), device=policy.device)
    values = th.cat([output[0] for output in outputs])[inverse]
    log_prob = th.cat([output[1] for output in outputs])[inverse]
    entropies = [output[2] for output in outputs]
    entropy = None if any(e is None for e in entropies) else th.cat(entropies)[inverse]  # type: ignore[arg-type]
    return PolicyEvaluation(values=values, log_prob=log_prob, entropy=entropy)


def terminal_values(
    policy: RecurrentActorCriticPolicy, batch: EpisodeBatch, episodes: np.ndarray, chunk_steps: int | None
) -> np.ndarray:
    """
    ``V(s_T | h_T)`` of episodes' final observations: the critic run over each episode, then its final observation.

    :param policy: The recurrent policy.
    :param batch: The episodes.
    :param episodes: Which episodes (their numbers in ``batch``).
    :param chunk_steps: Most padded steps per chunk (None: all at once).
    :return: One value per episode of ``episodes``, float64, without gradient.
    """
    episodes = np.asarray(episodes, dtype=np.int64)
    values = np.zeros(len(episodes), dtype=np.float64)
    offsets = episode_offsets(batch.lengths)
    extended = batch.lengths[episodes] + 1  # each episode followed by its final observation
    for chunk in episode_chunks(extended, chunk_steps):
        lengths = batch.lengths[episodes[chunk]]
        steps = np.repeat(offsets[episodes[chunk]], lengths) + time_index(lengths)
        width = int(lengths.max()) + 1
        size = len(chunk) * width
        cells = padded_cells(lengths, width)
        last = np.arange(len(chunk)) * width + lengths  # the cell after each episode's last step
        grid = scatter_steps(take_steps(batch.observations, steps), cells, size)
        finals = take_steps(batch.terminal_observations, episodes[chunk])
        if isinstance(grid, dict):
            for key in grid:
                grid[key][last] = finals[key]  # type: ignore[index]
        else:
            grid[last] = finals
        with th.no_grad():
            predicted = policy.predict_values(
                obs_as_tensor(grid, policy.device),  # type: ignore[arg-type]
                _critic_states(policy, len(chunk)),
                th.zeros(size, device=policy.device),
            )
        values[chunk] = predicted.flatten()[th.as_tensor(last, device=policy.device)].cpu().numpy()
    return values


def history_value_function(
    policy: RecurrentActorCriticPolicy, batch: EpisodeBatch, chunk_steps: int | None
) -> Callable[[Observations], np.ndarray]:
    """
    The value function the estimator bootstraps ``batch``'s truncated episodes with, for a recurrent critic.

    The estimator asks for ``V`` of the final observations of the truncated episodes, in their
    order in the batch; a recurrent ``V`` needs each episode's history as well, which this
    function's result takes from ``batch``.

    :param policy: The recurrent policy.
    :param batch: The episodes the estimator is given.
    :param chunk_steps: Most padded steps per chunk (None: all at once).
    :return: A function of the truncated episodes' final observations, returning their values.
    """
    truncated = np.flatnonzero(batch.truncated)

    def values(final_observations: Observations) -> np.ndarray:
        first = next(iter(final_observations.values())) if isinstance(final_observations, dict) else final_observations
        if len(first) != len(truncated):
            raise ValueError(
                "a recurrent value function is only defined on the final observations of truncated episodes"
            )
        return terminal_values(policy, batch, truncated, chunk_steps)

    return values


class MaskableRecurrentActorCriticPolicy(RecurrentActorCriticPolicy):
    """
    sb3-contrib's ``RecurrentActorCriticPolicy`` with a maskable action distribution (action masks and memory together).

    The networks are sb3-contrib's recurrent ones; the distribution is the maskable one of
    :mod:`~sb3_reinforce.common.maskable_policies` (the invalid raw logits masked before
    normalisation), for ``Discrete``, ``MultiDiscrete`` and ``MultiBinary`` actions.
    ``evaluate_actions``, ``get_distribution`` and ``predict`` take ``action_masks``.  The models use
    it in place of ``MlpLstmPolicy`` when the env exposes ``action_masks()`` (docs/recurrent.md).

    :param observation_space: Observation space.
    :param action_space: Action space (``Discrete``, ``MultiDiscrete`` or ``MultiBinary``).
    :param lr_schedule: Learning rate schedule (its value at 1 sets the optimiser's initial rate).
    :param net_arch: The actor's and critic's hidden layers after the LSTM (SB3's ``net_arch``).
    :param activation_fn: Activation function of the hidden layers.
    :param ortho_init: Use orthogonal initialisation.
    :param use_sde: Must be False (gSDE needs ``Box`` actions, which cannot be masked).
    :param log_std_init: Unused (no Gaussian head).
    :param full_std: Unused (gSDE only).
    :param use_expln: Unused (gSDE only).
    :param squash_output: Unused (gSDE only).
    :param features_extractor_class: Features extractor class.
    :param features_extractor_kwargs: Keyword arguments of the features extractor.
    :param share_features_extractor: One features extractor for the actor and the critic.
    :param normalize_images: Divide image observations by 255.
    :param optimizer_class: Optimiser class.
    :param optimizer_kwargs: Keyword arguments of the optimiser, besides the learning rate.
    :param lstm_hidden_size: Hidden units of each LSTM layer.
    :param n_lstm_layers: LSTM layers.
    :param shared_lstm: One LSTM for the actor and the critic (the critic's gradient does not reach it).
    :param enable_critic_lstm: A separate LSTM for the critic.
    :param lstm_kwargs: Keyword arguments of the LSTMs.
    """

    action_dist: MaskableDistribution  # type: ignore[assignment]

    def _build(self, lr_schedule: Any) -> None:
        super()._build(lr_schedule)  # the action network of SB3's distribution: one logit per outcome, as here
        self.action_dist = raw_masked_distribution(self.action_space)
        self._action_masks: np.ndarray | th.Tensor | None = None

    @contextmanager
    def _masked(self, action_masks: np.ndarray | th.Tensor | None) -> Iterator[None]:
        """Apply ``action_masks`` to every distribution built inside the block."""
        self._action_masks = action_masks
        try:
            yield
        finally:
            self._action_masks = None

    def _get_action_dist_from_latent(self, latent_pi: th.Tensor) -> MaskableDistribution:  # type: ignore[override]
        distribution = self.action_dist.proba_distribution(action_logits=self.action_net(latent_pi))
        if self._action_masks is not None:
            distribution.apply_masking(self._action_masks)
        return distribution

    def evaluate_actions(  # type: ignore[override]
        self,
        obs: th.Tensor,
        actions: th.Tensor,
        lstm_states: RNNStates,
        episode_starts: th.Tensor,
        action_masks: np.ndarray | th.Tensor | None = None,
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        """
        Values, log-probabilities and entropies of ``actions`` (sb3-contrib's), under the masked distribution.

        :param obs: Observations, sequence-major.
        :param actions: The actions.
        :param lstm_states: Initial states of the actor's and the critic's LSTMs.
        :param episode_starts: Where the states are reset.
        :param action_masks: Which actions are allowed at every step (None: all).
        :return: ``(values, log_prob, entropy)``.
        """
        with self._masked(action_masks):
            return super().evaluate_actions(obs, actions, lstm_states, episode_starts)

    def get_distribution(  # type: ignore[override]
        self,
        obs: th.Tensor,
        lstm_states: tuple[th.Tensor, th.Tensor],
        episode_starts: th.Tensor,
        action_masks: np.ndarray | th.Tensor | None = None,
    ) -> tuple[MaskableDistribution, tuple[th.Tensor, ...]]:
        """
        The masked action distribution and the actor's new states (sb3-contrib's ``get_distribution``).

        :param obs: Observations.
        :param lstm_states: The actor's LSTM states.
        :param episode_starts: Where the states are reset.
        :param action_masks: Which actions are allowed (None: all).
        :return: ``(distribution, states)``.
        """
        with self._masked(action_masks):
            return super().get_distribution(obs, lstm_states, episode_starts)  # type: ignore[return-value]

    def predict(  # type: ignore[override]
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
        action_masks: np.ndarray | None = None,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """
        ``RecurrentPPO``'s ``predict``, sampling from (or taking the mode of) the masked distribution.

        :param observation: The observation(s).
        :param state: The LSTM states ``predict`` returned last (None: zeros).
        :param episode_start: Which envs start an episode (their state is reset).
        :param deterministic: Take the most likely allowed action.
        :param action_masks: Which actions are allowed, as the env's ``action_masks()`` gives them (None: all).
        :return: ``(actions, states)``.
        """
        with self._masked(action_masks):
            return super().predict(observation, state, episode_start, deterministic)


class MaskableRecurrentActorCriticCnnPolicy(MaskableRecurrentActorCriticPolicy):
    """
    :class:`MaskableRecurrentActorCriticPolicy` with sb3-contrib's CNN defaults (images).

    :param args: The arguments of ``RecurrentActorCriticCnnPolicy``.
    :param kwargs: Its keyword arguments.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs.setdefault("features_extractor_class", _default_extractor(RecurrentActorCriticCnnPolicy))
        super().__init__(*args, **kwargs)


class MaskableRecurrentMultiInputActorCriticPolicy(MaskableRecurrentActorCriticPolicy):
    """
    :class:`MaskableRecurrentActorCriticPolicy` with sb3-contrib's ``Dict``-observation defaults.

    :param args: The arguments of ``RecurrentMultiInputActorCriticPolicy``.
    :param kwargs: Its keyword arguments.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs.setdefault("features_extractor_class", _default_extractor(RecurrentMultiInputActorCriticPolicy))
        super().__init__(*args, **kwargs)


def _default_extractor(policy_class: type[RecurrentActorCriticPolicy]) -> Any:
    """The default features extractor of one of sb3-contrib's recurrent policy classes."""
    return inspect.signature(policy_class.__init__).parameters["features_extractor_class"].default
