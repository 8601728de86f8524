"""Invalid-action masking (docs/masking.md), for REINFORCE and OffPolicyPG.

1. Exact gradient: on the masked tabular MDP of ``benchmarks/tabular_mdp.py`` (a softmax over the
   valid actions only) the library's update is unbiased for ``grad J`` (the statistics of
   ``tests/test_exact_gradient.py``: per-coordinate t-statistics with ``Z = 5``, and a power check),
   on-policy for REINFORCE and off-policy for OffPolicyPG (per-decision weights, no truncation).
   The gradient of an invalid action's logit is exactly 0.  Teeth: the same harnesses reject the
   update whose log-probabilities come from the unmasked distribution.
2. An env that raises on an invalid action trains, and is evaluated (sb3-contrib's
   ``evaluate_policy`` and ``MaskableEvalCallback``), without ever receiving one: ``Discrete``,
   ``MultiDiscrete`` and ``MultiBinary`` actions, ``ActionMasker``, ``SubprocVecEnv``.
3. ``predict(obs, action_masks=...)``, save / load / continue identically, the replay buffer keeps
   the masks, and bad input is refused before training.
"""

from __future__ import annotations

import dataclasses
from typing import Any, cast

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from sb3_contrib.common.envs import InvalidActionEnvMultiBinary, InvalidActionEnvMultiDiscrete
from sb3_contrib.common.maskable.callbacks import MaskableEvalCallback
from sb3_contrib.common.maskable.evaluation import evaluate_policy
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from sb3_contrib.common.wrappers import ActionMasker
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

from benchmarks.tabular_mdp import (
    MaskedTabularEnv,
    TabularEnv,
    flat_gradient,
    masked_mdp,
    random_policy_params,
)
from benchmarks.tabular_policy import set_action_net
from sb3_reinforce import REINFORCE, OffPolicyPG
from sb3_reinforce.common.action_sampling import has_fast_categorical_path, sample_actions
from sb3_reinforce.common.episodes import EpisodeBatch
from sb3_reinforce.common.episodic_algorithm import EpisodicPolicyGradient
from sb3_reinforce.common.estimator import PolicyEvaluation
from sb3_reinforce.common.masking import InfoActionMasker
from tests.test_exact_gradient import Z, assert_matches, assert_rejected, mean_check
from tests.test_offpolicy_gradient import FreshBatches, target_and_behaviour

th.set_num_threads(1)

TABULAR = {"net_arch": {"pi": [], "vf": []}, "optimizer_class": th.optim.SGD, "ortho_init": False}
ALGOS = {"reinforce": REINFORCE, "offpolicy_pg": OffPolicyPG}


def invalid_pairs() -> tuple[np.ndarray, np.ndarray]:
    """``(actions, states)`` of the invalid pairs of the masked MDP (indices into ``W`` of shape ``(A, S)``)."""
    valid = masked_mdp().valid
    assert valid is not None
    states, actions = np.nonzero(~valid)
    return actions, states


def invalid_coordinates() -> np.ndarray:
    """Flat indices of ``W[a, s]`` for the invalid pairs, in the ``(W row-major, b)`` layout."""
    actions, states = invalid_pairs()
    return actions * masked_mdp().n_states + states


# ----------------------------------------------------------------------------------------------
# 1. Exact gradient
# ----------------------------------------------------------------------------------------------
def test_masked_exact_gradient_ignores_invalid_actions() -> None:
    """The reference itself: zero on invalid logits, and not the unmasked MDP's gradient."""
    mdp = masked_mdp()
    weight, bias = random_policy_params(mdp)
    gradient = flat_gradient(mdp.exact_gradient(weight, bias, 0.9))
    assert np.all(gradient[invalid_coordinates()] == 0.0)
    pi = mdp.policy(th.tensor(weight), th.tensor(bias)).numpy()
    actions, states = invalid_pairs()
    assert np.all(pi[states, actions] == 0.0)
    unmasked = flat_gradient(dataclasses.replace(mdp, valid=None).exact_gradient(weight, bias, 0.9))
    assert np.max(np.abs(unmasked - gradient)) > 0.1


