"""Recurrent (LSTM) policies with REINFORCE and OffPolicyPG (docs/recurrent.md).

The update's exact gradient and its replay are in ``tests/test_recurrent_gradient.py``; this file
checks the machinery: the aliases, hidden states during collection (carried, reset at episode
starts, kept across OffPolicyPG's collections), the sequence evaluation (chunked or not, values
and bootstrapping from the history), ``predict`` with a state, save/load and the errors.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from sb3_contrib.common.recurrent.policies import (
    RecurrentActorCriticCnnPolicy,
    RecurrentActorCriticPolicy,
    RecurrentMultiInputActorCriticPolicy,
)
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.envs import FakeImageEnv, IdentityEnvBox, SimpleMultiObsEnv
from stable_baselines3.common.vec_env import DummyVecEnv

import sb3_reinforce.common.recurrent as recurrent
from sb3_reinforce import REINFORCE, OffPolicyPG
from sb3_reinforce.common.episodes import EpisodeBatch
from sb3_reinforce.common.gradient_step import total_loss

ALGOS = (REINFORCE, OffPolicyPG)
SMALL: dict[str, Any] = {"lstm_hidden_size": 8, "net_arch": [8]}
#: Parameters that do not move (SGD with a negligible step): recorded log-probabilities stay comparable.
FROZEN: dict[str, Any] = {**SMALL, "optimizer_class": th.optim.SGD}


def short_cartpole(n_envs: int, max_steps: int = 30, seed: int = 0) -> Any:
    """CartPole without velocities, cut at ``max_steps`` (many truncated episodes, lengths that vary)."""
    return make_vec_env(
        "CartPole-v1", n_envs=n_envs, seed=seed, env_kwargs={"max_episode_steps": max_steps}, wrapper_class=NoVelocity
    )


class NoVelocity(gym.ObservationWrapper):
    """Hide CartPole's velocities (rl-zoo3's CartPoleNoVel-v1, without importing rl-zoo3)."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return observation[[0, 2]].astype(np.float32)


def params_of(model: Any) -> list[th.Tensor]:
    return [p.detach().clone() for p in model.policy.parameters()]


@pytest.mark.parametrize("cls", ALGOS)
def test_lstm_policy_aliases(cls: type) -> None:
    """The three aliases are sb3-contrib's recurrent actor-critic policies, as RecurrentPPO names them."""
    assert cls.policy_aliases["MlpLstmPolicy"] is RecurrentActorCriticPolicy
    assert cls.policy_aliases["CnnLstmPolicy"] is RecurrentActorCriticCnnPolicy
    assert cls.policy_aliases["MultiInputLstmPolicy"] is RecurrentMultiInputActorCriticPolicy
    model = cls("MlpLstmPolicy", short_cartpole(1), policy_kwargs=SMALL, seed=0)
    assert isinstance(model.policy, RecurrentActorCriticPolicy) and model.recurrent


def image_env() -> gym.Env:
    return gym.wrappers.TimeLimit(FakeImageEnv(screen_height=36, screen_width=36), 12)


def dict_env() -> gym.Env:
    return gym.wrappers.TimeLimit(SimpleMultiObsEnv(random_start=True), 15)


def box_action_env() -> gym.Env:
    return IdentityEnvBox(ep_length=9)


#: One env and policy per kind of input and output, with sb3-contrib's LSTM options.
VARIANTS = {
    "image": ("CnnLstmPolicy", image_env, {"lstm_hidden_size": 8, "features_extractor_kwargs": {"features_dim": 16}}),
    "dict": ("MultiInputLstmPolicy", dict_env, {"lstm_hidden_size": 8}),
    "box-actions": ("MlpLstmPolicy", box_action_env, {"lstm_hidden_size": 8}),
    "shared-lstm": (
        "MlpLstmPolicy",
        box_action_env,
        {"lstm_hidden_size": 8, "shared_lstm": True, "enable_critic_lstm": False},
    ),
    "no-critic-lstm": ("MlpLstmPolicy", box_action_env, {"lstm_hidden_size": 8, "enable_critic_lstm": False}),
    "two-layers": ("MlpLstmPolicy", box_action_env, {"lstm_hidden_size": 8, "n_lstm_layers": 2}),
}


