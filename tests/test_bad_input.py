"""docs/maths.md §8: bad input is refused before any training, with a message naming the parameter, the
value and what is allowed; a non-finite update stops training and leaves the model as it was."""

from __future__ import annotations

import math
import re

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import DummyVecEnv

from sb3_reinforce import REINFORCE
from sb3_reinforce.common.errors import NonFiniteLossError, UnsupportedActionSpaceError


class SpyEnv(gym.Env):
    """5-step episodes; counts resets and steps so tests can tell that nothing ran."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)

    def __init__(self, action_space=None):
        self.action_space = action_space if action_space is not None else gym.spaces.Discrete(2)
        self.resets = 0
        self.steps = 0
        self.t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.resets += 1
        self.t = 0
        return np.array([1.0, 0.0], dtype=np.float32), {}

    def step(self, action):
        self.steps += 1
        self.t += 1
        return np.array([1.0, self.t / 10], dtype=np.float32), 1.0, self.t >= 5, False, {}


def assert_untouched(env):
    assert env.resets == 0
    assert env.steps == 0


def expect_value_error(parameter, value, allowed, **kwargs):
    """Construct with one bad argument; check the error, its message and that the env never ran."""
    env = SpyEnv()
    with pytest.raises(ValueError) as info:
        REINFORCE("MlpPolicy", env, **{parameter: value}, **kwargs)
    message = str(info.value)
    assert parameter in message, message
    assert repr(value) in message, message
    for word in allowed:
        assert word in message, (word, message)
    assert_untouched(env)
    return message


# ----------------------------------------------------------------------------- constructor arguments


@pytest.mark.parametrize("value", ["foo", "Mean", "", None, 3])
def test_unknown_baseline(value):
    expect_value_error("baseline", value, ["'none'", "'mean'", "'optimal'", "'value'"])


@pytest.mark.parametrize("baseline", ["none", "value", "mean", "optimal"])
@pytest.mark.parametrize("value", [0, -1])
def test_n_episodes_below_one(baseline, value):
    expect_value_error("n_episodes", value, [">="], baseline=baseline)


@pytest.mark.parametrize("value", [2.5, 4.0, "8", True])
def test_n_episodes_not_an_integer(value):
    expect_value_error("n_episodes", value, ["integer"], baseline="none")


@pytest.mark.parametrize("baseline", ["mean", "optimal"])
def test_one_episode_with_leave_one_out_baseline(baseline):
    message = expect_value_error("n_episodes", 1, [">= 2"], baseline=baseline)
    assert baseline in message


@pytest.mark.parametrize("baseline", ["none", "value"])
def test_one_episode_is_fine_without_leave_one_out_baseline(baseline):
    env = SpyEnv()
    model = REINFORCE("MlpPolicy", env, n_episodes=1, baseline=baseline, seed=0)
    model.learn(1)
    assert model._n_updates == 1
    assert model.rollout_buffer.n_episodes == 1


@pytest.mark.parametrize("value", [-0.1, 1.01, 2, -1e-12, math.nan, math.inf, -math.inf, "0.9", None])
def test_gamma_outside_unit_interval(value):
    message = expect_value_error("gamma", value, ["[0.0, 1.0]"])
    assert "finite" in message


@pytest.mark.parametrize("value", [0.0, 1.0, 0.5, np.float32(0.99)])
def test_gamma_inside_unit_interval_is_fine(value):
    model = REINFORCE("MlpPolicy", SpyEnv(), gamma=value, n_episodes=2, seed=0)
    model.learn(1)


@pytest.mark.parametrize("flag", ["reward_to_go", "unbiased_discount", "normalize_advantage", "use_sde"])
@pytest.mark.parametrize("value", [1, 0, "True", "no", None, 1.0])
def test_non_bool_flags(flag, value):
    expect_value_error(flag, value, ["True or False"])


@pytest.mark.parametrize("flag", ["reward_to_go", "unbiased_discount", "normalize_advantage"])
def test_numpy_bool_flags_are_fine(flag):
    REINFORCE("MlpPolicy", SpyEnv(), **{flag: np.bool_(False)}, seed=0)


@pytest.mark.parametrize("value", [0, 0.0, -1.0, math.nan, math.inf, "1"])
def test_max_grad_norm_not_positive(value):
    expect_value_error("max_grad_norm", value, ["> 0", "None"])


def test_max_grad_norm_none_and_positive_are_fine():
    for value in (None, 1e-3, 10):
        REINFORCE("MlpPolicy", SpyEnv(), max_grad_norm=value, seed=0)


@pytest.mark.parametrize("value", [0.0, -1e-3, math.nan, math.inf])
def test_learning_rate_not_positive(value):
    expect_value_error("learning_rate", value, ["> 0"])


@pytest.mark.parametrize(
    ("parameter", "value", "allowed"),
    [
        ("ent_coef", math.nan, ["finite"]),
        ("vf_coef", -0.5, [">= 0"]),
        ("vf_coef", math.inf, [">= 0"]),
        ("max_episode_steps", 0, [">= 1"]),
        ("max_episode_steps", 10.5, ["integer"]),
    ],
)
def test_other_numeric_arguments(parameter, value, allowed):
    expect_value_error(parameter, value, allowed)


@pytest.mark.parametrize(
    ("attribute", "value"),
    [("gamma", 1.5), ("baseline", "median"), ("n_episodes", 0), ("reward_to_go", "yes"), ("max_grad_norm", -1)],
)
def test_bad_values_set_after_construction_are_refused_by_learn(attribute, value):
    env = SpyEnv()
    model = REINFORCE("MlpPolicy", env, seed=0)
    before = [p.detach().clone() for p in model.policy.parameters()]
    setattr(model, attribute, value)
    with pytest.raises(ValueError, match=re.escape(f"{attribute}={value!r}")):
        model.learn(100)
    assert_untouched(env)
    assert all(th.equal(p, q) for p, q in zip(model.policy.parameters(), before))


@pytest.mark.parametrize("value", [0, -2, 2.5, "4", True, None])
def test_sde_sample_freq(value):
    expect_value_error("sde_sample_freq", value, [">= 1", "-1"])


@pytest.mark.parametrize(("option", "value"), [("squash_output", True), ("full_std", False), ("use_expln", True)])
def test_gsde_policy_options_without_use_sde(option, value):
    env = SpyEnv(gym.spaces.Box(-1.0, 1.0, (2,), np.float32))
    with pytest.raises(ValueError, match=re.escape(f"policy_kwargs[{option!r}]")) as info:
        REINFORCE("MlpPolicy", env, policy_kwargs={option: value})
    assert "use_sde=True" in str(info.value)
    assert_untouched(env)


def test_use_sde_needs_box_actions():
    env = SpyEnv(gym.spaces.Discrete(2))
    with pytest.raises(ValueError) as info:
        REINFORCE("MlpPolicy", env, use_sde=True)
    message = str(info.value)
    assert "use_sde=True" in message and "Discrete(2)" in message and "Box" in message
    assert_untouched(env)


def test_gsde_options_are_fine_with_box_actions():
    env = SpyEnv(gym.spaces.Box(-1.0, 1.0, (2,), np.float32))
    model = REINFORCE(
        "MlpPolicy",
        env,
        use_sde=True,
        sde_sample_freq=8,
        policy_kwargs={"squash_output": True, "full_std": False, "use_expln": True},
    )
    assert model.policy.use_sde and model.policy.squash_output


# ----------------------------------------------------------------------------- action spaces


@pytest.mark.parametrize(
    "action_space",
    [
        gym.spaces.Tuple((gym.spaces.Discrete(2), gym.spaces.Discrete(3))),
        gym.spaces.Dict({"a": gym.spaces.Discrete(2)}),
        gym.spaces.Text(5),
    ],
    ids=["Tuple", "Dict", "Text"],
)
def test_unsupported_action_space(action_space):
    env = SpyEnv(action_space)
    with pytest.raises(UnsupportedActionSpaceError) as info:
        REINFORCE("MlpPolicy", env, seed=0)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, AssertionError)
    message = str(info.value)
    assert "action_space" in message
    assert str(action_space) in message
    for allowed in ("Box", "Discrete", "MultiDiscrete", "MultiBinary"):
        assert allowed in message
    assert_untouched(env)


def test_unsupported_action_space_is_caught_as_assertion_error_like_sb3():
    with pytest.raises(AssertionError):
        REINFORCE("MlpPolicy", SpyEnv(gym.spaces.Tuple((gym.spaces.Discrete(2),))))


# ----------------------------------------------------------------------------- non-finite updates


class LateBadRewardEnv(gym.Env):
    """5-step episodes with reward 1, except that from global step ``bad_from`` on every reward is ``bad``."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, bad, bad_from):
        self.bad, self.bad_from = bad, bad_from
        self.global_step = 0
        self.t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([1.0, 0.0], dtype=np.float32), {}

    def step(self, action):
        self.t += 1
        self.global_step += 1
        reward = self.bad if self.global_step > self.bad_from else 1.0 + 0.1 * int(action)
        return np.array([1.0, self.t / 10], dtype=np.float32), reward, self.t >= 5, False, {}