def reinforce_samples(n_batches: int, gamma: float, seed: int = 500, **kwargs: Any) -> np.ndarray:
    """``n_batches`` draws of REINFORCE's update ``Δθ / lr`` from the fixed parameters, on fresh batches."""
    mdp = masked_mdp()
    weight, bias = random_policy_params(mdp)
    samples = np.empty((n_batches, weight.size + bias.size))
    for k in range(n_batches):
        model = REINFORCE(
            "MlpPolicy",
            MaskedTabularEnv(mdp),
            learning_rate=1.0,
            n_episodes=20,
            gamma=gamma,
            policy_kwargs=TABULAR,
            seed=seed + k,
            device="cpu",
            **kwargs,
        )
        set_action_net(model, weight, bias)
        before = np.concatenate([weight.ravel(), bias])
        model.learn(1)
        net = cast(th.nn.Linear, model.policy.action_net)
        after = np.concatenate([net.weight.detach().double().numpy().ravel(), net.bias.detach().double().numpy()])
        samples[k] = after - before
    return samples


REINFORCE_CASES = {
    "g1_none_rtg": dict(gamma=1.0, baseline="none"),
    "g0.6_mean_rtg_unbiased": dict(gamma=0.6, baseline="mean", unbiased_discount=True),
    "g0.9_optimal_whole_return": dict(gamma=0.9, baseline="optimal", reward_to_go=False),
}


@pytest.mark.parametrize("name", sorted(REINFORCE_CASES))
def test_reinforce_masked_gradient_is_unbiased(name: str) -> None:
    case = REINFORCE_CASES[name]
    samples = reinforce_samples(120, **case)  # type: ignore[arg-type]
    mdp = masked_mdp()
    gradient = flat_gradient(mdp.exact_gradient(*random_policy_params(mdp), case["gamma"]))  # type: ignore[arg-type]
    assert_matches(samples, gradient, "grad J of the masked MDP")
    # An invalid action's logit never moves: its gradient is exactly 0 in every draw.
    assert np.all(samples[:, invalid_coordinates()] == 0.0)


def evaluate_without_masks(self: EpisodicPolicyGradient, batch: EpisodeBatch) -> PolicyEvaluation:
    """The update's evaluation as if the batch had no masks: log-probabilities of the unmasked distribution."""
    return ORIGINAL_EVALUATE(self, dataclasses.replace(batch, action_masks=None))


ORIGINAL_EVALUATE = EpisodicPolicyGradient._evaluate_episodes


def test_teeth_reinforce_unmasked_log_probs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(EpisodicPolicyGradient, "_evaluate_episodes", evaluate_without_masks)
    samples = reinforce_samples(120, gamma=1.0, baseline="none")
    mdp = masked_mdp()
    gradient = flat_gradient(mdp.exact_gradient(*random_policy_params(mdp), 1.0))
    assert_rejected(samples, gradient, "REINFORCE with unmasked log-probabilities")
    assert np.any(samples[:, invalid_coordinates()] != 0.0)


def offpolicy_samples(n_batches: int) -> tuple[np.ndarray, np.ndarray]:
    """Draws of OffPolicyPG's update at ``theta'`` on episodes of ``theta_b`` (see tests/test_offpolicy_gradient.py)."""
    mdp = masked_mdp()
    target, behaviour = target_and_behaviour(mdp)
    model = OffPolicyPG(
        "MlpPolicy",
        MaskedTabularEnv(mdp),
        learning_rate=1.0,
        n_episodes=25,
        batch_episodes=25,
        buffer_size=10_000,
        importance_weights="per_decision",
        truncation=None,
        gamma=0.9,
        baseline="none",
        unbiased_discount=True,
        policy_kwargs=TABULAR,
        seed=1000,
    )
    recorder = FreshBatches(behaviour, target, n_batches)
    model.learn(10**9, callback=recorder, log_interval=None)
    return np.array(recorder.samples), flat_gradient(mdp.exact_gradient(*target, 0.9))


def test_offpolicy_masked_gradient_is_unbiased_off_policy() -> None:
    samples, gradient = offpolicy_samples(100)
    check = mean_check(samples, gradient)
    assert check.power >= 2 * Z, f"no power to detect a bias: {check.describe()}"
    assert check.max_abs_t < Z, f"masked off-policy update does not match grad J(theta'): {check.describe()}"
    assert np.all(samples[:, invalid_coordinates()] == 0.0)