@pytest.mark.parametrize("cls", ALGOS)
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_lstm_policy_and_option_trains(cls: type, variant: str) -> None:
    """Images, ``Dict`` observations, ``Box`` actions, shared or no critic LSTM, two layers: the samples are scored."""
    policy, make_env, policy_kwargs = VARIANTS[variant]
    kwargs: dict[str, Any] = {"batch_episodes": 3} if cls is OffPolicyPG else {}
    env = DummyVecEnv([make_env, make_env])
    model = cls(policy, env, n_episodes=3, baseline="value", seed=0, policy_kwargs=policy_kwargs, **kwargs)
    check = CheckRecordedLogProbs()
    before = params_of(model)
    model.learn(1, callback=check)
    assert check.max_errors[0] < 1e-4 and check.n_steps[0] >= 3
    assert not all(th.equal(p, q) for p, q in zip(before, params_of(model)))


class CheckRecordedLogProbs(BaseCallback):
    """At each rollout's end, compare the recorded behaviour log-probabilities with the update's evaluation."""

    def __init__(self) -> None:
        super().__init__()
        self.max_errors: list[float] = []
        self.n_steps: list[int] = []

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        model = self.model
        batch = model.rollout_buffer if isinstance(model, REINFORCE) else model.replay_buffer.all_episodes()
        evaluation = model._evaluate_episodes(batch)
        self.max_errors.append(float(np.abs(evaluation.log_prob.detach().numpy() - batch.log_probs).max()))
        self.n_steps.append(batch.n_steps)


@pytest.mark.parametrize("cls", ALGOS)
def test_update_evaluates_the_log_probs_that_collection_sampled(cls: type) -> None:
    """
    The log-probabilities the update computes (each episode from its first step, from a zero state)
    are those the collection recorded (hidden states carried step to step and reset at each episode
    start), with 3 envs, across OffPolicyPG's collections (episodes that span two of them), and
    across ``learn()`` calls that reset the envs mid-episode or continue.
    """
    kwargs: dict[str, Any] = {"n_episodes": 5, "learning_rate": 1e-30}
    if cls is OffPolicyPG:
        kwargs.update(buffer_size=5_000, batch_episodes=2)
    model = cls("MlpLstmPolicy", short_cartpole(3), policy_kwargs=FROZEN, seed=1, **kwargs)
    before = params_of(model)
    check = CheckRecordedLogProbs()
    model.learn(300, callback=check)
    model.learn(200, callback=check)  # the envs are reset mid-episode
    model.learn(200, callback=check, reset_num_timesteps=False)  # the envs continue
    model.set_env(short_cartpole(3, seed=9))  # a new env: every state starts afresh with its episode
    model.learn(200, callback=check)
    assert max(float((p - q).abs().max()) for p, q in zip(before, params_of(model))) < 1e-20
    assert len(check.max_errors) >= 6 and min(check.n_steps) > 20
    assert max(check.max_errors) < 1e-5, check.max_errors


def test_states_not_reset_at_episode_starts_would_be_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """Teeth of the test above: a collection that never resets the states records other log-probabilities."""
    sample = recurrent.HiddenStates.sample

    def never_reset(self: Any, policy: Any, observations: Any, episode_starts: np.ndarray, masks: Any = None) -> Any:
        return sample(self, policy, observations, np.zeros_like(episode_starts), masks)

    monkeypatch.setattr(recurrent.HiddenStates, "sample", never_reset)
    model = REINFORCE("MlpLstmPolicy", short_cartpole(3), policy_kwargs=FROZEN, n_episodes=5, seed=1)
    check = CheckRecordedLogProbs()
    model.learn(300, callback=check)
    assert max(check.max_errors) > 1e-3


def batch_and_model(baseline: str, hidden_size: int = 8) -> tuple[REINFORCE, EpisodeBatch]:
    policy_kwargs = {**SMALL, "lstm_hidden_size": hidden_size}
    model = REINFORCE(
        "MlpLstmPolicy", short_cartpole(2), policy_kwargs=policy_kwargs, n_episodes=6, baseline=baseline, seed=3
    )
    model.learn(1)
    assert model.rollout_buffer is not None
    return model, model.rollout_buffer


def loss_gradient(model: REINFORCE, batch: EpisodeBatch, chunk_steps: int | None) -> list[th.Tensor]:
    """The gradient of the total loss of ``batch`` with the update evaluated in chunks of ``chunk_steps``."""
    model.recurrent_chunk_steps = chunk_steps
    model.policy.zero_grad()
    evaluation = model._evaluate_episodes(batch)
    losses = model._losses(batch, evaluation, np.ones(batch.n_steps))
    total_loss(losses, 0.01, model.vf_coef).backward()
    return [p.grad.clone() if p.grad is not None else th.zeros_like(p) for p in model.policy.parameters()]


