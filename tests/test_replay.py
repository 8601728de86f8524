"""Replay one REINFORCE update: the applied step equals docs/maths.md §3–5 recomputed independently from the batch.

For each configuration, ``learn(total_timesteps=1)`` runs one collect-then-update cycle with SGD
(no momentum).  A callback snapshots the parameters in ``_on_rollout_end`` (after collection,
before the update); ``model.rollout_buffer`` is the batch the update used.  The test then rebuilds
the loss of docs/maths.md §4 from that batch with deliberately slow, obviously-correct Python loops and
none of the library's estimator functions:

- returns: a backward ``G = r + gamma G`` loop per episode (reward-to-go) or ``sum_t gamma^t r_t``;
- truncated episodes (``TimeLimit``) bootstrapped with ``r_{T-1} += gamma V(s_T)`` only with the
  value baseline (docs/maths.md §3);
- baselines: leave-one-out mean per (episode, time step) with the fill of docs/maths.md §5.1 past an episode's
  end; the optimal baselines of docs/maths.md §5.4 from per-step scores, each from its own backward
  pass (the per-coordinate one as the term ``sum_k theta_k c_k`` of the loss); the value head;
- advantage standardisation (mean 0, sample std with ddof=1, ``+1e-8``: the library's documented
  convention, as in SB3's PPO), ``lambda_t``, the mean over episodes, entropy and value terms, and
  gradient-norm clipping (torch's ``clip_grad_norm_`` rule, ``max_norm / (norm + 1e-6)``).

The forward pass is written by hand from the policy's modules (features extractor, mlp extractor,
action/value heads) on a float64 copy of the policy, and the expected update ``-lr * grad`` is
compared with the float32 update the library applied: ``rtol=1e-5, atol=1e-6``.  The batch itself
is checked too: episode layout, ``truncated`` flags against the env's terminal observations, and
the stored behaviour log-probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium.wrappers import TimeLimit
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.vec_env import DummyVecEnv

from benchmarks.tabular_mdp import FIXED_HORIZON, TabularEnv, fixed_horizon_mdp, random_length_mdp
from sb3_reinforce import REINFORCE

th.set_num_threads(1)

LEARNING_RATE = 0.1
TIME_LIMIT = 3
TABULAR_NET: dict[str, Any] = {"net_arch": {"pi": [], "vf": []}}


class SnapshotCallback(BaseCallback):
    """Keep the parameters and the batch as they are when collection ends (before the update)."""

    def __init__(self) -> None:
        super().__init__()
        self.params: dict[str, th.Tensor] | None = None
        self.batch: Any = None
        self.n_rollouts = 0

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        self.n_rollouts += 1
        self.params = {k: v.detach().clone() for k, v in self.model.policy.state_dict().items()}
        self.batch = getattr(self.model, "rollout_buffer", None)


# ----------------------------------------------------------------------------------------------
# Configurations
# ----------------------------------------------------------------------------------------------
def fixed_horizon_env() -> gym.Env:
    return TabularEnv(fixed_horizon_mdp())


def random_length_env() -> gym.Env:
    return TabularEnv(random_length_mdp())


def time_limited_env() -> gym.Env:
    return TimeLimit(TabularEnv(random_length_mdp()), max_episode_steps=TIME_LIMIT)


def vec_time_limited_env() -> DummyVecEnv:
    return DummyVecEnv([time_limited_env for _ in range(3)])


def cartpole_env() -> gym.Env:
    return gym.make("CartPole-v1", max_episode_steps=12)


@dataclass(frozen=True)
class Config:
    id: str
    make_env: Callable[[], Any]
    kwargs: dict[str, Any]
    policy_kwargs: dict[str, Any] = field(default_factory=lambda: dict(TABULAR_NET))
    n_episodes: int = 8
    expect_truncations: bool = False
    expect_clipping: bool = False


CONFIGS = [
    Config("fh-none-rtg", fixed_horizon_env, {"baseline": "none", "gamma": 0.9}),
    Config(
        "fh-none-wholereturn-unbiased",
        fixed_horizon_env,
        {"baseline": "none", "gamma": 0.9, "reward_to_go": False, "unbiased_discount": True},
    ),
    Config(
        "rl-mean-rtg-unbiased",
        random_length_env,
        {"baseline": "mean", "gamma": 0.9, "unbiased_discount": True},
    ),
    Config(
        "rl-mean-wholereturn",
        random_length_env,
        {"baseline": "mean", "gamma": 0.9, "reward_to_go": False},
    ),
    Config("rl-optimal-rtg", random_length_env, {"baseline": "optimal", "gamma": 0.9}),
    Config(
        "rl-optimal-wholereturn-unbiased",
        random_length_env,
        {"baseline": "optimal", "gamma": 0.8, "reward_to_go": False, "unbiased_discount": True},
    ),
    Config(
        "rl-optimal_constant-rtg-unbiased",
        random_length_env,
        {"baseline": "optimal_constant", "gamma": 0.9, "unbiased_discount": True},
    ),
    Config(
        "rl-optimal_time-rtg-unbiased",
        random_length_env,
        {"baseline": "optimal_time", "gamma": 0.9, "unbiased_discount": True},
    ),
    Config(
        "fh-optimal_time-wholereturn",
        fixed_horizon_env,
        {"baseline": "optimal_time", "gamma": 0.8, "reward_to_go": False},
    ),
    Config(
        "rl-optimal_coordinate-rtg-unbiased",
        random_length_env,
        {"baseline": "optimal_coordinate", "gamma": 0.9, "unbiased_discount": True},
    ),
    Config(
        "rl-optimal_coordinate-wholereturn",
        random_length_env,
        {"baseline": "optimal_coordinate", "gamma": 0.8, "reward_to_go": False},
    ),
    Config(
        "rl-optimal_coordinate-normalize",
        random_length_env,
        {"baseline": "optimal_coordinate", "gamma": 0.9, "normalize_advantage": True},
    ),
    Config("rl-value-rtg", random_length_env, {"baseline": "value", "gamma": 0.9, "vf_coef": 0.7}),
    Config(
        "tl-value-rtg-bootstrap",
        time_limited_env,
        {"baseline": "value", "gamma": 0.9, "vf_coef": 0.5},
        expect_truncations=True,
    ),
    Config(
        "tl-value-wholereturn-unbiased-bootstrap",
        time_limited_env,
        {"baseline": "value", "gamma": 0.8, "reward_to_go": False, "unbiased_discount": True},
        expect_truncations=True,
    ),
    Config(
        "tl-none-no-bootstrap",
        time_limited_env,
        {"baseline": "none", "gamma": 0.9},
        expect_truncations=True,
    ),
    Config(
        "tl-mean-no-bootstrap",
        time_limited_env,
        {"baseline": "mean", "gamma": 1.0},
        expect_truncations=True,
    ),
    Config(
        "rl-mean-normalize",
        random_length_env,
        {"baseline": "mean", "gamma": 0.9, "normalize_advantage": True},
    ),
    Config(
        "rl-value-normalize-entropy",
        random_length_env,
        {
            "baseline": "value",
            "gamma": 0.95,
            "normalize_advantage": True,
            "ent_coef": 0.05,
            "unbiased_discount": True,
        },
    ),
    Config("rl-none-entropy", random_length_env, {"baseline": "none", "gamma": 1.0, "ent_coef": 0.1}),
    Config(
        "rl-optimal-clip",
        random_length_env,
        {"baseline": "optimal", "gamma": 0.9, "max_grad_norm": 0.05},
        expect_clipping=True,
    ),
    Config(
        "vec3-tl-value",
        vec_time_limited_env,
        {"baseline": "value", "gamma": 0.9, "ent_coef": 0.01},
        n_episodes=5,
        expect_truncations=True,
    ),
    Config("vec3-tl-mean-unbiased", vec_time_limited_env, {"baseline": "mean", "gamma": 0.9}, n_episodes=7),
    Config(
        "cartpole-mlp-value-everything",
        cartpole_env,
        {
            "baseline": "value",
            "gamma": 0.95,
            "unbiased_discount": True,
            "normalize_advantage": True,
            "ent_coef": 0.01,
            "max_grad_norm": 0.5,
        },
        policy_kwargs={"net_arch": [8]},
        n_episodes=4,
        expect_truncations=True,
    ),
    Config(
        "cartpole-mlp-optimal",
        cartpole_env,
        {"baseline": "optimal", "gamma": 0.95},
        policy_kwargs={"net_arch": [8]},
        n_episodes=4,
    ),
    Config(
        "cartpole-mlp-optimal_coordinate-clip",
        cartpole_env,
        {"baseline": "optimal_coordinate", "gamma": 0.95, "max_grad_norm": 0.5},
        policy_kwargs={"net_arch": [8]},
        n_episodes=4,
    ),
    Config(
        "vec3-tl-optimal_time",
        vec_time_limited_env,
        {"baseline": "optimal_time", "gamma": 0.9},
        n_episodes=5,
        expect_truncations=True,
    ),
    Config(
        "cartpole-mlp-mean-wholereturn",
        cartpole_env,
        {"baseline": "mean", "gamma": 0.9, "reward_to_go": False, "ent_coef": 0.02},
        policy_kwargs={"net_arch": {"pi": [8, 8], "vf": [8]}},
        n_episodes=3,
    ),
]


# ----------------------------------------------------------------------------------------------
# The independent reference
# ----------------------------------------------------------------------------------------------
def forward(policy: ActorCriticPolicy, observations: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
    """``(logits, values)`` by hand from the policy's modules, in the modules' dtype."""
    features = policy.features_extractor(observations)
    latent_pi, latent_vf = policy.mlp_extractor(features)
    return policy.action_net(latent_pi), policy.value_net(latent_vf).flatten()


def split(values: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
    out, start = [], 0
    for length in lengths:
        out.append(values[start : start + int(length)])
        start += int(length)
    return out


@dataclass
class Reference:
    deltas: dict[str, np.ndarray]
    grad_norm: float
    log_probs: np.ndarray
    bootstrapped: int


def reference_update(
    policy32: ActorCriticPolicy, params: dict[str, th.Tensor], batch: Any, kwargs: dict[str, Any]
) -> Reference:
    """The docs/maths.md §4 update ``-lr * clip(grad L)`` recomputed in float64 from the batch."""
    gamma = float(kwargs["gamma"])
    baseline = kwargs.get("baseline", "mean")
    reward_to_go = kwargs.get("reward_to_go", True)
    unbiased = kwargs.get("unbiased_discount", False)
    normalize = kwargs.get("normalize_advantage", False)
    ent_coef = float(kwargs.get("ent_coef", 0.0))
    vf_coef = float(kwargs.get("vf_coef", 0.5))
    max_grad_norm = kwargs.get("max_grad_norm")

    # A fresh policy of the same class and constructor arguments (as SB3's ``BasePolicy.load`` does).
    policy = type(policy32)(**policy32._get_constructor_parameters()).to(th.float64)
    policy.load_state_dict(params)
    named = dict(policy.named_parameters())

    lengths = [int(x) for x in batch.lengths]
    n_episodes = len(lengths)
    obs = th.as_tensor(np.asarray(batch.observations), dtype=th.float64)
    actions = th.as_tensor(np.asarray(batch.actions)).long().reshape(-1)
    logits, values = forward(policy, obs)
    log_pi_all = th.log_softmax(logits, dim=-1)
    log_prob = log_pi_all[th.arange(len(actions)), actions]
    entropy = -(log_pi_all.exp() * log_pi_all).sum(dim=-1)

    # Rewards, with the value bootstrap of truncated episodes (value baseline only).
    flat_rewards = np.asarray(batch.rewards, dtype=np.float64)
    rewards = [list(map(float, ep)) for ep in split(flat_rewards, batch.lengths)]
    bootstrapped = 0
    if baseline == "value":
        for i in range(n_episodes):
            if bool(batch.truncated[i]):
                terminal = th.as_tensor(np.asarray(batch.terminal_observations[i]), dtype=th.float64)[None]
                with th.no_grad():
                    _, v_terminal = forward(policy, terminal)
                rewards[i][-1] += gamma * float(v_terminal[0])
                bootstrapped += 1

    # Returns Ĝ_t.
    returns: list[list[float]] = []
    whole_returns: list[float] = []
    for ep in rewards:
        total = 0.0
        for t, r in enumerate(ep):
            total += gamma**t * r
        whole_returns.append(total)
        if reward_to_go:
            g, to_go = 0.0, [0.0] * len(ep)
            for t in reversed(range(len(ep))):
                g = ep[t] + gamma * g
                to_go[t] = g
            returns.append(to_go)
        else:
            returns.append([total] * len(ep))

    # Baselines b_t (and b_{t,k} of the per-coordinate baseline, which enters the loss on its own).
    baselines: list[list[float]] = []
    coordinate: list[list[th.Tensor]] | None = None
    if baseline == "none":
        baselines = [[0.0] * length for length in lengths]
    elif baseline == "mean":
        for i in range(n_episodes):
            b_i = []
            for t in range(lengths[i]):
                acc = 0.0
                for j in range(n_episodes):
                    if j == i:
                        continue
                    if t < lengths[j]:
                        acc += returns[j][t]
                    else:
                        acc += 0.0 if reward_to_go else whole_returns[j]
                b_i.append(acc / (n_episodes - 1))
            baselines.append(b_i)
    elif baseline.startswith("optimal"):
        baselines, coordinate = reference_optimal_baseline(
            baseline, log_prob, list(named.values()), lengths, returns, whole_returns, reward_to_go, gamma, unbiased
        )
    elif baseline == "value":
        baselines = [list(map(float, ep)) for ep in split(values.detach().numpy(), batch.lengths)]
    else:
        raise AssertionError(baseline)

    advantages = [returns[i][t] - baselines[i][t] for i in range(n_episodes) for t in range(lengths[i])]
    adv_scale = 1.0
    if normalize:
        mean = sum(advantages) / len(advantages)
        std = (sum((a - mean) ** 2 for a in advantages) / (len(advantages) - 1)) ** 0.5
        advantages = [(a - mean) / (std + 1e-8) for a in advantages]
        adv_scale = 1.0 / (std + 1e-8)
    # lambda_t = gamma^t only with reward-to-go: R(tau) is already discounted from the episode start.
    step_weights = [gamma**t if unbiased and reward_to_go else 1.0 for length in lengths for t in range(length)]
    coefficient = th.tensor([w * a for w, a in zip(step_weights, advantages)], dtype=th.float64)

    loss = -(coefficient * log_prob).sum() / n_episodes
    if coordinate is not None:
        # sum_k theta_k c_k with c = (1/N) sum_i sum_t lambda_t g_t ⊙ b_t (scaled like the advantages).
        params = list(named.values())
        scores = step_scores(log_prob, params)
        flat_b = [b for ep in coordinate for b in ep]
        c = sum(w * g * b for w, g, b in zip(step_weights, scores, flat_b)) * adv_scale / n_episodes
        flat_params = th.cat([p.reshape(-1) for p in params])
        loss = loss + (flat_params * c.detach()).sum()
    loss = loss - ent_coef * entropy.mean()
    if baseline == "value":
        targets = th.tensor([g for ep in returns for g in ep], dtype=th.float64)
        loss = loss + vf_coef * ((values - targets) ** 2).mean()

    grads = th.autograd.grad(loss, list(named.values()), allow_unused=True)
    grads_np = {
        name: (np.zeros(tuple(p.shape)) if g is None else g.numpy().copy())
        for (name, p), g in zip(named.items(), grads)
    }
    norm = float(np.sqrt(sum((g**2).sum() for g in grads_np.values())))
    scale = 1.0
    if max_grad_norm is not None:
        scale = min(1.0, float(max_grad_norm) / (norm + 1e-6))
    deltas = {name: -LEARNING_RATE * scale * g for name, g in grads_np.items()}
    return Reference(deltas, norm, log_prob.detach().numpy(), bootstrapped)


def step_scores(log_prob: th.Tensor, params: list[th.Tensor]) -> list[th.Tensor]:
    """``grad log pi(a_t|s_t)`` of every step, one backward pass each, flattened over ``params``."""
    scores = []
    for t in range(len(log_prob)):
        grads = th.autograd.grad(log_prob[t], params, retain_graph=True, allow_unused=True)
        scores.append(th.cat([(th.zeros_like(p) if g is None else g).reshape(-1) for p, g in zip(params, grads)]))
    return scores


def reference_optimal_baseline(
    name: str,
    log_prob: th.Tensor,
    params: list[th.Tensor],
    lengths: list[int],
    returns: list[list[float]],
    whole_returns: list[float],
    reward_to_go: bool,
    gamma: float,
    unbiased: bool,
) -> tuple[list[list[float]], list[list[th.Tensor]] | None]:
    """
    docs/maths.md §5.4 by loops: ``b = sum_{j != i} w G / sum_{j != i} w`` over the other episodes, with
    ``w`` the squared (norm or coordinate of the) score times ``lambda_t^2``; where the others weigh
    nothing, the leave-one-out mean.  Returns the per-step baselines and, for ``"optimal_coordinate"``,
    the per-step vectors ``b_{t,k}`` (the scalar ones are then 0).
    """
    n = len(lengths)
    flat = step_scores(log_prob, params)
    scores = split(np.arange(len(flat)), np.array(lengths))
    lam = [[gamma**t if unbiased and reward_to_go else 1.0 for t in range(length)] for length in lengths]

    def score(j: int, t: int) -> th.Tensor:
        return flat[int(scores[j][t])].detach()

    def mean_of_others(i: int, t: int) -> float:
        acc = 0.0
        for j in range(n):
            if j != i:
                acc += returns[j][t] if t < lengths[j] else (0.0 if reward_to_go else whole_returns[j])
        return acc / (n - 1)

    if name in ("optimal", "optimal_constant"):
        out = []
        for i in range(n):
            num = den = 0.0
            for j in range(n):
                for t in range(lengths[j]):
                    if j != i:
                        w = lam[j][t] ** 2 * float((score(j, t) ** 2).sum())
                        num, den = num + w * returns[j][t], den + w
            out.append([num / den if den > 0 else mean_of_others(i, t) for t in range(lengths[i])])
        return out, None
    if name == "optimal_time":
        out = []
        for i in range(n):
            row = []
            for t in range(lengths[i]):
                num = den = 0.0
                for j in range(n):
                    if j != i and t < lengths[j]:
                        w = lam[j][t] ** 2 * float((score(j, t) ** 2).sum())
                        num, den = num + w * returns[j][t], den + w
                row.append(num / den if den > 0 else mean_of_others(i, t))
            out.append(row)
        return out, None
    assert name == "optimal_coordinate", name
    vectors = []
    for i in range(n):
        row = []
        for t in range(lengths[i]):
            num = th.zeros_like(flat[0])
            den = th.zeros_like(flat[0])
            for j in range(n):
                if j != i and t < lengths[j]:
                    w = lam[j][t] ** 2 * score(j, t) ** 2
                    num, den = num + w * returns[j][t], den + w
            fallback = th.full_like(num, mean_of_others(i, t))
            row.append(th.where(den > 0, num / th.where(den > 0, den, th.ones_like(den)), fallback))
        vectors.append(row)
    return [[0.0] * length for length in lengths], vectors


# ----------------------------------------------------------------------------------------------
# The test
# ----------------------------------------------------------------------------------------------
def _set_initial_params(model: REINFORCE, seed: int) -> None:
    """Non-trivial starting parameters for both heads (N(0, 0.8^2) policy logits, N(0, 1) value head)."""
    policy = model.policy
    gen = th.Generator().manual_seed(seed)
    with th.no_grad():
        for p in policy.action_net.parameters():
            p.copy_(0.8 * th.randn(p.shape, generator=gen))
        for p in policy.value_net.parameters():
            p.copy_(th.randn(p.shape, generator=gen))


def check_batch(batch: Any, config: Config) -> None:
    """The batch is laid out as docs/maths.md §2 and §7 say, and consistent with the env's dynamics."""
    lengths = np.asarray(batch.lengths)
    n = config.n_episodes
    m = int(lengths.sum())
    assert lengths.shape == (n,) and np.all(lengths >= 1)
    obs = np.asarray(batch.observations)
    assert obs.shape[0] == m and np.asarray(batch.actions).reshape(-1).shape == (m,)
    assert np.asarray(batch.rewards).shape == (m,) and np.asarray(batch.rewards).dtype == np.float64
    assert np.asarray(batch.log_probs).shape == (m,)
    truncated = np.asarray(batch.truncated)
    assert truncated.shape == (n,) and truncated.dtype == bool
    terminal = np.asarray(batch.terminal_observations)
    assert terminal.shape == (n, *obs.shape[1:])
    if config.make_env is fixed_horizon_env:
        assert np.all(lengths == FIXED_HORIZON)
        # Time is part of the state: step t of every episode is in layer t.
        layers = np.argmax(obs, axis=1) // (obs.shape[1] // FIXED_HORIZON)
        np.testing.assert_array_equal(layers, np.concatenate([np.arange(length) for length in lengths]))
    if config.make_env in (time_limited_env, vec_time_limited_env):
        # Terminated episodes end in the all-zero observation, truncated ones in a one-hot state.
        np.testing.assert_array_equal(truncated, terminal.sum(axis=1) == 1.0)
        assert np.all(lengths <= TIME_LIMIT) and np.all(lengths[truncated] == TIME_LIMIT)
    if config.make_env in (fixed_horizon_env, random_length_env, time_limited_env, vec_time_limited_env):
        # Every step's observation is a one-hot state, and episodes end where the env said.
        assert np.all(obs.sum(axis=1) == 1.0)
    if config.make_env in (fixed_horizon_env, random_length_env):
        assert not truncated.any() and not terminal.any()
    if config.expect_truncations:
        assert truncated.any()


