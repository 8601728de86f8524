"""REINFORCE's fitted value baseline (``vf_epochs``): what moves, when, how it is saved, and bad input.

Its unbiasedness is checked against the exact gradient in ``tests/test_exact_gradient.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.envs import FakeImageEnv
from stable_baselines3.common.utils import explained_variance
from stable_baselines3.common.vec_env import DummyVecEnv

from sb3_reinforce import REINFORCE, OffPolicyPG
from sb3_reinforce.common.value_fit import value_only_parameters
from tests.offpolicy_envs import CounterEnv


def fitted_model(**kwargs: Any) -> REINFORCE:
    settings: dict[str, Any] = dict(baseline="value", n_episodes=4, vf_epochs=5, vf_batch_size=32, seed=0)
    settings.update(kwargs)
    return REINFORCE(settings.pop("policy", "MlpPolicy"), settings.pop("env", "CartPole-v1"), **settings)


def names(model: REINFORCE, parameters: list[th.nn.Parameter]) -> set[str]:
    ids = {id(p) for p in parameters}
    return {name for name, p in model.policy.named_parameters() if id(p) in ids}


def test_value_only_parameters_leave_the_actor_alone() -> None:
    mlp = fitted_model()
    assert names(mlp, value_only_parameters(mlp.policy)) == {
        "mlp_extractor.value_net.0.weight",
        "mlp_extractor.value_net.0.bias",
        "mlp_extractor.value_net.2.weight",
        "mlp_extractor.value_net.2.bias",
        "value_net.weight",
        "value_net.bias",
    }
    image = FakeImageEnv(screen_height=36, screen_width=36, n_channels=1)
    shared = fitted_model(policy="CnnPolicy", env=image)
    assert not any(
        n.startswith(("features_extractor", "pi_features")) for n in names(shared, value_only_parameters(shared.policy))
    )
    separate = fitted_model(policy="CnnPolicy", env=image, policy_kwargs=dict(share_features_extractor=False))
    chosen = names(separate, value_only_parameters(separate.policy))
    assert any(n.startswith("vf_features_extractor") for n in chosen)
    assert not any(n.startswith("pi_features_extractor") for n in chosen)


class SnapshotsAroundTheFit(BaseCallback):
    """Parameters at each rollout end (before the update and the fit)."""

    def __init__(self) -> None:
        super().__init__()
        self.before: list[dict[str, th.Tensor]] = []

    def _on_rollout_end(self) -> None:
        self.before.append({k: v.detach().clone() for k, v in self.model.policy.state_dict().items()})

    def _on_step(self) -> bool:
        return True


def test_fit_moves_only_the_value_parameters_and_improves_the_fit() -> None:
    # The same run without the fit (each model is built and trained in turn: they share the global RNG).
    reference = fitted_model(vf_epochs=0).learn(1, log_interval=None)
    fitted = fitted_model(vf_epochs=20, vf_learning_rate=3e-3).learn(1, log_interval=None)
    actor = [n for n, _ in fitted.policy.named_parameters() if n.startswith(("action_net", "mlp_extractor.policy_net"))]
    value = names(fitted, value_only_parameters(fitted.policy))
    fitted_state, reference_state = fitted.policy.state_dict(), reference.policy.state_dict()
    for name in actor:  # the policy update is the same: the fit comes after it and moves nothing of the actor
        assert th.equal(fitted_state[name], reference_state[name]), name
    assert all(not th.equal(fitted_state[name], reference_state[name]) for name in value)
    logged = fitted.logger.name_to_value
    assert logged["train/vf_fit_explained_variance"] > logged["train/explained_variance"]
    batch = fitted.rollout_buffer
    assert batch is not None
    targets = batch.rewards  # CartPole's rewards are 1: the reward-to-go is known in closed form
    returns = np.concatenate([(1 - 0.99 ** np.arange(n, 0, -1)) / 0.01 for n in batch.lengths])
    assert np.allclose(np.unique(targets), 1.0)
    fitted_values = fitted._predict_values(batch.observations)
    assert explained_variance(fitted_values, returns) == pytest.approx(
        logged["train/vf_fit_explained_variance"], abs=1e-6
    )


def test_update_uses_the_value_before_the_fit() -> None:
    """The baseline of a batch is V as it was at the rollout end: the recorded update matches that V."""
    snapshots = SnapshotsAroundTheFit()
    model = fitted_model(vf_epochs=10, vf_learning_rate=1e-2)
    model.learn(1, log_interval=None, callback=snapshots)
    (before,) = snapshots.before
    batch = model.rollout_buffer
    assert batch is not None
    check = fitted_model(vf_epochs=0)
    check.policy.load_state_dict(before)
    with th.no_grad():
        values_before = check._predict_values(batch.observations)
    logged = model.logger.name_to_value["train/explained_variance"]
    returns = np.concatenate([(1 - 0.99 ** np.arange(n, 0, -1)) / 0.01 for n in batch.lengths])
    assert explained_variance(values_before, returns) == pytest.approx(logged, abs=1e-5)


def test_save_load_continues_identically(tmp_path: Any) -> None:
    """docs/maths.md §7.5 with the value fit: its optimiser state is saved, and continuing after load is identical."""

    def env() -> Any:
        return make_vec_env("CartPole-v1", n_envs=2, seed=5)

    kwargs: dict[str, Any] = dict(vf_learning_rate=lambda progress: 1e-3 * progress, vf_epochs=3)
    a = fitted_model(env=env(), **kwargs)
    a.learn(600)
    a.save(tmp_path / "a.zip")
    a.set_random_seed(1)
    a.learn(600)

    b = REINFORCE.load(tmp_path / "a.zip", env=env())
    assert b.vf_optimizer is not None and b.vf_optimizer.state_dict()["state"]
    assert b.vf_epochs == 3 and b.vf_batch_size == 32
    b.set_random_seed(1)
    b.learn(600)
    for p, q in zip(a.policy.parameters(), b.policy.parameters()):
        assert th.equal(p, q)
    assert a.vf_optimizer is not None
    for state_a, state_b in zip(a.vf_optimizer.state.values(), b.vf_optimizer.state.values()):
        assert all(th.equal(state_a[k], state_b[k]) for k in state_a)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(baseline="mean", vf_epochs=3), r"vf_epochs=3 is only allowed with baseline='value'"),
        (dict(vf_epochs=-1), r"vf_epochs=-1 is not allowed: it must be an integer >= 0"),
        (dict(vf_epochs=2.5), r"vf_epochs=2.5 is not allowed"),
        (dict(vf_batch_size=0), r"vf_batch_size=0 is not allowed: it must be an integer >= 1 or None"),
        (dict(vf_learning_rate=0.0), r"vf_learning_rate=0.0 is not allowed: it must be a finite number > 0.0"),
    ],
)
def test_bad_value_fit_settings(kwargs: dict[str, Any], message: str) -> None:
    settings: dict[str, Any] = dict(baseline="value")
    settings.update(kwargs)
    with pytest.raises(ValueError, match=message):
        REINFORCE("MlpPolicy", "CartPole-v1", **settings)


# ----------------------------------------------------------------------------------------- OffPolicyPG


def identities(observations: np.ndarray) -> set[tuple[int, int]]:
    """(env tag, episode number) of every step of CounterEnv observations."""
    return {(int(tag), int(number)) for number, tag in observations[:, 1:3]}


def test_offpolicy_fit_never_sees_an_episode_that_can_still_be_sampled() -> None:
    """V is fitted on evicted episodes only, so a replayed episode's baseline never depends on its own returns."""
    env = DummyVecEnv([lambda i=i: CounterEnv(tag=i, max_length=9) for i in range(3)])
    reuse = dict(n_episodes=3, batch_episodes=4, buffer_size=60, gradient_steps=3)  # episodes replayed often
    fit = dict(baseline="value", vf_coef=0.0, vf_epochs=2, vf_batch_size=16)
    model = OffPolicyPG("MlpPolicy", env, seed=0, **reuse, **fit)
    fitted: set[tuple[int, int]] = set()
    sampled_batches = []
    fit, sample = model._fit_value, model.replay_buffer.sample

    def recording_fit(observations: np.ndarray, targets: np.ndarray) -> None:
        fitted.update(identities(observations))
        fit(observations, targets)

    def checking_sample(batch_size: int, env: Any = None) -> Any:
        batch = sample(batch_size, env=env)
        sampled = identities(batch.observations)
        assert not sampled & fitted, sampled & fitted  # no sampled episode was ever fitted on
        sampled_batches.append(sampled)
        return batch

    model._fit_value = recording_fit  # type: ignore[method-assign]
    model.replay_buffer.sample = checking_sample  # type: ignore[method-assign]
    model.learn(1_500)
    assert len(sampled_batches) > 50 and len(fitted) > 30  # many updates, many episodes fitted on
    stored = identities(model.replay_buffer.all_episodes().observations)
    assert not stored & fitted


