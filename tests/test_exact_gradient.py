"""The REINFORCE update is, in expectation, the gradient docs/maths.md §4 promises: checked against exact gradients.

Harness
-------
The policy is a tabular softmax (one-hot observations, ``net_arch=dict(pi=[], vf=[])``) on the small
MDPs of ``tabular_mdp.py``, whose ``grad J_gamma`` and the exact expectation of every estimator
variant are computed by a linear solve (formulas in ``tabular_mdp``'s docstring, themselves checked
here against brute-force enumeration and a large Monte-Carlo sample).  For one configuration we
run ``K`` independent batches: each builds ``REINFORCE(..., seed=SEED + k)`` with SGD (no momentum)
and ``learning_rate=1``, loads a fixed non-trivial ``(W, b)`` into ``policy.action_net``, runs
``learn(1)`` and records ``Δθ / lr`` over ``(W, b)``: one draw of the library's estimate of ``+grad J``.
(Rebuilding the model per batch costs ~1 ms on top of 20-50 ms per batch, measured, so every batch
is built from its own ``seed=`` instead of reusing and resetting one model.)

Statistic: for every coordinate ``i``, ``t_i = (mean_k x_ki - target_i) / (sd_i / sqrt(K))`` with
``sd_i`` the sample standard deviation of the same K draws, and the check is ``max_i |t_i| < Z``.
``Z = 5``: with ``K >= 100`` each ``t_i`` is Student-t with >= 99 degrees of freedom, so
``P(|t_i| > 5) <= 3e-6``; over the ~150 coordinates checked in this file (half of them are the
negatives of the other half: 2 actions) the chance that a correct library fails is below 5e-4 by
Bonferroni, and the seeds are fixed, so a run is deterministic.
Every passing check also asserts the harness had power: ``max_i |target_i| / se_i >= 2 Z``, so an
estimator that returned 0 (or the negated gradient) would have been rejected.

Teeth: the same harness rejects deliberately wrong estimators, made by monkeypatching the names
the library uses (``surrogate_loss``, ``discount_weights`` and ``discounted_returns`` in
``sb3_reinforce.common.estimator``, ``leave_one_out_mean`` in ``sb3_reinforce.common.baselines``): sign flip, mean over
steps (globally and per episode), gamma ignored in the returns, a baseline that includes the episode
itself (the mean, and each optimal baseline with ``leave_one_out_ratio`` summing episode ``i`` too).
Each must give ``max |t| > 2 Z``.  Measured for the optimal baselines: correct runs ``max |t|``
0.3-3.1 with power 16-52; the self-including versions at N = 2 (400 batches) 11.6 (constant),
21.2 (per step) and 105 (per coordinate), so the teeth tests use 600 batches.

docs/maths.md §2 (which episodes form a batch with several envs) is checked on the random-length MDP with a
``DummyVecEnv`` of 3 envs, and a numpy reference simulation shows that the same statistic rejects
the length-biased rule "first N episodes to finish" while accepting "first N to start"; the
library test asserts it had the power to see that bias (bias > (Z + 2) SE along its direction, so
a first-to-finish library would fail with probability > 97%).

Budget
------
Measured (CPU time, one thread): a batch of N = 20 episodes costs ~50 ms with one env (one policy
forward per step dominates) but ~20 ms with a ``DummyVecEnv`` of 4 envs (one forward per 4 steps),
so most cases use 4 envs -- which also exercises the docs/maths.md §2 slot assignment on every batch -- and
three cases (one per MDP/baseline family) use the plain single-env path.  Per-batch standard
deviations of the estimate (N = 20) measured 0.02-0.47 per coordinate against gradients whose
largest coordinate is 0.27-0.98, so K = 100 batches give ``se <= 0.047`` and power
(``max |target| / se``) of 15-49 in every case, and ``max |t|`` of correct runs measured <= 3.9.
The wrong estimators give ``max |t|`` of 16-65.  Instead of the full cross product of
{MDP} x {gamma} x {baseline} x {reward_to_go} x {unbiased_discount} (64 runs), the cases below
cover every baseline at least twice, both MDPs, reward-to-go on and off, gamma = 1 and < 1 with
both discount modes, and every distinct expectation (``kappa`` in ``tabular_mdp``).  The
``n_envs=3`` test uses N = 5, K = 600: its projected SE is 0.048 against a first-to-finish bias of
norm 0.39 (8 SE).  The whole file takes about 90 s of CPU.

Discounting (derived in ``tabular_mdp`` and confirmed below): without reward-to-go, ``Ĝ_t = R(tau)`` is
already discounted from the start of the episode, so ``sum_t grad log pi(a_t|s_t) R(tau)`` is exactly
``grad J_gamma``; weighting it by ``gamma^t`` once more would give ``sum_s d_{gamma^2}(s) sum_a grad pi
Q_gamma``: neither ``grad J_gamma`` nor the surrogate.  The library therefore applies
``lambda_t = gamma^t`` only with reward-to-go (docs/maths.md §4.5), which is what the guarantee of
docs/maths.md §9.1 ("``unbiased_discount=True`` gives ``grad J_gamma``") needs; ``library_kappa``
states it, and the tests check the library against the exact expectation in every case and state
which target it equals.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any, cast

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import DummyVecEnv

from benchmarks.tabular_mdp import (
    TabularEnv,
    TabularMDP,
    estimate_kappa,
    fixed_horizon_mdp,
    flat_gradient,
    random_length_mdp,
    random_policy_params,
    simulate_estimates,
    vec_env_batch_estimates,
)
from sb3_reinforce import REINFORCE

th.set_num_threads(1)

Z = 5.0
N_EPISODES = 20
N_BATCHES = 100
N_ENVS = 4
LEARNING_RATE = 1.0
GAMMA = 0.6
SEED = 1000
POLICY_KWARGS: dict[str, Any] = {
    "net_arch": {"pi": [], "vf": []},
    "optimizer_class": th.optim.SGD,
    "ortho_init": False,
}

MDPS: dict[str, Callable[[], TabularMDP]] = {
    "fixed_horizon": fixed_horizon_mdp,
    "random_length": random_length_mdp,
}


# ----------------------------------------------------------------------------------------------
# Statistics
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MeanCheck:
    """Per-coordinate t-statistics of the mean of ``K`` i.i.d. draws against a target vector."""

    mean: np.ndarray
    se: np.ndarray
    target: np.ndarray

    @property
    def t(self) -> np.ndarray:
        diff = self.mean - self.target
        zero_se = self.se == 0
        safe = np.where(zero_se, 1.0, self.se)
        # A coordinate that never varies must match exactly (up to float32 noise).
        return np.where(zero_se, np.where(np.abs(diff) < 1e-6, 0.0, np.inf), diff / safe)

    @property
    def max_abs_t(self) -> float:
        return float(np.max(np.abs(self.t)))

    @property
    def power(self) -> float:
        """``max_i |target_i| / se_i``: how many standard errors the target is away from 0."""
        return float(np.max(np.abs(self.target) / np.maximum(self.se, 1e-12)))

    def describe(self) -> str:
        worst = int(np.argmax(np.abs(self.t)))
        return (
            f"max|t|={self.max_abs_t:.2f} at coordinate {worst}: mean={self.mean[worst]:.5f}, "
            f"target={self.target[worst]:.5f}, se={self.se[worst]:.5f}; power={self.power:.1f}"
        )


def mean_check(samples: np.ndarray, target: np.ndarray) -> MeanCheck:
    """Compare the mean of the rows of ``samples`` (K, d) with ``target`` (d,) using their own sample SE."""
    n = samples.shape[0]
    return MeanCheck(samples.mean(axis=0), samples.std(axis=0, ddof=1) / np.sqrt(n), target)


def assert_matches(samples: np.ndarray, target: np.ndarray, what: str) -> MeanCheck:
    check = mean_check(samples, target)
    assert check.max_abs_t < Z, f"library estimate does not match {what}: {check.describe()}"
    assert check.power >= 2 * Z, f"harness too weak to test {what}: {check.describe()}"
    return check


def assert_rejected(samples: np.ndarray, target: np.ndarray, what: str) -> MeanCheck:
    check = mean_check(samples, target)
    assert check.max_abs_t > 2 * Z, f"{what} was not clearly rejected: {check.describe()}"
    return check


# ----------------------------------------------------------------------------------------------
# Library harness
# ----------------------------------------------------------------------------------------------
def make_env(mdp: TabularMDP, n_envs: int) -> TabularEnv | DummyVecEnv:
    if n_envs == 1:
        return TabularEnv(mdp)
    return DummyVecEnv([partial(TabularEnv, mdp) for _ in range(n_envs)])


def library_gradient_samples(
    mdp: TabularMDP,
    *,
    gamma: float,
    n_episodes: int = N_EPISODES,
    n_batches: int = N_BATCHES,
    n_envs: int = N_ENVS,
    seed: int = SEED,
    **algo_kwargs: Any,
) -> np.ndarray:
    """
    ``K`` draws of the library's gradient estimate ``Δθ / lr`` over ``(W, b)``, shape ``(K, A*S + A)``.

    The value head (used by ``baseline="value"``) starts at a deliberately imperfect
    ``V(s) = 0.8 V_gamma(s) + 0.1``: any fixed value function leaves the estimate unbiased.
    """
    weight, bias = random_policy_params(mdp)
    v_true, _ = mdp.values(th.tensor(weight), th.tensor(bias), gamma)
    v_init = (0.8 * v_true + 0.1).to(th.float32)
    samples = np.empty((n_batches, weight.size + bias.size))
    for k in range(n_batches):
        model = REINFORCE(
            "MlpPolicy",
            make_env(mdp, n_envs),
            learning_rate=LEARNING_RATE,
            n_episodes=n_episodes,
            gamma=gamma,
            policy_kwargs=POLICY_KWARGS,
            seed=seed + k,
            device="cpu",
            **algo_kwargs,
        )
        action_net = cast(th.nn.Linear, model.policy.action_net)
        value_net = cast(th.nn.Linear, model.policy.value_net)
        with th.no_grad():
            action_net.weight.copy_(th.as_tensor(weight))
            action_net.bias.copy_(th.as_tensor(bias))
            value_net.weight.copy_(v_init[None, :])
            value_net.bias.zero_()
        w0, b0 = action_net.weight.detach().clone(), action_net.bias.detach().clone()
        model.learn(total_timesteps=1)
        delta_w = (action_net.weight.detach() - w0).double().numpy().ravel()
        delta_b = (action_net.bias.detach() - b0).double().numpy()
        samples[k] = np.concatenate([delta_w, delta_b]) / LEARNING_RATE
    return samples


def library_unbiased_discount(reward_to_go: bool, unbiased_discount: bool) -> bool:
    """Whether the library applies ``lambda_t = gamma^t``: only with reward-to-go (see the module docstring)."""
    return unbiased_discount and reward_to_go


def library_kappa(gamma: float, reward_to_go: bool, unbiased_discount: bool) -> float:
    """``estimate_kappa`` of the library's estimator."""
    return estimate_kappa(gamma, reward_to_go, library_unbiased_discount(reward_to_go, unbiased_discount))