@pytest.mark.parametrize("config", CONFIGS, ids=[c.id for c in CONFIGS])
def test_update_replays_spec(config: Config) -> None:
    env = config.make_env()
    model = REINFORCE(
        "MlpPolicy",
        env,
        learning_rate=LEARNING_RATE,
        n_episodes=config.n_episodes,
        policy_kwargs={**config.policy_kwargs, "optimizer_class": th.optim.SGD, "ortho_init": False},
        seed=7,  # a seed whose time-limited batches contain truncated episodes (asserted in check_batch)
        device="cpu",
        **config.kwargs,
    )
    _set_initial_params(model, seed=5)
    callback = SnapshotCallback()
    model.learn(total_timesteps=1, callback=callback)

    assert callback.n_rollouts == 1 and callback.params is not None
    batch = model.rollout_buffer
    assert batch is callback.batch
    check_batch(batch, config)

    ref = reference_update(model.policy, callback.params, batch, config.kwargs)
    # The stored behaviour log-probabilities are those of the snapshot policy.
    behaviour = np.asarray(batch.log_probs, dtype=np.float64)
    np.testing.assert_allclose(behaviour, ref.log_probs, rtol=1e-5, atol=1e-6)
    if config.expect_truncations and config.kwargs["baseline"] == "value":
        assert ref.bootstrapped > 0
    if config.expect_clipping:
        assert ref.grad_norm > 2 * config.kwargs["max_grad_norm"]
    elif "max_grad_norm" not in config.kwargs:
        assert ref.grad_norm > 1e-3  # a non-trivial update

    after = dict(model.policy.named_parameters())
    for name, expected in ref.deltas.items():
        actual = (after[name].detach().double() - callback.params[name].double()).numpy()
        message = f"{config.id}: parameter {name}"
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6, err_msg=message)