class Snapshots(BaseCallback):
    """Model state at every on_rollout_end, i.e. just before each update."""

    def __init__(self):
        super().__init__()
        self.states: list[tuple[dict, dict]] = []

    def _on_step(self):
        return True

    def _on_rollout_end(self):
        params = {k: v.detach().clone() for k, v in self.model.policy.state_dict().items()}
        optimizer = clone_optimizer_state(self.model.policy.optimizer)
        self.states.append((params, optimizer))


def clone_optimizer_state(optimizer):
    state = optimizer.state_dict()
    return {
        "state": {
            k: {n: (v.detach().clone() if isinstance(v, th.Tensor) else v) for n, v in s.items()}
            for k, s in state["state"].items()
        },
        "param_groups": [{k: v for k, v in g.items() if k != "params"} for g in state["param_groups"]],
    }


def assert_model_is(model, params, optimizer_state):
    current = model.policy.state_dict()
    assert current.keys() == params.keys()
    for name in params:
        assert th.equal(current[name], params[name]), name
    now = clone_optimizer_state(model.policy.optimizer)
    assert now["state"].keys() == optimizer_state["state"].keys()
    for key in optimizer_state["state"]:
        for name, value in optimizer_state["state"][key].items():
            if isinstance(value, th.Tensor):
                assert th.equal(now["state"][key][name], value), (key, name)
            else:
                assert now["state"][key][name] == value, (key, name)
    assert now["param_groups"] == optimizer_state["param_groups"]


