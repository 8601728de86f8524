"""OffPolicyPG's ``target_kl``: a rollout's gradient steps stop once the policy has moved too far.

See docs/offpolicy_pg.md (Updates) and docs/maths.md §6.1.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3.common.utils import obs_as_tensor
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from sb3_reinforce import OffPolicyPG
from sb3_reinforce.common.importance_weights import approximate_kl
from tests.offpolicy_helpers import policy_vector

th.set_num_threads(1)


def cartpole_model(**kwargs: Any) -> OffPolicyPG:
    settings: dict[str, Any] = dict(
        n_episodes=3, batch_episodes=4, buffer_size=2000, gradient_steps=4, learning_rate=1e-2, seed=0
    )
    settings.update(kwargs)
    return OffPolicyPG("MlpPolicy", "CartPole-v1", policy_kwargs=dict(net_arch=[16]), **settings)


def record_train_calls(model: OffPolicyPG, monkeypatch: pytest.MonkeyPatch) -> list[list[float]]:
    """The KL values measured in each ``train()`` call, one list per call."""
    calls: list[list[float]] = []
    measure, train = model._rollout_kl, model.train

    def recorded_measure(*args: Any) -> float:
        value = measure(*args)
        calls[-1].append(value)
        return value

    def recorded_train() -> None:
        calls.append([])
        train()

    monkeypatch.setattr(model, "_rollout_kl", recorded_measure)
    monkeypatch.setattr(model, "train", recorded_train)
    return calls


# ------------------------------------------------------------------------------------ the estimate


def test_approximate_kl_estimates_kl_of_behaviour_from_current() -> None:
    """Sampled from ``mu``, the estimate converges to ``KL(mu || pi)``, not to ``KL(pi || mu)``."""
    mu, pi = np.array([0.7, 0.2, 0.1]), np.array([0.3, 0.3, 0.4])
    actions = np.random.default_rng(0).choice(3, size=20_000, p=mu)
    ratios = pi[actions] / mu[actions]
    terms = (ratios - 1) - np.log(ratios)
    tolerance = 4 * terms.std() / np.sqrt(actions.size)  # four standard errors
    kl_mu_pi = float(np.sum(mu * np.log(mu / pi)))
    kl_pi_mu = float(np.sum(pi * np.log(pi / mu)))
    assert abs(kl_mu_pi - kl_pi_mu) > 3 * tolerance  # the two directions are told apart
    assert approximate_kl(ratios) == pytest.approx(kl_mu_pi, abs=tolerance)


def test_approximate_kl_edge_cases() -> None:
    assert approximate_kl(np.ones(5)) == 0.0
    assert approximate_kl(np.array([])) == 0.0
    assert approximate_kl(np.array([1.0, 0.0])) == np.inf  # pi gave the action no probability
    assert approximate_kl(np.array([1.0, np.inf])) == np.inf  # mu gave it none (ratio overflowed)
    assert approximate_kl(np.array([0.5, 2.0])) > 0


# ------------------------------------------------------------------------------------ the stop


def test_no_limit_reached_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """A limit never reached: the same updates as without one, with the divergence logged."""
    free = cartpole_model()  # each model seeds the global generators: build and train one at a time
    free.learn(600)
    limited = cartpole_model(target_kl=1e9)
    calls = record_train_calls(limited, monkeypatch)
    limited.learn(600)
    np.testing.assert_array_equal(policy_vector(limited), policy_vector(free))
    assert limited._n_updates == free._n_updates == 4 * len(calls)
    assert all(len(values) == 4 for values in calls)
    measured = np.concatenate(calls)
    assert np.all(np.isfinite(measured)) and np.all(measured > 0)
    assert limited.logger.name_to_value["train/gradient_steps"] == 4
    assert "train/approx_kl" in limited.logger.name_to_value
    assert "train/approx_kl" not in free.logger.name_to_value  # nothing measured without a limit


def test_tiny_limit_leaves_one_step_per_rollout() -> None:
    """The first step always runs; a limit below any divergence then stops: as ``gradient_steps=1``."""
    one_step = cartpole_model(gradient_steps=1)
    one_step.learn(600)
    stopped = cartpole_model(gradient_steps=4, target_kl=1e-12)
    stopped.learn(600)
    np.testing.assert_array_equal(policy_vector(stopped), policy_vector(one_step))
    assert stopped._n_updates == one_step._n_updates
    assert stopped.logger.name_to_value["train/gradient_steps"] == 1


def test_steps_stop_at_the_first_divergence_above_the_limit(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    target_kl = 0.004
    model = cartpole_model(gradient_steps=8, target_kl=target_kl, verbose=1)
    calls = record_train_calls(model, monkeypatch)
    model.learn(3000)
    for values in calls:  # one measure after each step taken
        assert all(value <= 1.5 * target_kl for value in values[:-1])
        assert len(values) == 8 or values[-1] > 1.5 * target_kl
    lengths = [len(values) for values in calls]
    assert model._n_updates == sum(lengths)
    assert min(lengths) < 8 and max(lengths) > 1  # some rollouts stopped early, not all after one step
    assert "Early stopping after gradient step" in capsys.readouterr().out


def test_divergence_is_measured_on_the_latest_rollout_from_the_policy_before_the_updates() -> None:
    """The logged ``approx_kl`` against a computation from scratch, on the latest rollout's episodes."""
    model = cartpole_model(target_kl=1e9)  # one env (built from its name)
    model.learn(300)
    assert model._rollout_episodes == 3  # one env: every rollout stores exactly n_episodes episodes
    model.train = lambda: None  # type: ignore[method-assign]
    model.learn(1, reset_num_timesteps=False)  # a new rollout, not trained on yet
    del model.train
    newest = model.replay_buffer.newest_episodes(3)
    assert newest.n_steps == int(model.replay_buffer.episode_lengths()[-3:].sum())

    def log_prob() -> np.ndarray:
        with th.no_grad():
            distribution = model.policy.get_distribution(obs_as_tensor(newest.observations, model.device))
            return distribution.log_prob(th.as_tensor(newest.actions)).double().numpy()

    before = log_prob()
    # One env: a rollout ends when an episode does, so all its actions were sampled by the policy as it is now.
    np.testing.assert_allclose(before, newest.log_probs, atol=1e-5)
    model.train()
    difference = log_prob() - before
    expected = float(np.mean(np.exp(difference) - 1 - difference))
    assert expected > 1e-4
    assert model.logger.name_to_value["train/approx_kl"] == pytest.approx(expected, rel=1e-5)