@pytest.mark.parametrize("baseline", ["value", "optimal", "optimal_time", "optimal_coordinate", "mean"])
def test_chunked_update_has_the_same_gradient(baseline: str) -> None:
    """
    Chunks of a few steps (several episodes per chunk, and episodes longer than a chunk) give the
    gradient of the whole batch at once, to float precision, with every loss term (entropy, value,
    the value baseline bootstrapping truncated episodes, the optimal baselines' scores).
    """
    model, batch = batch_and_model(baseline)
    assert batch.truncated.any() and len(set(batch.lengths.tolist())) > 1
    assert len(recurrent.episode_chunks(batch.lengths, 40)) > 2
    whole = th.cat([g.flatten() for g in loss_gradient(model, batch, None)])
    for chunk_steps in (1, 40, 10_000):
        chunked = th.cat([g.flatten() for g in loss_gradient(model, batch, chunk_steps)])
        # float32 sums in another order: equal to a few ulps of the gradient's scale
        assert float((whole - chunked).abs().max()) < 1e-5 * float(whole.abs().max()), chunk_steps


@pytest.mark.parametrize("cls", ALGOS)
def test_training_in_chunks_is_training_at_once(cls: type) -> None:
    """``learn()`` with chunks of 7 steps ends at the parameters of ``learn()`` with the whole batch at once."""
    params = []
    for chunk_steps in (None, 7):
        model = cls(
            "MlpLstmPolicy",
            short_cartpole(2),
            policy_kwargs=SMALL,
            n_episodes=4,
            seed=4,
            recurrent_chunk_steps=chunk_steps,
        )
        model.learn(400)
        params.append(th.cat([p.flatten() for p in params_of(model)]))
    assert not th.equal(
        params[0],
        th.cat([p.flatten() for p in params_of(cls("MlpLstmPolicy", short_cartpole(2), policy_kwargs=SMALL, seed=4))]),
    )
    assert th.allclose(params[0], params[1], rtol=1e-4, atol=1e-5)


def saved_bytes(function: Any) -> int:
    """Bytes of the tensors autograd keeps for the backward pass while ``function`` runs."""
    total = 0

    def pack(tensor: th.Tensor) -> th.Tensor:
        nonlocal total
        total += tensor.numel() * tensor.element_size()
        return tensor

    with th.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        function()
    return total


def test_chunks_bound_the_memory_of_the_graph() -> None:
    """With chunks, the forward pass keeps a graph of (nearly) nothing but its inputs and outputs."""
    model, batch = batch_and_model("none", hidden_size=64)
    whole = saved_bytes(lambda: recurrent.evaluate_episode_sequences(model.policy, batch, None))
    chunked = saved_bytes(lambda: recurrent.evaluate_episode_sequences(model.policy, batch, 30))
    assert chunked < whole / 10, (chunked, whole)


def manual_values(policy: RecurrentActorCriticPolicy, observations: np.ndarray) -> np.ndarray:
    """``V`` at every step of one sequence, the critic stepped one observation at a time with its state passed on."""
    state = recurrent.zero_states(policy.lstm_critic, 1, policy.device)
    values = []
    with th.no_grad():
        for obs in observations:
            features = policy.extract_features(th.as_tensor(obs[None]), policy.vf_features_extractor)
            latent, state = policy.lstm_critic(features.unsqueeze(0), state)
            values.append(float(policy.value_net(policy.mlp_extractor.forward_critic(latent[0]))[0, 0]))
    return np.array(values)


def test_values_and_bootstrapping_come_from_the_history() -> None:
    """``V(s_t | h_t)`` in the update, and ``V(s_T | h_T)`` for a truncated episode's final observation."""
    model, batch = batch_and_model("value")
    values = model._evaluate_episodes(batch).values.detach().numpy()
    truncated = np.flatnonzero(batch.truncated)
    bootstrap = model._bootstrap_value_function(batch)(
        {k: v[truncated] for k, v in batch.terminal_observations.items()}
        if isinstance(batch.terminal_observations, dict)
        else batch.terminal_observations[truncated]
    )
    ends = np.cumsum(batch.lengths)
    for i, (length, end) in enumerate(zip(batch.lengths, ends)):
        expected = manual_values(
            model.policy,
            np.concatenate([batch.observations[end - length : end], batch.terminal_observations[i : i + 1]]),
        )
        np.testing.assert_allclose(values[end - length : end], expected[:-1], rtol=1e-5, atol=1e-6)
        if i in truncated:
            np.testing.assert_allclose(bootstrap[list(truncated).index(i)], expected[-1], rtol=1e-5, atol=1e-6)
    # Without the history the final observation's value is another number.
    alone = manual_values(model.policy, batch.terminal_observations[truncated[:1]])
    assert abs(alone[0] - bootstrap[0]) > 1e-4