def test_reference_has_teeth() -> None:
    """The reference is sensitive to the details it checks: ddof, bootstrapping and the episode mean."""
    config = next(c for c in CONFIGS if c.id == "tl-value-rtg-bootstrap")
    model = REINFORCE(
        "MlpPolicy",
        config.make_env(),
        learning_rate=LEARNING_RATE,
        n_episodes=config.n_episodes,
        policy_kwargs={**config.policy_kwargs, "optimizer_class": th.optim.SGD, "ortho_init": False},
        seed=123,
        device="cpu",
        **config.kwargs,
    )
    _set_initial_params(model, seed=5)
    callback = SnapshotCallback()
    model.learn(total_timesteps=1, callback=callback)
    assert callback.params is not None
    after = dict(model.policy.named_parameters())
    actual = {k: (after[k].detach().double() - callback.params[k].double()).numpy() for k in after}

    def matches(kwargs: dict[str, Any]) -> bool:
        ref = reference_update(model.policy, callback.params, model.rollout_buffer, kwargs)  # type: ignore[arg-type]
        return all(np.allclose(actual[k], ref.deltas[k], rtol=1e-5, atol=1e-6) for k in actual)

    assert matches(config.kwargs)
    assert not matches({**config.kwargs, "gamma": 0.89})
    assert not matches({**config.kwargs, "vf_coef": 0.45})
    assert not matches({**config.kwargs, "baseline": "none"})  # no bootstrap, no value loss