def test_teeth_offpolicy_unmasked_log_probs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unmasked target log-probabilities: wrong scores and wrong importance ratios."""
    monkeypatch.setattr(EpisodicPolicyGradient, "_evaluate_episodes", evaluate_without_masks)
    samples, gradient = offpolicy_samples(100)
    check = mean_check(samples, gradient)
    assert check.max_abs_t > 2 * Z, f"the harness cannot see unmasked log-probabilities: {check.describe()}"


def stored_episodes(model: EpisodicPolicyGradient) -> EpisodeBatch:
    """The episodes the next update will use (all of them, for OffPolicyPG's buffer)."""
    if isinstance(model, REINFORCE):
        assert model.rollout_buffer is not None
        return model.rollout_buffer
    assert isinstance(model, OffPolicyPG) and model.replay_buffer is not None
    return model.replay_buffer.all_episodes()


@pytest.mark.parametrize("algo", sorted(ALGOS))
def test_update_scores_actions_under_the_masked_distribution(algo: str) -> None:
    """Before the first update the policy is the behaviour policy: the update scores actions as they were sampled."""
    seen: list[tuple[np.ndarray, np.ndarray]] = []

    class Check(BaseCallback):
        def _on_rollout_end(self) -> None:
            model = cast(EpisodicPolicyGradient, self.model)
            batch = stored_episodes(model)
            with th.no_grad():
                log_prob = model._evaluate_episodes(batch).log_prob.double().numpy()
            seen.append((log_prob, batch.log_probs))

        def _on_step(self) -> bool:
            return True

    mdp = masked_mdp()
    params = random_policy_params(mdp)
    model = ALGOS[algo]("MlpPolicy", MaskedTabularEnv(mdp), n_episodes=10, policy_kwargs=TABULAR, seed=3)
    set_action_net(model, *params)
    model.learn(1, callback=Check())
    log_prob, recorded = seen[0]
    np.testing.assert_allclose(log_prob, recorded, rtol=0, atol=1e-6)
    # The masks matter on this batch: the unmasked distribution gives other log-probabilities.
    set_action_net(model, *params)
    batch = stored_episodes(model)
    with th.no_grad():
        unmasked = ORIGINAL_EVALUATE(model, dataclasses.replace(batch, action_masks=None)).log_prob.double().numpy()
    assert np.max(np.abs(unmasked - recorded)) > 0.1


# ----------------------------------------------------------------------------------------------
# 2. Envs that raise on invalid actions
# ----------------------------------------------------------------------------------------------
class RaiseOnInvalid(gym.Wrapper):
    """Raise if the action is not allowed by the env's current ``action_masks()`` (any maskable space)."""

    def step(self, action: Any) -> Any:
        mask = np.asarray(self.env.get_wrapper_attr("action_masks")(), dtype=bool)
        space = self.action_space
        action = np.asarray(action)
        if isinstance(space, spaces.Discrete):
            allowed = bool(mask[int(action)])
        elif isinstance(space, spaces.MultiDiscrete):
            offsets = np.concatenate(([0], np.cumsum(space.nvec)[:-1]))
            allowed = bool(mask[offsets + action.astype(np.int64).ravel()].all())
        else:  # MultiBinary: two entries per binary action, for 0 and 1
            allowed = bool(mask.reshape(-1, 2)[np.arange(action.size), action.astype(np.int64).ravel()].all())
        if not allowed:
            raise ValueError(f"invalid action {action} for mask {mask.astype(int)}")
        return self.env.step(action)

    def action_masks(self) -> np.ndarray:
        return np.asarray(self.env.get_wrapper_attr("action_masks")())


def multidiscrete_env() -> gym.Env:
    return RaiseOnInvalid(gym.wrappers.TimeLimit(InvalidActionEnvMultiDiscrete(dims=[4, 5], n_invalid_actions=4), 30))


def multibinary_env() -> gym.Env:
    return RaiseOnInvalid(gym.wrappers.TimeLimit(InvalidActionEnvMultiBinary(dims=6, n_invalid_actions=4), 30))


def discrete_env() -> gym.Env:
    return MaskedTabularEnv(masked_mdp())


ENVS = {"discrete": discrete_env, "multidiscrete": multidiscrete_env, "multibinary": multibinary_env}


@pytest.mark.parametrize("space", sorted(ENVS))
@pytest.mark.parametrize("algo", sorted(ALGOS))
def test_trains_and_evaluates_without_an_invalid_action(algo: str, space: str, tmp_path: Any) -> None:
    env = make_vec_env(ENVS[space], n_envs=3, seed=0)
    model = ALGOS[algo]("MlpPolicy", env, n_episodes=4, learning_rate=0.05, seed=0)
    assert model.use_masking and isinstance(model.policy, MaskableActorCriticPolicy)
    callback = MaskableEvalCallback(make_vec_env(ENVS[space], n_envs=1, seed=1), eval_freq=200, n_eval_episodes=2)
    model.learn(1500, callback=callback)  # an invalid action would raise inside the env
    assert callback.n_calls > 200 and np.isfinite(callback.last_mean_reward)  # it evaluated
    for deterministic in (True, False):
        rewards, _ = evaluate_policy(
            model,
            make_vec_env(ENVS[space], n_envs=2, seed=2),
            n_eval_episodes=4,
            deterministic=deterministic,
            return_episode_rewards=True,
        )
        assert len(rewards) == 4


def test_action_masker_with_subprocess_envs() -> None:
    """sb3-contrib's ``ActionMasker`` inside each env of a ``SubprocVecEnv`` (wrap each env, not the VecEnv)."""

    def mask_fn(env: gym.Env) -> np.ndarray:
        return env.unwrapped.action_masks()  # type: ignore[attr-defined]

    def make() -> gym.Env:
        # The mask comes from ActionMasker only: the inner env's own method is hidden behind a plain wrapper.
        return RaiseOnInvalid(ActionMasker(gym.wrappers.TimeLimit(MaskedTabularEnv(masked_mdp()), 50), mask_fn))

    env = make_vec_env(make, n_envs=2, seed=0, vec_env_cls=SubprocVecEnv)
    try:
        for algo in ALGOS.values():
            model = algo("MlpPolicy", env, n_episodes=4, seed=0)
            assert model.use_masking
            model.learn(400)
    finally:
        env.close()


# ----------------------------------------------------------------------------------------------
# 3. predict, save/load, replay buffer, sampling, bad input
# ----------------------------------------------------------------------------------------------
def observations_of_every_state() -> tuple[np.ndarray, np.ndarray]:
    mdp = masked_mdp()
    assert mdp.valid is not None
    return np.eye(mdp.n_states, dtype=np.float32), mdp.valid


@pytest.mark.parametrize("algo", sorted(ALGOS))
def test_predict_with_action_masks(algo: str) -> None:
    model = ALGOS[algo]("MlpPolicy", MaskedTabularEnv(masked_mdp()), policy_kwargs=TABULAR, seed=0)
    obs, valid = observations_of_every_state()
    # Make every invalid action the most likely one without the mask.
    actions, states = invalid_pairs()
    weight = np.zeros((3, 3))
    weight[actions, states] = 10.0
    set_action_net(model, weight, np.zeros(3))
    unmasked_mode, _ = model.predict(obs, deterministic=True)
    assert not valid[np.arange(3), unmasked_mode].all()
    masked_mode, _ = model.predict(obs, deterministic=True, action_masks=valid)
    assert valid[np.arange(3), masked_mode].all()
    repeated = np.repeat(obs, 200, axis=0)
    sampled, _ = model.predict(repeated, action_masks=np.repeat(valid, 200, axis=0))
    assert valid[np.repeat(np.arange(3), 200), sampled].all()


@pytest.mark.parametrize("algo", sorted(ALGOS))
def test_save_load_continue_identically_with_masks(algo: str, tmp_path: Any) -> None:
    def env() -> DummyVecEnv:
        return make_vec_env(lambda: MaskedTabularEnv(masked_mdp()), n_envs=2, seed=5)

    a = ALGOS[algo]("MlpPolicy", env(), n_episodes=4, learning_rate=0.1, seed=0)
    a.learn(300)
    a.save(tmp_path / "a")
    b = ALGOS[algo].load(tmp_path / "a", env=env())
    if isinstance(a, OffPolicyPG):  # the episodes to replay, masks included
        a.save_replay_buffer(tmp_path / "buffer")
        cast(OffPolicyPG, b).load_replay_buffer(tmp_path / "buffer")
    assert b.use_masking and isinstance(b.policy, MaskableActorCriticPolicy)
    obs, valid = observations_of_every_state()
    for model in (a, b):
        model.set_random_seed(3)
    np.testing.assert_array_equal(a.predict(obs, action_masks=valid)[0], b.predict(obs, action_masks=valid)[0])
    inference = ALGOS[algo].load(tmp_path / "a")  # no env: inference only
    np.testing.assert_array_equal(
        a.predict(obs, deterministic=True, action_masks=valid)[0],
        inference.predict(obs, deterministic=True, action_masks=valid)[0],
    )
    a.set_env(env())  # the same fresh env as b's: both reset when they continue
    for model in (a, b):
        model.set_random_seed(1)
        model.learn(400)
    for p, q in zip(a.policy.parameters(), b.policy.parameters()):
        assert th.equal(p, q)
    assert a.num_timesteps == b.num_timesteps


def test_replay_buffer_keeps_masks(tmp_path: Any) -> None:
    model = OffPolicyPG("MlpPolicy", MaskedTabularEnv(masked_mdp()), n_episodes=5, seed=0)
    model.learn(200)
    assert model.replay_buffer is not None
    batch = model.replay_buffer.all_episodes()
    assert batch.action_masks is not None and batch.action_masks.shape == (batch.n_steps, 3)
    states = np.argmax(batch.observations, axis=1)
    valid = masked_mdp().valid
    assert valid is not None
    np.testing.assert_array_equal(batch.action_masks, valid[states])
    assert valid[states, batch.actions.astype(np.int64)].all()
    model.save_replay_buffer(tmp_path / "buffer")
    loaded = OffPolicyPG("MlpPolicy", MaskedTabularEnv(masked_mdp()), n_episodes=5, seed=0)
    loaded.load_replay_buffer(tmp_path / "buffer")
    assert loaded.replay_buffer is not None
    np.testing.assert_array_equal(loaded.replay_buffer.all_episodes().action_masks, batch.action_masks)


def test_masked_sampling_equals_the_maskable_distribution() -> None:
    model = REINFORCE("MlpPolicy", MaskedTabularEnv(masked_mdp()), seed=0)
    policy = model.policy
    assert has_fast_categorical_path(policy)
    obs, valid = observations_of_every_state()
    obs_t = th.as_tensor(np.repeat(obs, 100, axis=0))
    masks = np.repeat(valid, 100, axis=0)
    th.manual_seed(4)
    actions, log_probs = sample_actions(policy, obs_t, action_masks=masks)
    th.manual_seed(4)
    with th.no_grad():
        distribution = policy.get_distribution(obs_t, action_masks=masks)  # type: ignore[call-arg]
        expected = distribution.get_actions()
        expected_log_probs = distribution.log_prob(expected)
    assert th.equal(actions, expected)
    th.testing.assert_close(log_probs, expected_log_probs, rtol=0, atol=1e-6)


def test_masked_env_with_box_actions_is_refused() -> None:
    class BoxWithMasks(gym.Env):
        observation_space = spaces.Box(-1, 1, (2,), np.float32)
        action_space = spaces.Box(-1, 1, (2,), np.float32)

        def action_masks(self) -> np.ndarray:
            return np.ones(2, dtype=bool)

    with pytest.raises(ValueError, match=r"cannot be masked.*Discrete, MultiDiscrete, MultiBinary"):
        REINFORCE("MlpPolicy", BoxWithMasks())


def test_custom_policy_that_cannot_mask_is_refused() -> None:
    class MyPolicy(ActorCriticPolicy):
        pass

    with pytest.raises(ValueError, match="policy=MyPolicy cannot apply action masks"):
        OffPolicyPG(MyPolicy, MaskedTabularEnv(masked_mdp()))


def test_env_and_model_must_agree_on_masks() -> None:
    plain = REINFORCE("MlpPolicy", TabularEnv(masked_mdp()), seed=0)
    assert not plain.use_masking and type(plain.policy) is ActorCriticPolicy
    plain.set_env(MaskedTabularEnv(masked_mdp()))
    with pytest.raises(ValueError, match="built without action masks"):
        plain.learn(10)
    with pytest.raises(ValueError, match="does not apply action masks"):
        plain.predict(np.eye(3, dtype=np.float32), action_masks=np.ones((3, 3), dtype=bool))
    masked = REINFORCE("MlpPolicy", MaskedTabularEnv(masked_mdp()), seed=0)
    masked.set_env(TabularEnv(masked_mdp()))
    with pytest.raises(ValueError, match="ActionMasker"):
        masked.learn(10)


def test_masks_of_the_wrong_size_are_reported() -> None:
    class WrongMask(MaskedTabularEnv):
        def action_masks(self) -> np.ndarray:
            return np.ones(5, dtype=bool)

    model = REINFORCE("MlpPolicy", WrongMask(masked_mdp()), seed=0)
    with pytest.raises(ValueError, match="action_masks\\(\\) returned 5 entries per env, but the action space needs 3"):
        model.learn(10)


def test_info_action_masker_reads_the_mask_from_info() -> None:
    """gymnasium's Taxi reports its mask in info["action_mask"]; the wrapper serves it as action_masks()."""
    env = InfoActionMasker(gym.make("Taxi-v4"))
    with pytest.raises(RuntimeError, match="reset the env"):
        env.action_masks()
    _, info = env.reset(seed=0)
    np.testing.assert_array_equal(env.action_masks(), info["action_mask"].astype(bool))
    for _ in range(20):
        action = int(np.flatnonzero(env.action_masks())[0])
        *_, info = env.step(action)
        np.testing.assert_array_equal(env.action_masks(), info["action_mask"].astype(bool))
    model = REINFORCE("MlpPolicy", env, n_episodes=2, seed=0)
    assert model.use_masking
    with pytest.raises(KeyError, match="InfoActionMasker needs the env to report its action mask"):
        InfoActionMasker(gym.make("CartPole-v1")).reset()


@pytest.mark.parametrize("algo", sorted(ALGOS))
def test_learn_use_masking_as_maskable_ppo(algo: str) -> None:
    """``learn(use_masking=...)`` as ``MaskablePPO.learn``: None follows the model, False trains without masks."""
    mdp = masked_mdp()
    model = ALGOS[algo]("MlpPolicy", TabularEnv(mdp), n_episodes=4, seed=0, policy_kwargs=TABULAR)
    with pytest.raises(ValueError, match="use_masking=True is not allowed"):
        model.learn(10, use_masking=True)
    with pytest.raises(ValueError, match="use_masking='yes' is not allowed"):
        model.learn(10, use_masking="yes")  # type: ignore[arg-type]
    masked = ALGOS[algo]("MlpPolicy", MaskedTabularEnv(mdp), n_episodes=4, seed=0, policy_kwargs=TABULAR)
    masked.set_env(TabularEnv(mdp))
    with pytest.raises(ValueError, match="pass use_masking=False to learn"):
        masked.learn(10)
    masked.learn(200, use_masking=False)  # the env has no masks: every action is possible
    seen = stored_episodes(masked)
    assert seen.action_masks is None or seen.action_masks.all()
    # A model with masks, on an env with masks, trained with them off: invalid actions are then taken.
    raising = ALGOS[algo]("MlpPolicy", MaskedTabularEnv(mdp), n_episodes=4, seed=0, policy_kwargs=TABULAR)
    with pytest.raises(ValueError, match="invalid action"):
        raising.learn(500, use_masking=False)
    raising.learn(200, use_masking=None)  # back to the model's masks: no invalid action


def test_explicit_policy_class_without_masks_is_refused() -> None:
    """As MaskablePPO: a policy class given explicitly is used as given, so one that cannot mask is refused."""
    with pytest.raises(ValueError, match="policy=ActorCriticPolicy cannot apply action masks"):
        REINFORCE(ActorCriticPolicy, MaskedTabularEnv(masked_mdp()))
    model = REINFORCE(MaskableActorCriticPolicy, MaskedTabularEnv(masked_mdp()), n_episodes=2)
    assert type(model.policy) is MaskableActorCriticPolicy
    model.learn(20)