def test_vec_normalize_and_recurrent_policy() -> None:
    env = VecNormalize(DummyVecEnv([lambda: gym.make("CartPole-v1")] * 2))
    model = OffPolicyPG(
        "MlpLstmPolicy",
        env,
        n_episodes=2,
        batch_episodes=3,
        gradient_steps=3,
        target_kl=0.01,
        policy_kwargs=dict(lstm_hidden_size=8, net_arch=[8]),
        seed=0,
    )
    model.learn(300)
    assert np.isfinite(model.logger.name_to_value["train/approx_kl"])
    assert 1 <= model.logger.name_to_value["train/gradient_steps"] <= 3


def test_saved_loaded_and_trained_on_a_loaded_buffer(tmp_path: Any) -> None:
    model = cartpole_model(target_kl=0.02)
    model.learn(300)
    model.save(tmp_path / "model")
    model.save_replay_buffer(tmp_path / "buffer")
    loaded = OffPolicyPG.load(tmp_path / "model")
    assert loaded.target_kl == 0.02
    loaded.load_replay_buffer(tmp_path / "buffer")
    loaded.set_logger(model.logger)
    loaded.train()  # no rollout yet: the divergence is measured on every stored episode
    assert np.isfinite(loaded.logger.name_to_value["train/approx_kl"])
