"""OffPolicyPG's update is the docs/maths.md §6 estimator: exactly (replay), in expectation, REINFORCE on-policy.

1. Importance-weight functions against plain loops.
2. Replay: the update the library applied, for truncated ``per_decision`` and for ``per_step``
   (every baseline, with and without reward-to-go, discounting, normalisation, entropy, clipping,
   truncated episodes), equals the SGD step of the docs/maths.md §6 loss recomputed independently
   (``tests/offpolicy_helpers.reference_loss``: Python loops, float64) on the recorded episodes.
   Several rollouts and gradient steps with a large learning rate make the behaviour policies
   differ from the trained one, and the test checks that truncation was actually active.
3. Unbiasedness: on the tabular MDPs of ``benchmarks/tabular_mdp.py`` the episodes are sampled with
   behaviour parameters ``theta_b``; a callback loads different target parameters ``theta'`` at
   ``on_rollout_end``, before the update.  With SGD and ``learning_rate=1`` the applied update is
   the estimate of ``+grad J(theta')``.  ``K`` independent batches give per-coordinate t-statistics
   ``t_i = (mean_k x_ki - target_i) / (sd_i / sqrt(K))`` (``sd_i`` measured from the same draws);
   the check is ``max_i |t_i| < Z`` with ``Z = 5`` (``K = 100``: Student-t with 99 d.o.f.,
   ``P(|t| > 5) < 3e-6`` per coordinate, so about 1e-4 over the ~60 coordinates of this file).
   Each check also asserts it had power, ``max_i |target_i| / se_i >= 2 Z``.  Teeth: the same
   harness with the importance weights removed (every ``w_t = 1``) must give ``max |t| > 2 Z``.
4. When the behaviour policy is the current one (first update, one gradient step), the update
   equals REINFORCE's on the same episodes, for every mode, truncation and option.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3.common.logger import configure

import sb3_reinforce.common.estimator as estimator_module
from benchmarks.tabular_mdp import (
    TabularEnv,
    estimate_kappa,
    fixed_horizon_mdp,
    flat_gradient,
    random_length_mdp,
    random_policy_params,
)
from benchmarks.tabular_policy import SwapParameters, action_net_vector
from sb3_reinforce import REINFORCE, OffPolicyPG
from sb3_reinforce.common.baselines import leave_one_out_mean
from sb3_reinforce.common.importance_weights import (
    effective_sample_size,
    importance_ratios,
    per_decision_returns,
    per_decision_value_targets,
    per_decision_weights,
    truncated_fraction,
    truncated_ratios,
)
from tests.offpolicy_helpers import (
    LossConfig,
    finish_records,
    policy_vector,
    record_updates,
    reference_update,
)

th.set_num_threads(1)


# ---------------------------------------------------------------------------------------------
# 1. Importance-weight functions against loops
# ---------------------------------------------------------------------------------------------
def random_episodes(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 9, size=int(rng.integers(2, 6)))
    rewards = rng.normal(size=int(lengths.sum()))
    ratios = np.exp(rng.normal(0.0, 0.5, size=int(lengths.sum())))
    return lengths, rewards, ratios


def split(values: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
    return np.split(values, np.cumsum(lengths)[:-1])


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("gamma", [0.0, 0.9, 1.0])
def test_per_decision_functions_match_loops(seed: int, gamma: float) -> None:
    lengths, rewards, ratios = random_episodes(seed)
    weights = per_decision_weights(ratios, lengths)
    expected_weights = np.concatenate([np.cumprod(r) for r in split(ratios, lengths)])
    np.testing.assert_allclose(weights, expected_weights, rtol=1e-12)
    for to_go in (True, False):
        returns = per_decision_returns(rewards, weights, lengths, gamma, to_go)
        expected = []
        for r, w in zip(split(rewards, lengths), split(weights, lengths)):
            for t in range(len(r)):
                if to_go:
                    expected.append(sum(gamma ** (u - t) * w[u] * r[u] for u in range(t, len(r))))
                else:
                    expected.append(sum(gamma**u * w[max(t, u)] * r[u] for u in range(len(r))))
        np.testing.assert_allclose(returns, expected, rtol=1e-10, atol=1e-12)
        baseline = leave_one_out_mean(returns, lengths, to_go)
        per_episode = split(returns, lengths)
        expected_b = []
        for i, own in enumerate(per_episode):
            for t in range(len(own)):
                others = [
                    g[t] if t < len(g) else (0.0 if to_go else g[-1]) for j, g in enumerate(per_episode) if j != i
                ]
                expected_b.append(np.mean(others))
        np.testing.assert_allclose(baseline, expected_b, rtol=1e-10, atol=1e-12)
        # All weights 1: the plain returns of docs/maths.md §3.
        plain = per_decision_returns(rewards, np.ones_like(rewards), lengths, gamma, to_go)
        from sb3_reinforce.common.returns import discounted_returns

        np.testing.assert_allclose(plain, discounted_returns(rewards, lengths, gamma, to_go), rtol=1e-10, atol=1e-12)


def test_ratio_truncation_ess_and_targets() -> None:
    log_pi = np.log(np.array([0.5, 0.2, 0.9, 0.3]))
    log_mu = np.log(np.array([0.25, 0.4, 0.3, 0.3]))
    ratios = importance_ratios(log_pi, log_mu)
    np.testing.assert_allclose(ratios, [2.0, 0.5, 3.0, 1.0])
    np.testing.assert_allclose(truncated_ratios(ratios, 1.5), [1.5, 0.5, 1.5, 1.0])
    np.testing.assert_allclose(truncated_ratios(ratios, None), ratios)
    assert truncated_fraction(ratios, 1.5) == 0.5 and truncated_fraction(ratios, None) == 0.0
    assert effective_sample_size(np.ones(7)) == pytest.approx(7.0)
    assert effective_sample_size(np.array([1.0, 0.0, 0.0])) == pytest.approx(1.0)
    assert effective_sample_size(np.array([2.0, 1.0])) == pytest.approx(9.0 / 5.0)
    assert effective_sample_size(np.zeros(3)) == 0.0
    assert np.isinf(importance_ratios(np.array([0.0]), np.array([-1000.0]))[0])
    targets = per_decision_value_targets(
        np.array([2.0, 3.0, 0.0]), np.array([0.5, 1.0, 0.0]), np.array([7.0, 8.0, 9.0])
    )
    np.testing.assert_allclose(targets, [4.0, 3.0, 9.0])


# ---------------------------------------------------------------------------------------------
# 2. Replay: the applied update is the docs/maths.md §6 formula, to float precision
# ---------------------------------------------------------------------------------------------
REPLAY_CASES = {
    "per_decision_c1_mean_rtg": dict(importance_weights="per_decision", truncation=1.0, baseline="mean"),
    "per_decision_c1.2_value_unbiased_norm": dict(
        importance_weights="per_decision",
        truncation=1.2,
        baseline="value",
        unbiased_discount=True,
        normalize_advantage=True,
        ent_coef=0.05,
    ),
    "per_decision_c1_mean_whole_return": dict(
        importance_weights="per_decision", truncation=1.0, baseline="mean", reward_to_go=False
    ),
    "per_decision_c1_value_whole_return_clip": dict(
        importance_weights="per_decision", truncation=1.0, baseline="value", reward_to_go=False, max_grad_norm=0.5
    ),
    "per_decision_none_none": dict(importance_weights="per_decision", truncation=None, baseline="none", gamma=0.95),
    "per_step_none_mean": dict(importance_weights="per_step", truncation=None, baseline="mean"),
    "per_step_c1_value_norm_ent": dict(
        importance_weights="per_step", truncation=1.0, baseline="value", normalize_advantage=True, ent_coef=0.05
    ),
    "per_step_c1.5_none_whole_return_unbiased": dict(
        importance_weights="per_step", truncation=1.5, baseline="none", reward_to_go=False, unbiased_discount=True
    ),
}


@pytest.mark.parametrize("case", sorted(REPLAY_CASES))
def test_applied_update_replays_spec_formula(case: str) -> None:
    kwargs: dict[str, Any] = dict(gamma=0.9)
    kwargs.update(REPLAY_CASES[case])
    lr = 0.05
    # Short time limit: many episodes end truncated (bootstrapped with the value baseline).
    model = OffPolicyPG(
        "MlpPolicy",
        gym.make("CartPole-v1", max_episode_steps=25),
        learning_rate=lr,
        n_episodes=3,
        batch_episodes=4,
        buffer_size=100,
        gradient_steps=3,
        policy_kwargs=dict(net_arch=dict(pi=[8], vf=[8]), optimizer_class=th.optim.SGD),
        seed=3,
        **kwargs,
    )
    records = record_updates(model)
    model.learn(1, log_interval=None)
    for _ in range(2):
        model.learn(1, reset_num_timesteps=False, log_interval=None)
    finish_records(model, records)
    assert len(records) == 9
    cfg = LossConfig.of(model)
    truncated_seen = 0.0
    for record in records:
        applied = record.params_after - record.params_before
        expected = reference_update(record, cfg, lr, model.max_grad_norm, discrete=True)
        scale = np.abs(expected).max()
        assert scale > 1e-4
        np.testing.assert_allclose(applied, expected, rtol=1e-4, atol=2e-5 * scale)
        with th.no_grad():
            obs = th.as_tensor(record.batch.observations)
            _, log_prob, _ = record.policy_before.evaluate_actions(obs, th.as_tensor(record.batch.actions))
        ratios = np.exp(log_prob.double().numpy() - record.batch.log_probs)
        if model.truncation is not None:
            truncated_seen += float(np.mean(ratios > model.truncation))
    assert any(record.batch.truncated.any() for record in records)
    if model.truncation is not None:
        assert truncated_seen > 0.0, "truncation never active: the replay would not test it"


# ---------------------------------------------------------------------------------------------
# 3. Unbiased off-policy gradient on the tabular MDPs
# ---------------------------------------------------------------------------------------------
Z = 5.0
K_BATCHES = 100


@dataclass
class MeanCheck:
    max_abs_t: float
    power: float  # max_i |target_i| / se_i


def mean_check(samples: np.ndarray, target: np.ndarray) -> MeanCheck:
    se = samples.std(axis=0, ddof=1) / np.sqrt(len(samples))
    t = (samples.mean(axis=0) - target) / se
    return MeanCheck(float(np.abs(t).max()), float((np.abs(target) / se).max()))


@dataclass(frozen=True)
class UnbiasedCase:
    mdp: str
    gamma: float
    baseline: str
    reward_to_go: bool
    unbiased_discount: bool
    n_episodes: int


UNBIASED_CASES = {
    "random_length_g0.9_none_rtg_unbiased": UnbiasedCase("random_length", 0.9, "none", True, True, 25),
    "random_length_g1_mean_rtg": UnbiasedCase("random_length", 1.0, "mean", True, False, 25),
    "fixed_horizon_g0.9_mean_whole_return": UnbiasedCase("fixed_horizon", 0.9, "mean", False, False, 20),
    "fixed_horizon_g0.8_value_rtg_unbiased": UnbiasedCase("fixed_horizon", 0.8, "value", True, True, 20),
}
MDPS = {"random_length": random_length_mdp, "fixed_horizon": fixed_horizon_mdp}


def target_and_behaviour(mdp: Any) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """
    ``theta'`` and ``theta_b``: 70% of the way from ``theta'`` to another random policy.

    Far enough for a large bias without weights, near enough to keep the importance weights'
    tails light (all the way, the random-length MDP's power halves).
    """
    target = random_policy_params(mdp, seed=7)
    other = random_policy_params(mdp, seed=21)
    behaviour = tuple((x + 0.7 * (y - x)).astype(np.float32).astype(np.float64) for x, y in zip(target, other))
    return target, (behaviour[0], behaviour[1])


class FreshBatches(SwapParameters):
    """
    Every rollout: empty the buffer and load ``theta_b``; at its end load ``theta'``; after the update
    record ``theta_after - theta'``.  Stops training once ``n_batches`` updates are recorded.
    """

    def __init__(self, behaviour: tuple[np.ndarray, np.ndarray], target: tuple[np.ndarray, np.ndarray], n_batches: int):
        super().__init__(behaviour, target)
        self.n_batches = n_batches
        self.target_vector = np.concatenate([target[0].ravel(), target[1]])
        self.samples: list[np.ndarray] = []
        self.rollouts = 0

    def _on_rollout_start(self) -> None:
        if self.rollouts > 0:  # the previous rollout's update is done
            self.samples.append(action_net_vector(self.model) - self.target_vector)
        self.rollouts += 1
        self.model.replay_buffer.reset()
        super()._on_rollout_start()

    def _on_rollout_end(self) -> None:
        # One env from a fresh start: the batch is exactly the rollout's n_episodes whole episodes.
        assert self.model.replay_buffer.n_episodes == self.model.n_episodes
        super()._on_rollout_end()

    def _on_step(self) -> bool:
        return len(self.samples) < self.n_batches


def offpolicy_samples(case: UnbiasedCase, n_batches: int = K_BATCHES) -> tuple[np.ndarray, np.ndarray]:
    """``n_batches`` draws of the applied update ``theta_after - theta'``, and the exact target ``grad J(theta')``."""
    mdp = MDPS[case.mdp]()
    target, behaviour = target_and_behaviour(mdp)
    model = OffPolicyPG(
        "MlpPolicy",
        TabularEnv(mdp),
        learning_rate=1.0,
        n_episodes=case.n_episodes,
        batch_episodes=case.n_episodes,
        buffer_size=10_000,
        gradient_steps=1,
        importance_weights="per_decision",
        truncation=None,
        gamma=case.gamma,
        baseline=case.baseline,
        reward_to_go=case.reward_to_go,
        unbiased_discount=case.unbiased_discount,
        policy_kwargs=dict(net_arch=dict(pi=[], vf=[]), optimizer_class=th.optim.SGD),
        seed=1000,
    )
    recorder = FreshBatches(behaviour, target, n_batches)
    model.learn(10**9, callback=recorder, log_interval=None)
    samples = np.array(recorder.samples)
    assert samples.shape == (n_batches, len(recorder.target_vector))
    kappa = estimate_kappa(case.gamma, case.reward_to_go, case.unbiased_discount)
    expected = flat_gradient(mdp.expected_estimate_kappa(*target, case.gamma, kappa))
    if kappa == case.gamma:  # the docs/maths.md §4 guarantee: this is grad J_gamma itself
        np.testing.assert_allclose(expected, flat_gradient(mdp.exact_gradient(*target, case.gamma)), atol=1e-10)
    return samples, expected


@pytest.mark.parametrize("name", sorted(UNBIASED_CASES))
def test_per_decision_update_is_unbiased_off_policy(name: str) -> None:
    samples, target = offpolicy_samples(UNBIASED_CASES[name])
    check = mean_check(samples, target)
    assert check.power >= 2 * Z, f"no power to detect a bias: {check}"
    assert check.max_abs_t < Z, f"off-policy update does not match grad J(theta'): {check}"


def test_teeth_without_importance_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same harness rejects the update computed as if the episodes were on-policy (all w_t = 1)."""
    monkeypatch.setattr(estimator_module, "per_decision_weights", lambda ratios, lengths: np.ones_like(ratios))
    samples, target = offpolicy_samples(UNBIASED_CASES["random_length_g0.9_none_rtg_unbiased"])
    check = mean_check(samples, target)
    assert check.max_abs_t > 2 * Z, f"the harness cannot see missing importance weights: {check}"


