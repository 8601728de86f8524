"""Recurrent policies: the update is, in expectation, the exact gradient of a POMDP that needs memory.

The POMDP (``CueRecall``): the first observation is a cue ``c`` (0 with probability 0.6, else 1).
The agent may stop at once (action 1: reward 0.3, the episode ends after one step) or go on
(action 0, no reward); it then sees a blank observation (2), whatever the cue was, and is paid 1
if its action equals the cue.  A policy that remembers the cue earns 1 per continued episode,
one without memory at most 0.6: the best policy needs memory, and the episodes have lengths 1 and 2.

The exact gradient: the six histories (cue, first action, second action) are enumerated and each
one's probability is computed with the policy's own modules (one-hot features, ``lstm_actor`` run
step by step from a zero state, ``mlp_extractor``, ``action_net``), independently of the code
under test; ``J = sum_h P(h) R(h)`` and autograd gives ``grad J`` with respect to the actor's
parameters.  ``gamma = 1``, so reward-to-go with any baseline is unbiased for ``grad J``
(docs/maths.md §9.1).

The statistic is ``tests/test_exact_gradient.py``'s: ``K`` independent batches, each an SGD step of
learning rate 1 from the same parameters (``Δθ = -grad L``); for every coordinate
``t = (mean - target) / se`` with the sample standard error, and ``max |t| < Z = 5`` (with ~150
coordinates, a correct library fails with probability below 1e-3 by Bonferroni; the seeds are
fixed, so a run is deterministic).  Each passing check also asserts its power: ``max |target| / se
>= 2 Z``.  Teeth: the same harness rejects (``max |t| > 2 Z``) an update that resets the LSTM state at
every step (the estimator of a memoryless policy) and one that cuts backpropagation through time
after one step (truncated BPTT, the hidden state detached between steps).

Measured (seed 2000, K = 300 batches of 16 episodes): the correct runs have ``max |t|`` of 1.5-2.1
with power 27-33.  The truncated-BPTT update has ``max |t|`` = 16.9; the memoryless one is rejected
without any statistics, since the recurrent weights ``weight_hh`` get exactly no update from it while
their exact gradient is not 0 (``max |t|`` = inf).  Each case takes 6-20 s of CPU (36 s the file).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from sb3_contrib.common.recurrent.type_aliases import RNNStates
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import DummyVecEnv

import sb3_reinforce.common.recurrent as recurrent
from sb3_reinforce import REINFORCE, OffPolicyPG
from sb3_reinforce.common.episodes import EpisodeBatch

Z = 5.0
N_EPISODES = 16
N_BATCHES = 300
SEED = 2000
CUE_PROBABILITY = 0.6  # of cue 0
STOP_REWARD = 0.3
BLANK = 2
POLICY_KWARGS: dict[str, Any] = {
    "lstm_hidden_size": 4,
    "net_arch": {"pi": [], "vf": []},
    "optimizer_class": th.optim.SGD,
    "ortho_init": False,
}


class CueRecall(gym.Env):
    """The POMDP of the module docstring."""

    observation_space = gym.spaces.Discrete(3)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        super().reset(seed=seed)
        self.cue = int(self.np_random.random() >= CUE_PROBABILITY)
        self.t = 0
        return self.cue, {}

    def step(self, action: int) -> tuple[int, float, bool, bool, dict[str, Any]]:
        self.t += 1
        if self.t == 1:
            if int(action) == 1:
                return BLANK, STOP_REWARD, True, False, {}
            return BLANK, 0.0, False, False, {}
        return BLANK, float(int(action) == self.cue), True, False, {}


#: Every history: (cue probability, observations, actions, return).
HISTORIES = [
    (p, obs, actions, ret)
    for cue, p in ((0, CUE_PROBABILITY), (1, 1 - CUE_PROBABILITY))
    for obs, actions, ret in (
        ([cue], [1], STOP_REWARD),
        ([cue, BLANK], [0, 0], float(cue == 0)),
        ([cue, BLANK], [0, 1], float(cue == 1)),
    )
]


def actor_parameters(policy: RecurrentActorCriticPolicy) -> list[th.nn.Parameter]:
    """The parameters that define ``pi`` (the actor's LSTM and head; ``net_arch`` has no actor layers)."""
    return [*policy.lstm_actor.parameters(), *policy.action_net.parameters()]


def step_log_probs(policy: RecurrentActorCriticPolicy, observations: list[int], actions: list[int]) -> th.Tensor:
    """``log pi(a_t | h_t)`` of every step of one history, the LSTM stepped by hand from a zero state."""
    lstm = policy.lstm_actor
    state = (th.zeros(lstm.num_layers, 1, lstm.hidden_size), th.zeros(lstm.num_layers, 1, lstm.hidden_size))
    terms = []
    for obs, action in zip(observations, actions):
        features = th.nn.functional.one_hot(th.tensor([int(obs)]), 3).float()
        output, state = lstm(features.unsqueeze(0), state)
        logits = policy.action_net(policy.mlp_extractor.forward_actor(output[0]))
        terms.append(th.log_softmax(logits, dim=-1)[0, int(action)])
    return th.stack(terms)


def history_log_prob(policy: RecurrentActorCriticPolicy, observations: list[int], actions: list[int]) -> th.Tensor:
    """``sum_t log pi(a_t | h_t)`` of one history."""
    return step_log_probs(policy, observations, actions).sum()


def exact_gradient(policy: RecurrentActorCriticPolicy) -> np.ndarray:
    """``grad J`` over :func:`actor_parameters`, by enumerating the histories."""
    objective = sum(p * th.exp(history_log_prob(policy, obs, actions)) * ret for p, obs, actions, ret in HISTORIES)
    grads = th.autograd.grad(objective, actor_parameters(policy))  # type: ignore[arg-type]
    return th.cat([g.flatten() for g in grads]).double().numpy()


def test_histories_are_a_distribution() -> None:
    """The enumeration covers every history: probabilities sum to 1 for the policy's parameters."""
    model = make_model(REINFORCE, baseline="none")
    with th.no_grad():
        total = sum(p * float(th.exp(history_log_prob(model.policy, obs, actions))) for p, obs, actions, _ in HISTORIES)
    assert total == pytest.approx(1.0, abs=1e-6)


def make_model(cls: type, n_envs: int = 1, **kwargs: Any) -> Any:
    env = DummyVecEnv([CueRecall for _ in range(n_envs)])
    model = cls(
        "MlpLstmPolicy",
        env,
        learning_rate=1.0,
        n_episodes=N_EPISODES,
        gamma=1.0,
        policy_kwargs=POLICY_KWARGS,
        seed=SEED,
        device="cpu",
        **kwargs,
    )
    # Fixed, non-trivial parameters (the initial ones, scaled up so that the policy is far from uniform).
    with th.no_grad():
        for param in actor_parameters(model.policy):
            param.mul_(3.0)
    return model


class SwapParameters(BaseCallback):
    """After collection (before the update), load the target parameters: the episodes become off-policy."""

    def __init__(self, target: dict[str, th.Tensor]):
        super().__init__()
        self.target = target

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        self.model.policy.load_state_dict(self.target)


def gradient_samples(model: Any, behaviour: dict[str, th.Tensor] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """
    ``K`` draws of ``Δθ / lr`` over the actor's parameters, and ``grad J`` at the parameters updated.

    :param model: The model, with its fixed parameters.
    :param behaviour: Parameters that play the episodes (OffPolicyPG), the model's being the target.
    """
    target = {k: v.clone() for k, v in model.policy.state_dict().items()}
    start = th.cat([p.detach().flatten() for p in actor_parameters(model.policy)])
    samples = np.empty((N_BATCHES, len(start)))
    for k in range(N_BATCHES):
        model.policy.load_state_dict(behaviour if behaviour is not None else target)
        if isinstance(model, OffPolicyPG):
            model.replay_buffer.reset()
        model.set_random_seed(SEED + k)
        model.learn(1, callback=SwapParameters(target) if behaviour is not None else None)
        after = th.cat([p.detach().flatten() for p in actor_parameters(model.policy)])
        samples[k] = (after - start).double().numpy()  # Δθ / lr with lr = 1
    model.policy.load_state_dict(target)
    return samples, exact_gradient(model.policy)


def t_statistics(samples: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """``(max |t|, power)`` of the mean of ``samples`` against ``target``."""
    se = samples.std(axis=0, ddof=1) / np.sqrt(len(samples))
    diff = samples.mean(axis=0) - target
    varies = se > 0
    # A coordinate that never varies must match exactly (float32 noise aside).
    t = np.where(varies, diff / np.where(varies, se, 1.0), np.where(np.abs(diff) < 1e-6, 0.0, np.inf))
    power = float((np.abs(target[varies]) / se[varies]).max())
    return float(np.abs(t).max()), power


def assert_exact(samples: np.ndarray, target: np.ndarray) -> None:
    max_t, power = t_statistics(samples, target)
    assert max_t < Z, f"the update does not match the exact gradient: max|t|={max_t:.2f} (power {power:.1f})"
    assert power >= 2 * Z, f"the harness is too weak: power {power:.1f}"


def assert_rejected(samples: np.ndarray, target: np.ndarray) -> None:
    max_t, _ = t_statistics(samples, target)
    assert max_t > 2 * Z, f"the wrong update was not rejected: max|t|={max_t:.2f}"


def reset_every_step(
    policy: RecurrentActorCriticPolicy,
    observations: Any,
    actions: th.Tensor,
    n_sequences: int,
    cells: th.Tensor,
    action_masks: Any = None,
) -> tuple[th.Tensor, th.Tensor, th.Tensor | None]:
    """A wrong update: the LSTM state reset at every step (a memoryless policy's log-probabilities)."""
    states = RNNStates(
        recurrent.zero_states(policy.lstm_actor, n_sequences, actions.device),
        recurrent._critic_states(policy, n_sequences),
    )
    values, log_prob, entropy = policy.evaluate_actions(observations, actions, states, th.ones(len(actions)))
    return values.flatten()[cells], log_prob[cells], entropy[cells]


def truncated_bptt(
    policy: RecurrentActorCriticPolicy,
    observations: Any,
    actions: th.Tensor,
    n_sequences: int,
    cells: th.Tensor,
    action_masks: Any = None,
) -> tuple[th.Tensor, th.Tensor, th.Tensor | None]:
    """A wrong update: the right forward pass, but the gradient cut between steps (BPTT truncated at 1)."""
    lstm = policy.lstm_actor
    features = policy.extract_features(observations, policy.pi_features_extractor)
    sequence = features.reshape(n_sequences, -1, lstm.input_size).swapaxes(0, 1)
    state = recurrent.zero_states(lstm, n_sequences, actions.device)
    outputs = []
    for step in sequence:
        output, (h, c) = lstm(step.unsqueeze(0), state)
        outputs.append(output)
        state = (h.detach(), c.detach())
    latent = th.cat(outputs).swapaxes(0, 1).reshape(-1, lstm.hidden_size)
    distribution = policy._get_action_dist_from_latent(policy.mlp_extractor.forward_actor(latent))
    values = th.zeros(len(actions))
    return values[cells], distribution.log_prob(actions)[cells], distribution.entropy()[cells]


@pytest.mark.parametrize("n_envs", [1, 3])
def test_reinforce_exact_gradient(n_envs: int) -> None:
    """REINFORCE with an LSTM policy: ``E[Δθ] = grad J`` (1 env, and 3 envs sharing hidden-state batches)."""
    model = make_model(REINFORCE, n_envs=n_envs, baseline="mean")
    assert_exact(*gradient_samples(model))


def test_offpolicy_exact_gradient() -> None:
    """OffPolicyPG, per-decision weights without truncation, episodes played by other parameters: ``grad J``."""
    model = make_model(
        OffPolicyPG,
        batch_episodes=N_EPISODES,
        buffer_size=10_000,
        importance_weights="per_decision",
        truncation=None,
        baseline="value",
    )
    behaviour = {k: v.clone() for k, v in model.policy.state_dict().items()}
    generator = th.Generator().manual_seed(0)
    with th.no_grad():
        for name in ("action_net.weight", "lstm_actor.weight_ih_l0"):
            behaviour[name] += 0.5 * th.randn(behaviour[name].shape, generator=generator)
    assert_exact(*gradient_samples(model, behaviour))


@pytest.mark.parametrize("wrong", [reset_every_step, truncated_bptt])
def test_wrong_recurrent_updates_are_rejected(monkeypatch: pytest.MonkeyPatch, wrong: Any) -> None:
    """Teeth: the harness rejects a memoryless update and a truncated-BPTT update."""
    monkeypatch.setattr(recurrent, "_evaluate_grid", wrong)
    model = make_model(REINFORCE, baseline="none")
    assert_rejected(*gradient_samples(model))


def replay_update(policy: RecurrentActorCriticPolicy, batch: EpisodeBatch, lr: float) -> list[th.Tensor]:
    """
    The REINFORCE update (baseline ``"mean"``, reward-to-go, ``gamma = 1``) recomputed from the recorded episodes.

    Independently of the library: each episode stepped through the LSTM by hand, the returns and
    the leave-one-out baseline with Python loops, in float64, then one SGD step.
    """
    ends = np.cumsum(batch.lengths)
    episodes = [
        (batch.observations[e - n : e], batch.actions[e - n : e], batch.rewards[e - n : e])
        for n, e in zip(batch.lengths, ends)
    ]
    returns = [[float(sum(rewards[t:])) for t in range(len(rewards))] for _, _, rewards in episodes]
    n = len(episodes)
    loss = th.zeros((), dtype=th.float64)
    for i, (obs, actions, _) in enumerate(episodes):
        log_probs = step_log_probs(policy, list(obs), list(actions))
        for t in range(len(actions)):
            others = [returns[j][t] if t < len(returns[j]) else 0.0 for j in range(n) if j != i]
            advantage = returns[i][t] - sum(others) / (n - 1)
            loss = loss - log_probs[t].double() * advantage / n
    grads = th.autograd.grad(loss, list(policy.parameters()), allow_unused=True)
    return [
        p.detach() - lr * (g.float() if g is not None else th.zeros_like(p)) for p, g in zip(policy.parameters(), grads)
    ]


def test_update_replays_from_recorded_episodes() -> None:
    """The applied update equals the loss of docs/maths.md §4 recomputed from the recorded episodes."""
    model = make_model(REINFORCE, n_envs=2, baseline="mean")
    model.learning_rate = 0.1
    model._setup_lr_schedule()
    before = [p.detach().clone() for p in model.policy.parameters()]
    snapshot = {k: v.clone() for k, v in model.policy.state_dict().items()}
    model.learn(1)
    after = [p.detach().clone() for p in model.policy.parameters()]
    model.policy.load_state_dict(snapshot)
    expected = replay_update(model.policy, model.rollout_buffer, 0.1)
    assert any(not th.equal(a, b) for a, b in zip(after, before))
    for got, want in zip(after, expected):
        assert th.allclose(got, want, rtol=1e-5, atol=1e-6)


class SteppedPolicy:
    """
    ``evaluate_actions`` of a recurrent policy with each episode stepped through the LSTMs by hand.

    ``tests/offpolicy_helpers.reference_loss`` scores a batch with ``policy.evaluate_actions(obs,
    actions)``; this object gives it the recurrent log-probabilities, values and entropies, one
    step at a time from a zero state per episode, independently of the library's padded evaluation.
    """

    def __init__(self, policy: RecurrentActorCriticPolicy, lengths: np.ndarray):
        self.policy, self.lengths = policy, lengths

    def _latents(self, lstm: th.nn.LSTM, features: th.Tensor) -> th.Tensor:
        outputs = []
        ends = np.cumsum(self.lengths)
        for length, end in zip(self.lengths, ends):
            state = (th.zeros(lstm.num_layers, 1, lstm.hidden_size), th.zeros(lstm.num_layers, 1, lstm.hidden_size))
            for t in range(end - length, end):
                output, state = lstm(features[t : t + 1].unsqueeze(0), state)
                outputs.append(output[0])
        return th.cat(outputs)

    def evaluate_actions(self, obs: th.Tensor, actions: th.Tensor) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        policy = self.policy
        features = policy.extract_features(obs, policy.pi_features_extractor)
        latent_pi = policy.mlp_extractor.forward_actor(self._latents(policy.lstm_actor, features))
        latent_vf = policy.mlp_extractor.forward_critic(self._latents(policy.lstm_critic, features))
        distribution = policy._get_action_dist_from_latent(latent_pi)
        return policy.value_net(latent_vf), distribution.log_prob(actions), distribution.entropy()


def test_offpolicy_updates_replay_from_sampled_episodes() -> None:
    """
    Every OffPolicyPG gradient step (per-decision weights truncated at 2, leave-one-out baseline,
    entropy bonus, two steps per rollout on replayed episodes) equals ``tests/offpolicy_helpers``'
    independent loss of docs/maths.md §6 with the LSTM stepped by hand.
    """
    import copy

    from tests.offpolicy_helpers import LossConfig, finish_records, record_updates, reference_loss

    model = OffPolicyPG(
        "MlpLstmPolicy",
        DummyVecEnv([CueRecall, CueRecall]),
        learning_rate=0.05,
        n_episodes=4,
        batch_episodes=5,
        gradient_steps=2,
        importance_weights="per_decision",
        truncation=2.0,
        baseline="mean",
        ent_coef=0.01,
        policy_kwargs=POLICY_KWARGS,
        seed=SEED,
        device="cpu",
    )
    records = record_updates(model)
    model.learn(60)
    finish_records(model, records)
    assert len(records) >= 6
    config = LossConfig.of(model)
    for record in records:
        policy = copy.deepcopy(record.policy_before)
        loss = reference_loss(SteppedPolicy(policy, record.batch.lengths), record.batch, config, discrete=True)
        grads = th.autograd.grad(loss, list(policy.parameters()), allow_unused=True)
        expected = -0.05 * np.concatenate(
            [
                (g if g is not None else th.zeros_like(p)).detach().double().numpy().ravel()
                for g, p in zip(grads, policy.parameters())
            ]
        )
        np.testing.assert_allclose(record.params_after - record.params_before, expected, rtol=1e-4, atol=1e-6)
        assert np.abs(expected).max() > 1e-3