def test_offpolicy_value_fit_needs_vf_coef_zero() -> None:
    with pytest.raises(ValueError, match=r"vf_coef=0.5 is not allowed with vf_epochs=3: it must be 0"):
        OffPolicyPG("MlpPolicy", "CartPole-v1", baseline="value", vf_epochs=3)
    with pytest.raises(ValueError, match=r"vf_epochs=3 is only allowed with baseline='value'"):
        OffPolicyPG("MlpPolicy", "CartPole-v1", baseline="mean", vf_epochs=3, vf_coef=0.0)


def test_offpolicy_value_fit_is_saved(tmp_path: Any) -> None:
    model = OffPolicyPG("MlpPolicy", "CartPole-v1", baseline="value", vf_coef=0.0, vf_epochs=2, buffer_size=300, seed=0)
    model.learn(1_000)
    assert model.vf_optimizer is not None and model.vf_optimizer.state_dict()["state"]  # evictions happened
    model.save(tmp_path / "m.zip")
    loaded = OffPolicyPG.load(tmp_path / "m.zip")
    assert loaded.vf_optimizer is not None
    saved, restored = model.vf_optimizer.state_dict()["state"], loaded.vf_optimizer.state_dict()["state"]
    assert saved.keys() == restored.keys()
    assert all(th.equal(saved[k]["exp_avg"], restored[k]["exp_avg"]) for k in saved)