def test_behaviour_parameters_really_differ() -> None:
    """The harness is off-policy: behaviour and target policies differ markedly on every MDP."""
    for make in MDPS.values():
        mdp = make()
        target, behaviour = target_and_behaviour(mdp)
        pi_target = mdp.policy(*(th.as_tensor(x) for x in target))
        pi_behaviour = mdp.policy(*(th.as_tensor(x) for x in behaviour))
        assert float((pi_target - pi_behaviour).abs().max()) > 0.15


# ---------------------------------------------------------------------------------------------
# 4. On-policy, OffPolicyPG's update is REINFORCE's
# ---------------------------------------------------------------------------------------------
EQUAL_CASES = {
    "per_decision_c1_mean": dict(importance_weights="per_decision", truncation=1.0, baseline="mean"),
    "per_decision_none_value_norm": dict(
        importance_weights="per_decision", truncation=None, baseline="value", normalize_advantage=True
    ),
    "per_decision_c2_mean_whole_return_unbiased_ent": dict(
        importance_weights="per_decision",
        truncation=2.0,
        baseline="mean",
        reward_to_go=False,
        unbiased_discount=True,
        ent_coef=0.01,
    ),
    "per_decision_none_value_whole_return_clip": dict(
        importance_weights="per_decision", truncation=None, baseline="value", reward_to_go=False, max_grad_norm=0.3
    ),
    "per_step_c1_none": dict(importance_weights="per_step", truncation=1.0, baseline="none"),
    "per_step_none_value_unbiased_norm": dict(
        importance_weights="per_step",
        truncation=None,
        baseline="value",
        unbiased_discount=True,
        normalize_advantage=True,
    ),
    "per_step_c1_mean_whole_return": dict(
        importance_weights="per_step", truncation=1.0, baseline="mean", reward_to_go=False, ent_coef=0.01
    ),
}
EQUAL_ENVS = {
    "discrete": lambda: gym.make("CartPole-v1", max_episode_steps=40),
    "box": lambda: gym.make("Pendulum-v1", max_episode_steps=15),
}