def exact_targets(
    mdp: TabularMDP, gamma: float, reward_to_go: bool, unbiased_discount: bool
) -> tuple[np.ndarray, np.ndarray]:
    """``(E[estimate] of the docs/maths.md §4 loss, grad J_gamma)`` as flat vectors."""
    weight, bias = random_policy_params(mdp)
    unbiased_discount = library_unbiased_discount(reward_to_go, unbiased_discount)
    expected = flat_gradient(mdp.expected_estimate(weight, bias, gamma, reward_to_go, unbiased_discount))
    gradient = flat_gradient(mdp.exact_gradient(weight, bias, gamma))
    return expected, gradient


# ----------------------------------------------------------------------------------------------
# The exact formulas themselves (no library involved)
# ----------------------------------------------------------------------------------------------
def _softmax_policy(weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    logits = weight.T + bias
    pi = np.exp(logits - logits.max(axis=1, keepdims=True))
    return pi / pi.sum(axis=1, keepdims=True)


Trajectory = tuple[float, list[int], list[int]]


def _trajectories(mdp: TabularMDP, pi: np.ndarray, max_len: int) -> Iterator[Trajectory]:
    """Every trajectory ``(probability, states, actions)`` of at most ``max_len`` steps that terminates."""

    def extend(prob: float, states: list[int], actions: list[int]) -> Iterator[Trajectory]:
        s = states[-1]
        for a in range(mdp.n_actions):
            p_a = prob * pi[s, a]
            if mdp.termination[s, a] > 0:
                yield p_a * mdp.termination[s, a], states, [*actions, a]
            if len(states) < max_len:
                for s2 in np.flatnonzero(mdp.transitions[s, a] > 0):
                    yield from extend(p_a * mdp.transitions[s, a, s2], [*states, int(s2)], [*actions, a])

    for s0 in np.flatnonzero(mdp.init > 0):
        yield from extend(float(mdp.init[s0]), [int(s0)], [])


def test_exact_formulas_match_enumeration() -> None:
    """Fixed-horizon MDP: J and every ``E[sum_t lambda_t score_t Ĝ_t]`` equal brute-force enumeration."""
    mdp = fixed_horizon_mdp()
    weight, bias = random_policy_params(mdp)
    pi = _softmax_policy(weight, bias)
    eye = np.eye(mdp.n_actions)
    for gamma in (1.0, GAMMA):
        total_prob, objective = 0.0, 0.0
        expectations = {combo: np.zeros_like(weight) for combo in itertools.product((True, False), repeat=2)}
        for prob, states, actions in _trajectories(mdp, pi, max_len=10):
            rewards = np.array([mdp.rewards[s, a] for s, a in zip(states, actions)])
            scores = []
            for s, a in zip(states, actions):
                score = np.zeros_like(weight)
                score[:, s] = eye[a] - pi[s]
                scores.append(score)
            discounts = gamma ** np.arange(len(rewards))
            ret = float(discounts @ rewards)
            total_prob += prob
            objective += prob * ret
            for reward_to_go, unbiased in expectations:
                for t, score in enumerate(scores):
                    g_t = float(discounts[: len(rewards) - t] @ rewards[t:]) if reward_to_go else ret
                    lam = gamma**t if unbiased else 1.0
                    expectations[(reward_to_go, unbiased)] += prob * lam * score * g_t
        assert total_prob == pytest.approx(1.0, abs=1e-12)
        exact_objective = float(mdp.objective(th.tensor(weight), th.tensor(bias), gamma))
        assert exact_objective == pytest.approx(objective, abs=1e-12)
        for (reward_to_go, unbiased), enumerated in expectations.items():
            formula = mdp.expected_estimate(weight, bias, gamma, reward_to_go, unbiased)
            np.testing.assert_allclose(formula[0].numpy(), enumerated, atol=1e-12)
            np.testing.assert_allclose(formula[1].numpy(), enumerated.sum(axis=1), atol=1e-12)


@pytest.mark.parametrize("mdp_name", list(MDPS))
def test_exact_gradient_identities(mdp_name: str) -> None:
    """Autograd of J matches finite differences, and the PG theorem holds exactly for ``kappa = gamma``."""
    mdp = MDPS[mdp_name]()
    weight, bias = random_policy_params(mdp)
    for gamma in (1.0, GAMMA):
        grad_w, grad_b = mdp.exact_gradient(weight, bias, gamma)
        eps = 1e-6
        for index in np.ndindex(weight.shape):
            plus, minus = weight.copy(), weight.copy()
            plus[index] += eps
            minus[index] -= eps
            j_plus = float(mdp.objective(th.tensor(plus), th.tensor(bias), gamma))
            j_minus = float(mdp.objective(th.tensor(minus), th.tensor(bias), gamma))
            assert float(grad_w[index]) == pytest.approx((j_plus - j_minus) / (2 * eps), abs=1e-8)
        # One-hot observations: the bias gradient is the weight gradient summed over states.
        np.testing.assert_allclose(grad_b.numpy(), grad_w.numpy().sum(axis=1), atol=1e-12)
        pg = mdp.expected_estimate_kappa(weight, bias, gamma, gamma)
        np.testing.assert_allclose(flat_gradient(pg), flat_gradient((grad_w, grad_b)), atol=1e-12)
    # gamma < 1: the surrogate (rtg, lambda=1) and no-rtg/lambda=gamma^t differ clearly from grad J.
    exact = flat_gradient(mdp.exact_gradient(weight, bias, GAMMA))
    for reward_to_go, unbiased in ((True, False), (False, True)):
        other = flat_gradient(mdp.expected_estimate(weight, bias, GAMMA, reward_to_go, unbiased))
        assert np.max(np.abs(other - exact)) > 0.1 * np.max(np.abs(exact))


@pytest.mark.parametrize("mdp_name", list(MDPS))
def test_exact_formulas_match_monte_carlo(mdp_name: str) -> None:
    """The independent numpy simulator agrees with the formulas (and so with the env dynamics they encode)."""
    mdp = MDPS[mdp_name]()
    weight, bias = random_policy_params(mdp)
    est = simulate_estimates(mdp, weight, bias, GAMMA, 100_000, np.random.default_rng(0))
    objective = float(mdp.objective(th.tensor(weight), th.tensor(bias), GAMMA))
    check = mean_check(est.returns[:, None], np.array([objective]))
    assert check.max_abs_t < Z, check.describe()
    for reward_to_go, unbiased in itertools.product((True, False), repeat=2):
        target = flat_gradient(mdp.expected_estimate(weight, bias, GAMMA, reward_to_go, unbiased))
        check = mean_check(est.flat(reward_to_go, unbiased), target)
        assert check.max_abs_t < Z, f"rtg={reward_to_go} unbiased={unbiased}: {check.describe()}"


@pytest.mark.parametrize("mdp_name", list(MDPS))
def test_env_implements_mdp(mdp_name: str) -> None:
    """The gymnasium env's transitions, terminations and rewards follow the MDP's arrays."""
    mdp = MDPS[mdp_name]()
    env = TabularEnv(mdp)
    rng = np.random.default_rng(3)
    n_s, n_a = mdp.n_states, mdp.n_actions
    counts = np.zeros((n_s, n_a, n_s + 1))
    reward_sum = np.zeros((n_s, n_a))
    starts = np.zeros(n_s)
    obs, _ = env.reset(seed=5)
    starts[int(np.argmax(obs))] += 1
    for _ in range(20_000):
        s = int(np.argmax(obs))
        assert obs[s] == 1.0 and obs.sum() == 1.0 and obs.dtype == np.float32
        a = int(rng.integers(n_a))
        obs, reward, terminated, truncated, _ = env.step(a)
        assert not truncated
        nxt = n_s if terminated else int(np.argmax(obs))
        if terminated:
            assert not obs.any()
        counts[s, a, nxt] += 1
        reward_sum[s, a] += reward
        if terminated:
            obs, _ = env.reset()
            starts[int(np.argmax(obs))] += 1
    visits = counts.sum(axis=2)
    outcome = np.concatenate([mdp.transitions, mdp.termination[:, :, None]], axis=2)
    seen = visits > 0
    freq = counts[seen] / visits[seen][:, None]
    se = np.sqrt(outcome[seen] * (1 - outcome[seen]) / visits[seen][:, None])
    assert np.all(np.abs(freq - outcome[seen]) <= Z * se + 1e-12)
    mean_reward = reward_sum[seen] / visits[seen]
    assert np.all(np.abs(mean_reward - mdp.rewards[seen]) <= Z * mdp.reward_noise / np.sqrt(visits[seen]))
    start_se = np.sqrt(mdp.init * (1 - mdp.init) / starts.sum())
    assert np.all(np.abs(starts / starts.sum() - mdp.init) <= Z * start_se + 1e-12)


def test_batch_rule_reference_simulation() -> None:
    """docs/maths.md §2 by reference simulation: "first N to start" is unbiased, "first N to finish" is rejected."""
    mdp = random_length_mdp()
    weight, bias = random_policy_params(mdp)
    exact = flat_gradient(mdp.exact_gradient(weight, bias, 1.0))
    rng = np.random.default_rng(11)
    start = vec_env_batch_estimates(mdp, weight, bias, 1.0, 3, 5, 20_000, "start", rng)
    finish = vec_env_batch_estimates(mdp, weight, bias, 1.0, 3, 5, 20_000, "finish", rng)
    assert_matches(start, exact, "grad J (first N to start)")
    assert_rejected(finish, exact, "the length-biased first-N-to-finish rule")


# ----------------------------------------------------------------------------------------------
# The library against the exact expectations
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    mdp: str
    gamma: float
    baseline: str
    reward_to_go: bool
    unbiased_discount: bool
    n_envs: int = N_ENVS

    @property
    def id(self) -> str:
        rtg = "rtg" if self.reward_to_go else "no_rtg"
        disc = "unbiased" if self.unbiased_discount else "surrogate"
        return f"{self.mdp}-g{self.gamma}-{self.baseline}-{rtg}-{disc}-envs{self.n_envs}"


CASES = [
    # gamma = 1: every variant is grad J.
    Case("fixed_horizon", 1.0, "none", True, False),
    Case("fixed_horizon", 1.0, "mean", False, False, n_envs=1),
    Case("random_length", 1.0, "optimal", False, True),
    Case("random_length", 1.0, "value", True, False),
    # gamma < 1, reward-to-go, lambda = gamma^t: grad J_gamma.
    Case("fixed_horizon", GAMMA, "none", True, True),
    Case("fixed_horizon", GAMMA, "value", True, True, n_envs=1),
    Case("random_length", GAMMA, "mean", True, True),
    Case("random_length", GAMMA, "optimal", True, True, n_envs=1),
    # gamma < 1, reward-to-go, lambda = 1: the discounted surrogate, not grad J_gamma.
    Case("fixed_horizon", GAMMA, "optimal", True, False),
    Case("random_length", GAMMA, "value", True, False),
    # gamma < 1, no reward-to-go, lambda = 1: R(tau) weighting is exactly grad J_gamma.
    Case("fixed_horizon", GAMMA, "mean", False, False),
    # gamma < 1, no reward-to-go, unbiased_discount=True: the library keeps lambda = 1, so grad J_gamma.
    Case("fixed_horizon", GAMMA, "none", False, True),
    # The explicit optimal baselines (docs/maths.md §5.4); "optimal" above is optimal_constant.
    Case("random_length", GAMMA, "optimal_constant", False, False),
    Case("random_length", 1.0, "optimal_time", True, False),
    Case("fixed_horizon", GAMMA, "optimal_time", False, False, n_envs=1),
    Case("random_length", GAMMA, "optimal_coordinate", True, True),
    Case("fixed_horizon", 1.0, "optimal_coordinate", False, False),
    Case("fixed_horizon", GAMMA, "optimal_coordinate", True, False),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_library_gradient_is_unbiased(case: Case) -> None:
    mdp = MDPS[case.mdp]()
    samples = library_gradient_samples(
        mdp,
        gamma=case.gamma,
        n_envs=case.n_envs,
        baseline=case.baseline,
        reward_to_go=case.reward_to_go,
        unbiased_discount=case.unbiased_discount,
    )
    expected, gradient = exact_targets(mdp, case.gamma, case.reward_to_go, case.unbiased_discount)
    assert_matches(samples, expected, "the exact expectation of the docs/maths.md §4 estimator")
    kappa = library_kappa(case.gamma, case.reward_to_go, case.unbiased_discount)
    if kappa == case.gamma:
        np.testing.assert_allclose(expected, gradient, atol=1e-12)
    else:
        # The library's expectation is not grad J_gamma, and the harness sees the difference.
        assert_rejected(samples, gradient, f"grad J_gamma for {case.id}")


def test_library_gradient_with_vec_env() -> None:
    """
    3 envs stepping together on the random-length MDP, N = 5 (so slots are re-assigned mid-collection).

    The library must match grad J; the reference simulation's first-to-finish bias, projected on
    its own direction, must be many library standard errors large (i.e. a length-biased batch rule
    would have failed this test).
    """
    mdp = random_length_mdp()
    weight, bias = random_policy_params(mdp)
    n_envs, n_episodes = 3, 5
    samples = library_gradient_samples(
        mdp, gamma=1.0, n_episodes=n_episodes, n_batches=600, n_envs=n_envs, baseline="none"
    )
    exact = flat_gradient(mdp.exact_gradient(weight, bias, 1.0))
    assert_matches(samples, exact, "grad J with 3 envs")

    finish = vec_env_batch_estimates(
        mdp, weight, bias, 1.0, n_envs, n_episodes, 20_000, "finish", np.random.default_rng(7)
    )
    bias_direction = finish.mean(axis=0) - exact
    unit = bias_direction / np.linalg.norm(bias_direction)
    projected = mean_check((samples @ unit)[:, None], np.array([exact @ unit]))
    assert projected.max_abs_t < Z, projected.describe()
    # A library using "first to finish" would sit this many SEs away: rejected with probability >= 97.7%.
    assert np.linalg.norm(bias_direction) > (Z + 2) * projected.se[0], (
        f"first-to-finish bias {np.linalg.norm(bias_direction):.4f} vs library SE {projected.se[0]:.4f}"
    )


# ----------------------------------------------------------------------------------------------
# Teeth: the harness rejects wrong estimators
# ----------------------------------------------------------------------------------------------
def _patch(monkeypatch: pytest.MonkeyPatch, module: str, name: str, make: Callable[[Any], Any]) -> None:
    import importlib

    mod = importlib.import_module(module)
    monkeypatch.setattr(mod, name, make(getattr(mod, name)))


ESTIMATOR_MODULE = "sb3_reinforce.common.estimator"
BASELINES_MODULE = "sb3_reinforce.common.baselines"


def test_teeth_sign_flip(monkeypatch: pytest.MonkeyPatch) -> None:
    def make(orig: Any) -> Any:
        return lambda log_prob, advantages, weights, n: -orig(log_prob, advantages, weights, n)

    _patch(monkeypatch, ESTIMATOR_MODULE, "surrogate_loss", make)
    mdp = fixed_horizon_mdp()
    samples = library_gradient_samples(mdp, gamma=GAMMA, baseline="none", unbiased_discount=True)
    expected, _ = exact_targets(mdp, GAMMA, True, True)
    assert_rejected(samples, expected, "the sign-flipped estimator")


def test_teeth_mean_over_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dividing by the number of steps M instead of the number of episodes N."""

    def make(orig: Any) -> Any:
        return lambda log_prob, advantages, weights, n: orig(log_prob, advantages, weights, log_prob.shape[0])

    _patch(monkeypatch, ESTIMATOR_MODULE, "surrogate_loss", make)
    mdp = random_length_mdp()
    samples = library_gradient_samples(mdp, gamma=GAMMA, baseline="mean", unbiased_discount=True)
    expected, _ = exact_targets(mdp, GAMMA, True, True)
    assert_rejected(samples, expected, "the mean-over-steps estimator")


def test_teeth_mean_over_steps_per_episode(monkeypatch: pytest.MonkeyPatch) -> None:
    """``(1/N) sum_i (1/T_i) sum_t``: each episode's sum divided by its own length (changes the direction)."""

    def make(orig: Any) -> Any:
        def per_episode_mean(lengths: np.ndarray, *args: Any) -> np.ndarray:
            lengths = np.asarray(lengths)
            return orig(lengths, *args) / np.repeat(lengths, lengths)

        return per_episode_mean

    _patch(monkeypatch, ESTIMATOR_MODULE, "discount_weights", make)
    mdp = random_length_mdp()
    samples = library_gradient_samples(mdp, gamma=1.0, baseline="mean")
    expected, _ = exact_targets(mdp, 1.0, True, False)
    assert_rejected(samples, expected, "the per-episode mean-over-steps estimator")


def test_teeth_gamma_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    """Returns computed with gamma = 1 although gamma = 0.3 (no reward-to-go: E = grad J_1, not J_0.3)."""

    def make(orig: Any) -> Any:
        return lambda rewards, lengths, gamma, reward_to_go: orig(rewards, lengths, 1.0, reward_to_go)

    _patch(monkeypatch, ESTIMATOR_MODULE, "discounted_returns", make)
    mdp = fixed_horizon_mdp()
    samples = library_gradient_samples(mdp, gamma=0.3, baseline="mean", reward_to_go=False)
    expected, _ = exact_targets(mdp, 0.3, False, False)
    assert_rejected(samples, expected, "the gamma-ignoring estimator")


def test_teeth_baseline_uses_own_episode(monkeypatch: pytest.MonkeyPatch) -> None:
    """A "mean" baseline that includes the episode itself (with N = 2 it halves the gradient)."""

    def make(orig: Any) -> Any:
        def with_self(returns: np.ndarray, lengths: np.ndarray, reward_to_go: bool) -> np.ndarray:
            n = len(lengths)
            return orig(returns, lengths, reward_to_go) * (n - 1) / n + returns / n

        return with_self

    _patch(monkeypatch, BASELINES_MODULE, "leave_one_out_mean", make)
    mdp = fixed_horizon_mdp()
    samples = library_gradient_samples(mdp, gamma=1.0, n_episodes=2, n_batches=400, baseline="mean")
    expected, _ = exact_targets(mdp, 1.0, True, False)
    assert_rejected(samples, expected, "the self-including mean baseline")


@pytest.mark.parametrize("baseline", ["optimal_constant", "optimal_time", "optimal_coordinate"])
def test_teeth_optimal_baseline_uses_own_episode(monkeypatch: pytest.MonkeyPatch, baseline: str) -> None:
    """
    An optimal baseline whose ratio also sums episode ``i`` itself (not leave-one-out) is rejected.

    With N = 2 the self-including ratio puts episode ``i``'s own weighted return into its baseline:
    ``b_i = (w_i G_i + w_j G_j) / (w_i + w_j)``, which correlates with episode ``i``'s actions.
    """

    def make(orig: Any) -> Any:
        def with_self(numerator: np.ndarray, denominator: np.ndarray, fallback: np.ndarray) -> np.ndarray:
            total, weight = numerator.sum(axis=0), denominator.sum(axis=0)
            own_included = np.where(weight > 0, total / np.where(weight > 0, weight, 1.0), fallback)
            return np.broadcast_to(own_included, np.broadcast_shapes(numerator.shape, np.shape(fallback))).copy()

        return with_self

    _patch(monkeypatch, BASELINES_MODULE, "leave_one_out_ratio", make)
    mdp = fixed_horizon_mdp()
    samples = library_gradient_samples(mdp, gamma=1.0, n_episodes=2, n_batches=600, baseline=baseline)
    expected, _ = exact_targets(mdp, 1.0, True, False)
    assert_rejected(samples, expected, f"the self-including {baseline} baseline")


def test_optimal_baseline_with_two_episodes_is_unbiased() -> None:
    """The leave-one-out version at the same N = 2 and budget as the teeth above passes."""
    mdp = fixed_horizon_mdp()
    samples = library_gradient_samples(mdp, gamma=1.0, n_episodes=2, n_batches=400, baseline="optimal_coordinate")
    expected, _ = exact_targets(mdp, 1.0, True, False)
    assert_matches(samples, expected, "the exact expectation with optimal_coordinate and N = 2")


# ----------------------------------------------------------------------------------------------
# The fitted value baseline (vf_epochs): fitted after the update, so a batch never sees its own fit
# ----------------------------------------------------------------------------------------------
class RestoreActor(BaseCallback):
    """Before each collection, put the actor back to ``(weight, bias)``; the value head keeps its fits."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray) -> None:
        super().__init__()
        self.weight, self.bias = th.as_tensor(weight), th.as_tensor(bias)

    def _on_rollout_start(self) -> None:
        action_net = cast(th.nn.Linear, self.model.policy.action_net)
        with th.no_grad():
            action_net.weight.copy_(self.weight)
            action_net.bias.copy_(self.bias)

    def _on_step(self) -> bool:
        return True


def fitted_value_gradient_samples(mdp: TabularMDP, n_batches: int, **algo_kwargs: Any) -> np.ndarray:
    """
    ``K`` draws of the update of a second cycle whose value baseline was fitted on the first cycle's batch.

    Each draw: one cycle (update, then ``vf_epochs`` of value fit on that batch), then the actor is put
    back to the fixed parameters and a second cycle samples, updates and fits again; the draw is the
    second update.  Its baseline ``V`` comes from the first batch only, so its expectation is the
    exact one whatever ``V`` is.
    """
    weight, bias = random_policy_params(mdp)
    samples = np.empty((n_batches, weight.size + bias.size))
    for k in range(n_batches):
        model = REINFORCE(
            "MlpPolicy",
            make_env(mdp, 1),
            learning_rate=LEARNING_RATE,
            gamma=GAMMA,
            unbiased_discount=True,
            baseline="value",
            policy_kwargs=POLICY_KWARGS,
            seed=SEED + k,
            device="cpu",
            **algo_kwargs,
        )
        restore = RestoreActor(weight, bias)
        model.learn(total_timesteps=1, callback=restore)
        action_net = cast(th.nn.Linear, model.policy.action_net)
        model.learn(total_timesteps=1, callback=restore, reset_num_timesteps=False)
        delta = th.cat([(action_net.weight - restore.weight).flatten(), action_net.bias - restore.bias])
        samples[k] = delta.detach().double().numpy() / LEARNING_RATE
    return samples


FIT = dict(n_episodes=2, vf_epochs=30, vf_learning_rate=0.5)


def test_fitted_value_baseline_is_unbiased() -> None:
    """With N = 2 a baseline fitted on the batch's own returns would remove about half of the gradient."""
    mdp = fixed_horizon_mdp()
    samples = fitted_value_gradient_samples(mdp, n_batches=200, **FIT)
    expected, _ = exact_targets(mdp, GAMMA, True, True)
    assert_matches(samples, expected, "the exact gradient, with a value baseline fitted on earlier batches")


def test_teeth_value_fitted_on_its_own_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same harness rejects a baseline fitted on the batch it is applied to (fit, then update)."""
    from sb3_reinforce.common.returns import discounted_returns

    update = REINFORCE.train

    def fit_then_update(self: REINFORCE) -> None:
        batch = self.rollout_buffer
        assert batch is not None
        self._fit_value(batch.observations, discounted_returns(batch.rewards, batch.lengths, self.gamma, True))
        update(self)

    monkeypatch.setattr(REINFORCE, "train", fit_then_update)
    mdp = fixed_horizon_mdp()
    samples = fitted_value_gradient_samples(mdp, n_batches=150, **FIT)
    expected, _ = exact_targets(mdp, GAMMA, True, True)
    assert_rejected(samples, expected, "the baseline fitted on its own batch")