@pytest.mark.parametrize("deterministic", [True, False])
def test_predict_with_state(deterministic: bool) -> None:
    """``predict(obs, state, episode_start, deterministic)`` as RecurrentPPO: vectorised or not, reset at starts."""
    model = REINFORCE("MlpLstmPolicy", short_cartpole(1), policy_kwargs=SMALL, seed=0)
    observations = np.random.default_rng(0).normal(size=(6, 2, 2)).astype(np.float32)  # (time, envs, obs)
    starts = np.array([[True, True], [False, False], [False, True], [False, False], [True, False], [False, False]])
    state = None
    actions, states = [], []
    for obs, start in zip(observations, starts):
        action, state = model.predict(obs, state=state, episode_start=start, deterministic=deterministic)
        assert action.shape == (2,) and state[0].shape == (1, 2, 8) and state[1].shape == (1, 2, 8)
        actions.append(action)
        states.append(state)
    # The states are those of the actor's LSTM stepped by hand, reset where an episode starts.
    h, c = (np.zeros((1, 2, 8), np.float32),) * 2
    for obs, start, state in zip(observations, starts, states):
        keep = (~start).astype(np.float32)[None, :, None]
        with th.no_grad():
            features = model.policy.extract_features(th.as_tensor(obs), model.policy.pi_features_extractor)
            _, (h_t, c_t) = model.policy.lstm_actor(features[None], (th.as_tensor(h * keep), th.as_tensor(c * keep)))
        h, c = h_t.numpy(), c_t.numpy()
        np.testing.assert_allclose(state[0], h, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(state[1], c, rtol=1e-5, atol=1e-6)
    if deterministic:  # env 1 alone, not vectorised: the same actions
        single_state = None
        for t, (obs, start) in enumerate(zip(observations[:, 1], starts[:, 1])):
            action, single_state = model.predict(
                obs, state=single_state, episode_start=np.array([start]), deterministic=True
            )
            assert action.shape == () and action == actions[t][1]


def test_predict_state_matters() -> None:
    """The hidden state matters: the same observation after different histories gets other probabilities."""
    model = REINFORCE("MlpLstmPolicy", short_cartpole(1), policy_kwargs=SMALL, seed=0)
    policy = model.policy
    obs = th.zeros(1, 2)
    fresh = recurrent.zero_states(policy.lstm_actor, 1, policy.device)
    with th.no_grad():
        _, after_step = policy.get_distribution(th.ones(1, 2), fresh, th.zeros(1))
        p_fresh = policy.get_distribution(obs, fresh, th.zeros(1))[0].distribution.probs
        p_after = policy.get_distribution(obs, after_step, th.zeros(1))[0].distribution.probs
    assert not th.allclose(p_fresh, p_after)


@pytest.mark.parametrize("cls", ALGOS)
def test_save_load_predict_and_continue_identically(tmp_path: Any, cls: type) -> None:
    """docs/maths.md §7.5 with an LSTM policy: same predictions with states after loading; continuing is identical."""
    kwargs: dict[str, Any] = {"n_episodes": 3, "learning_rate": 3e-3, "baseline": "value"}

    def env() -> DummyVecEnv:
        return short_cartpole(2, seed=5)

    a = cls("MlpLstmPolicy", env(), policy_kwargs=SMALL, seed=0, **kwargs)
    a.learn(300)
    a.save(tmp_path / "a.zip")
    if cls is OffPolicyPG:
        a.save_replay_buffer(tmp_path / "buffer")
    b = cls.load(tmp_path / "a.zip", env=env())
    assert isinstance(b.policy, RecurrentActorCriticPolicy)
    obs = np.random.default_rng(1).normal(size=(5, 3, 2)).astype(np.float32)
    state_a = state_b = None
    for t, o in enumerate(obs):
        start = np.full(3, t == 0)
        action_a, state_a = a.predict(o, state_a, start, deterministic=True)
        action_b, state_b = b.predict(o, state_b, start, deterministic=True)
        np.testing.assert_array_equal(action_a, action_b)
        np.testing.assert_array_equal(state_a[0], state_b[0])
        np.testing.assert_array_equal(state_a[1], state_b[1])
    if cls is OffPolicyPG:
        b.load_replay_buffer(tmp_path / "buffer")
    for model in (a, b):
        model.set_random_seed(1)
        model.learn(400)  # the env reset on both sides (a loaded model cannot resume a running episode)
    assert a.num_timesteps == b.num_timesteps and a._n_updates == b._n_updates
    for p, q in zip(params_of(a), params_of(b)):
        assert th.equal(p, q)
    c = cls.load(tmp_path / "a.zip")
    assert not all(th.equal(p, q) for p, q in zip(params_of(a), params_of(c)))


@pytest.mark.parametrize("cls", ALGOS)
def test_unsupported_options_are_refused_before_training(cls: type) -> None:
    """gSDE, the separate value fit and a bad chunk size are refused, each naming the parameter."""
    env = make_vec_env("Pendulum-v1", n_envs=1)
    with pytest.raises(ValueError, match="use_sde=True is not supported with a recurrent policy"):
        cls("MlpLstmPolicy", env, use_sde=True)
    vf_kwargs: dict[str, Any] = {"vf_coef": 0.0} if cls is OffPolicyPG else {}
    with pytest.raises(ValueError, match="vf_epochs=3 is not supported with a recurrent policy"):
        cls("MlpLstmPolicy", env, baseline="value", vf_epochs=3, **vf_kwargs)
    for bad in (0, -5, 2.5):
        with pytest.raises(ValueError, match="recurrent_chunk_steps"):
            cls("MlpLstmPolicy", env, recurrent_chunk_steps=bad)


class MaskedCueRecall(gym.Env):
    """
    A masked POMDP: a cue (0 or 1) is seen at the first step only and must be named at the second.

    Action 2 is never allowed and raises; at the first step action 1 stops (reward 0.3) and action
    0 goes on; at the second step (a blank observation) naming the cue pays 1.  The best policy
    with memory earns 1, the best without it 0.6.
    """

    observation_space = gym.spaces.Discrete(3)
    action_space = gym.spaces.Discrete(3)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        super().reset(seed=seed)
        self.cue, self.t = int(self.np_random.random() >= 0.6), 0
        return self.cue, {}

    def action_masks(self) -> np.ndarray:
        return np.array([True, True, False])

    def step(self, action: int) -> tuple[int, float, bool, bool, dict[str, Any]]:
        if int(action) == 2:
            raise ValueError("invalid action 2 taken")
        self.t += 1
        if self.t == 1:
            return 2, 0.3 * int(action), int(action) == 1, False, {}
        return 2, float(int(action) == self.cue), True, False, {}


@pytest.mark.parametrize("cls", ALGOS)
def test_masked_pomdp_trains_with_a_maskable_recurrent_policy(cls: type) -> None:
    """Masks and memory together: ``MlpLstmPolicy`` with an env that has masks becomes the maskable LSTM policy."""
    kwargs: dict[str, Any] = {"batch_episodes": 16} if cls is OffPolicyPG else {}
    env = DummyVecEnv([MaskedCueRecall for _ in range(2)])
    model = cls(
        "MlpLstmPolicy",
        env,
        learning_rate=1e-2,
        n_episodes=16,
        gamma=1.0,
        policy_kwargs={"lstm_hidden_size": 16, "net_arch": []},
        seed=0,
        **kwargs,
    )
    assert isinstance(model.policy, recurrent.MaskableRecurrentActorCriticPolicy)
    check = CheckRecordedLogProbs()
    invalid_logit = model.policy.action_net.bias.detach()[2].clone()
    model.learn(6_000, callback=check)
    # The update scores the masked distribution the actions came from (OffPolicyPG: before its first
    # update; later its buffer holds episodes of older parameters).
    assert max(check.max_errors if cls is REINFORCE else check.max_errors[:1]) < 1e-5
    assert th.equal(model.policy.action_net.bias.detach()[2], invalid_logit)  # an invalid logit never moves
    # Deterministic episodes with the LSTM state carried, and the masks: the cue is recalled.
    returns = []
    for seed in range(20):
        probe = MaskedCueRecall()
        obs, _ = probe.reset(seed=seed)
        state, start, total, done = None, np.array([True]), 0.0, False
        while not done:
            action, state = model.predict(obs, state, start, deterministic=True, action_masks=probe.action_masks())
            obs, reward, terminated, truncated, _ = probe.step(int(action))
            total, start, done = total + reward, np.array([False]), terminated or truncated
        returns.append(total)
    assert np.mean(returns) == 1.0, returns