@pytest.mark.parametrize("env_name", sorted(EQUAL_ENVS))
@pytest.mark.parametrize("case", sorted(EQUAL_CASES))
def test_on_policy_update_equals_reinforce(case: str, env_name: str) -> None:
    kwargs: dict[str, Any] = dict(gamma=0.97, learning_rate=3e-3, policy_kwargs=dict(net_arch=[16]))
    kwargs.update(EQUAL_CASES[case])
    n_episodes = 5
    off = OffPolicyPG(
        "MlpPolicy",
        EQUAL_ENVS[env_name](),
        n_episodes=n_episodes,
        batch_episodes=n_episodes,
        gradient_steps=1,
        seed=5,
        **kwargs,
    )
    records = record_updates(off)
    off.learn(1, log_interval=None)
    finish_records(off, records)
    (record,) = records
    assert record.batch.n_episodes == n_episodes
    # REINFORCE with the same policy and optimiser state, updated on the very same episodes.
    on_kwargs = {k: v for k, v in kwargs.items() if k not in ("importance_weights", "truncation")}
    on = REINFORCE("MlpPolicy", EQUAL_ENVS[env_name](), n_episodes=n_episodes, seed=5, **on_kwargs)
    on.policy.load_state_dict(record.policy_before.state_dict())
    on.policy.optimizer.load_state_dict(record.policy_before.optimizer.state_dict())
    on.set_logger(configure(None, []))
    on.rollout_buffer = record.batch
    on.train()
    assert np.abs(record.params_after - record.params_before).max() > 1e-4  # a real update happened
    np.testing.assert_allclose(record.params_after, policy_vector(on), rtol=0, atol=1e-6)

    # End to end: REINFORCE trained from scratch with the same seed plays the same episodes (one env,
    # fresh start: OffPolicyPG's first rollout is n_episodes whole episodes) and lands on the same parameters.
    scratch = REINFORCE("MlpPolicy", EQUAL_ENVS[env_name](), n_episodes=n_episodes, seed=5, **on_kwargs)
    scratch.learn(1)
    assert scratch.rollout_buffer is not None
    np.testing.assert_array_equal(scratch.rollout_buffer.observations, record.batch.observations)
    np.testing.assert_array_equal(scratch.rollout_buffer.lengths, record.batch.lengths)
    np.testing.assert_allclose(policy_vector(scratch), record.params_after, rtol=0, atol=1e-6)