@pytest.mark.parametrize("baseline", ["optimal_constant", "optimal_time", "optimal_coordinate"])
def test_optimal_references_tell_the_variants_apart(baseline: str) -> None:
    """Each optimal baseline's update matches its own reference and none of the others' (nor the mean's)."""
    kwargs = {"baseline": baseline, "gamma": 0.9, "unbiased_discount": True}
    model = REINFORCE(
        "MlpPolicy",
        random_length_env(),
        learning_rate=LEARNING_RATE,
        n_episodes=6,
        policy_kwargs={**TABULAR_NET, "optimizer_class": th.optim.SGD, "ortho_init": False},
        seed=11,
        device="cpu",
        **kwargs,
    )
    _set_initial_params(model, seed=5)
    callback = SnapshotCallback()
    model.learn(total_timesteps=1, callback=callback)
    assert callback.params is not None
    after = dict(model.policy.named_parameters())
    actual = {k: (after[k].detach().double() - callback.params[k].double()).numpy() for k in after}

    def matches(name: str) -> bool:
        reference = reference_update(model.policy, callback.params, model.rollout_buffer, {**kwargs, "baseline": name})  # type: ignore[arg-type]
        return all(np.allclose(actual[k], reference.deltas[k], rtol=1e-5, atol=1e-6) for k in actual)

    assert matches(baseline)
    for other in ("mean", "optimal_constant", "optimal_time", "optimal_coordinate"):
        if other != baseline:
            assert not matches(other), other