@pytest.mark.parametrize(
    ("bad", "baseline", "quantity"),
    [
        (math.nan, "mean", "rewards"),
        (math.inf, "none", "rewards"),
        (-math.inf, "optimal", "rewards"),
        (math.nan, "value", "rewards"),
        # returns ~1e30: finite, but the value head's squared error overflows float32
        (1e30, "value", "value_loss"),
        # returns ~1e39 in float64 are finite, the gradient reaching the float32 parameters is not
        (3e38, "none", "gradient"),
    ],
)
def test_non_finite_update_is_refused_and_model_unchanged(bad, baseline, quantity):
    # 2 episodes of 5 steps per update: three good updates, then a bad batch
    env = DummyVecEnv([lambda: LateBadRewardEnv(bad, bad_from=30)])
    model = REINFORCE("MlpPolicy", env, n_episodes=2, baseline=baseline, seed=0, learning_rate=1e-2)
    snapshots = Snapshots()
    with pytest.raises(NonFiniteLossError) as info:
        model.learn(1000, callback=snapshots)
    message = str(info.value)
    assert quantity in message, message
    assert "non-finite" in message
    assert isinstance(info.value, FloatingPointError)
    assert model._n_updates == 3
    assert len(snapshots.states) == 4
    # the optimizer had state before the bad update, and neither it nor the parameters moved
    params, optimizer_state = snapshots.states[-1]
    assert optimizer_state["state"]
    assert_model_is(model, params, optimizer_state)
    assert not all(th.equal(params[k], snapshots.states[0][0][k]) for k in params)


@pytest.mark.parametrize(
    ("optimizer_class", "learning_rate"),
    [
        # Adam's step size lr / (1 - beta1) is not representable in float32
        (th.optim.Adam, 1e38),
        # one SGD step sends the action head's parameters to +-inf
        (th.optim.SGD, 3e38),
    ],
    ids=["Adam", "SGD"],
)
def test_learning_rate_driving_parameters_to_inf(optimizer_class, learning_rate):
    """
    A (finite, accepted) learning rate so large that an update would make the parameters
    non-finite: training must stop with NonFiniteLossError and the model must be as it was
    before that update (parameters finite, optimizer state untouched).
    """
    env = DummyVecEnv([lambda: LateBadRewardEnv(10.0, bad_from=0)])
    model = REINFORCE(
        "MlpPolicy",
        env,
        n_episodes=2,
        baseline="none",
        seed=0,
        learning_rate=learning_rate,
        policy_kwargs={"optimizer_class": optimizer_class, "net_arch": {"pi": [], "vf": []}},
    )
    snapshots = Snapshots()
    with pytest.raises(NonFiniteLossError, match="non-finite"):
        model.learn(1000, callback=snapshots)
    assert all(bool(th.isfinite(p).all()) for p in model.policy.parameters())
    params, optimizer_state = snapshots.states[-1]
    assert_model_is(model, params, optimizer_state)
