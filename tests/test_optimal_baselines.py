"""The optimal baselines of docs/maths.md §5.4, piece by piece, against slow reference loops.

- ``optimal_constant_baseline``, ``optimal_time_baseline`` and ``optimal_coordinate_baseline``
  equal the ratio ``sum_{j != i} w G / sum_{j != i} w`` summed by loops, with the fallback to the
  leave-one-out mean, on random ragged batches with some zero weights;
- episode ``i``'s baseline does not move when episode ``i``'s own scores or returns do;
- ``per_step_scores`` equals one backward pass per step, for a hand-written policy with unused and
  frozen parameters and for SB3's policies with ``Discrete`` and ``Box`` actions, and leaves the
  graph and ``.grad`` as they were;
- ``coordinate_baseline_term`` has the gradient ``(1/N) sum_i sum_t w_t g_t ⊙ b_t``;
- the names, the ``"optimal"`` alias and the errors.

That the whole update is the one docs/maths.md §4–5 describe is checked in ``tests/test_replay.py``;
that it is unbiased, in ``tests/test_exact_gradient.py``.
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3.common.policies import ActorCriticPolicy

from sb3_reinforce import REINFORCE, OffPolicyPG
from sb3_reinforce.common.baselines import (
    BASELINES,
    OPTIMAL_BASELINES,
    OPTIMAL_DEFAULT,
    compute_baseline,
    coordinate_baseline_term,
    leave_one_out_ratio,
    optimal_constant_baseline,
    optimal_coordinate_baseline,
    optimal_time_baseline,
    per_step_scores,
)
from tests.test_estimators import ref_leave_one_out, split

SEEDS = range(6)


# ----------------------------------------------------------------------------- reference loops


def random_case(seed: int, n_params: int = 3):
    """A ragged batch (2 to 6 episodes) with scores, some of them zero, returns and discounts."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 7))
    lengths = rng.integers(1, 9, size=n)
    m = int(lengths.sum())
    scores = rng.normal(size=(m, n_params)) * 10.0 ** rng.uniform(-2, 2, size=(m, 1))
    scores[rng.random(size=(m, n_params)) < 0.3] = 0.0  # coordinates a step does not touch
    returns = rng.normal(size=m) * 20.0
    discount = 0.9 ** np.concatenate([np.arange(length) for length in lengths])
    return lengths, scores, returns, discount


def ref_optimal(kind, scores, discount, returns, lengths, reward_to_go):
    """The three optimal baselines by loops over episodes, steps and coordinates (float64, fsum)."""
    episodes = [list(range(start, start + int(length))) for start, length in zip(np.cumsum(lengths) - lengths, lengths)]
    mean = split(ref_leave_one_out(returns, lengths, reward_to_go), lengths)
    n, n_params = len(lengths), scores.shape[1]

    def ratio(pairs, fallback):
        den = math.fsum(w for w, _ in pairs)
        return math.fsum(w * g for w, g in pairs) / den if den > 0 else fallback

    out = []
    for i in range(n):
        others = [j for j in range(n) if j != i]
        for t in range(lengths[i]):
            if kind == "constant":
                pairs = [
                    (discount[k] ** 2 * float(scores[k] @ scores[k]), returns[k]) for j in others for k in episodes[j]
                ]
                out.append(ratio(pairs, mean[i][t]))
            elif kind == "time":
                pairs = [
                    (
                        discount[episodes[j][t]] ** 2 * float(scores[episodes[j][t]] @ scores[episodes[j][t]]),
                        returns[episodes[j][t]],
                    )
                    for j in others
                    if t < lengths[j]
                ]
                out.append(ratio(pairs, mean[i][t]))
            else:
                row = []
                for c in range(n_params):
                    pairs = [
                        ((discount[episodes[j][t]] * scores[episodes[j][t], c]) ** 2, returns[episodes[j][t]])
                        for j in others
                        if t < lengths[j]
                    ]
                    row.append(ratio(pairs, mean[i][t]))
                out.append(row)
    return np.array(out)


def library(kind, scores, discount, returns, lengths, reward_to_go):
    weights = discount**2 * (scores**2).sum(axis=1)
    if kind == "constant":
        return optimal_constant_baseline(weights, returns, lengths, reward_to_go)
    if kind == "time":
        return optimal_time_baseline(weights, returns, lengths, reward_to_go)
    return optimal_coordinate_baseline(scores, discount, returns, lengths, reward_to_go)


KINDS = ("constant", "time", "coordinate")


# ----------------------------------------------------------------------------- the formulas


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("reward_to_go", [True, False])
def test_optimal_baselines_match_loops(seed, kind, reward_to_go):
    lengths, scores, returns, discount = random_case(seed)
    if not reward_to_go:
        returns = np.concatenate([np.full(length, ep[0]) for ep, length in zip(split(returns, lengths), lengths)])
    expected = ref_optimal(kind, scores, discount, returns, lengths, reward_to_go)
    actual = library(kind, scores, discount, returns, lengths, reward_to_go)
    assert actual.dtype == np.float64 and actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=1e-9, atol=1e-9)


def test_optimal_baselines_by_hand():
    # Episode 0: steps with returns 4, 2 and score norms^2 1, 3; episode 1: one step, return 10, norm^2 2.
    lengths = np.array([2, 1])
    scores = np.array([[1.0, 0.0], [1.0, np.sqrt(2.0)], [0.0, np.sqrt(2.0)]])
    returns = np.array([4.0, 2.0, 10.0])
    ones = np.ones(3)
    # constant: b_0 = 10 (episode 1 only), b_1 = (1*4 + 3*2) / 4 = 2.5
    np.testing.assert_allclose(library("constant", scores, ones, returns, lengths, True), [10.0, 10.0, 2.5])
    # time: episode 0 at t = 0 sees episode 1's step 0; at t = 1 nobody: the mean baseline (0 with
    # reward-to-go); episode 1 at t = 0 sees episode 0's step 0 only
    np.testing.assert_allclose(library("time", scores, ones, returns, lengths, True), [10.0, 0.0, 4.0])
    # coordinate: episode 0, t = 0: coordinate 0 has no weight in episode 1, so the mean (10); coordinate 1 is 10
    np.testing.assert_allclose(
        library("coordinate", scores, ones, returns, lengths, True), [[10.0, 10.0], [0.0, 0.0], [4.0, 4.0]]
    )
    # discounting the steps' weights changes the constant: b_1 = (4 + 0.25 * 3 * 2) / (1 + 0.25 * 3)
    discount = np.array([1.0, 0.5, 1.0])
    assert library("constant", scores, discount, returns, lengths, True)[2] == pytest.approx(5.5 / 1.75)


def test_leave_one_out_ratio_by_hand():
    numerator = np.array([[2.0, 1.0], [6.0, 0.0], [0.0, 5.0]])
    denominator = np.array([[1.0, 1.0], [2.0, 0.0], [0.0, 0.0]])
    fallback = np.array([[-1.0, -2.0]])
    # column 1: row 0 sees no weight (fallback), row 1 sees (1 + 5) / (1 + 0), row 2 sees (1 + 0) / 1
    expected = [[6.0 / 2.0, -2.0], [2.0, 6.0], [8.0 / 3.0, 1.0]]
    np.testing.assert_allclose(leave_one_out_ratio(numerator, denominator, fallback), expected)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", [0, 1])
def test_optimal_baselines_ignore_own_episode(kind, seed):
    """docs/maths.md §5.2: episode i's baseline does not depend on episode i's scores or returns, however large."""
    lengths, scores, returns, discount = random_case(seed)
    before = library(kind, scores, discount, returns, lengths, True)
    own = slice(0, int(lengths[0]))
    changed_scores, changed_returns = scores.copy(), returns.copy()
    changed_scores[own] = 1e9
    changed_returns[own] = -1e15
    after = library(kind, changed_scores, discount, changed_returns, lengths, True)
    np.testing.assert_allclose(after[own], before[own], rtol=1e-12)
    assert not np.allclose(after[int(lengths[0]) :], before[int(lengths[0]) :])  # the others do see it


# ----------------------------------------------------------------------------- per-step scores


class TinyPolicy(th.nn.Module):
    """A float64 softmax policy with one parameter that log_prob never uses and one frozen parameter."""

    def __init__(self):
        super().__init__()
        gen = th.Generator().manual_seed(0)
        self.layer = th.nn.Linear(3, 4, dtype=th.float64)
        self.head = th.nn.Linear(4, 3, dtype=th.float64)
        self.unused = th.nn.Parameter(th.ones(2, dtype=th.float64))
        self.frozen = th.nn.Parameter(th.randn(4, generator=gen, dtype=th.float64), requires_grad=False)
        with th.no_grad():
            for p in (*self.layer.parameters(), *self.head.parameters()):
                p.copy_(th.randn(p.shape, generator=gen, dtype=th.float64))

    def log_prob(self, obs, actions):
        logits = self.head(th.tanh(self.layer(obs)) + self.frozen)
        return th.distributions.Categorical(logits=logits).log_prob(actions)


def one_backward_per_step(log_prob_of_step, n_steps, params):
    rows = []
    for t in range(n_steps):
        grads = th.autograd.grad(log_prob_of_step(t), params, allow_unused=True)
        rows.append(th.cat([g.reshape(-1).double() for g in grads if g is not None]))
    return th.stack(rows)


@pytest.mark.parametrize("chunk_size", [1, 4, 256])
def test_per_step_scores_match_one_backward_per_step(chunk_size):
    rng = np.random.default_rng(0)
    obs = th.as_tensor(rng.normal(size=(11, 3)))
    actions = th.as_tensor(rng.integers(0, 3, size=11))
    policy = TinyPolicy()
    log_prob = policy.log_prob(obs, actions)
    scores, used = per_step_scores(log_prob, list(policy.parameters()), chunk_size=chunk_size)
    # unused and frozen parameters are dropped; the graph is kept and nothing accumulates in .grad
    assert [id(p) for p in used] == [id(p) for p in (*policy.layer.parameters(), *policy.head.parameters())]
    assert all(p.grad is None for p in policy.parameters())
    log_prob.sum().backward()
    expected = one_backward_per_step(lambda t: policy.log_prob(obs[t : t + 1], actions[t : t + 1]).sum(), 11, used)
    assert scores.dtype == th.float64 and scores.shape == (11, sum(p.numel() for p in used))
    np.testing.assert_allclose(scores.numpy(), expected.numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("action_space", [gym.spaces.Discrete(3), gym.spaces.Box(-1.0, 1.0, (2,))])
def test_per_step_scores_with_sb3_policy(action_space):
    policy = ActorCriticPolicy(gym.spaces.Box(-1.0, 1.0, (4,)), action_space, lambda _: 1e-3, net_arch=[8])
    rng = np.random.default_rng(3)
    obs = th.as_tensor(rng.uniform(-1, 1, size=(9, 4)), dtype=th.float32)
    actions = th.as_tensor(np.stack([action_space.sample() for _ in range(9)]))
    _, log_prob, _ = policy.evaluate_actions(obs, actions)
    scores, used = per_step_scores(log_prob, list(policy.parameters()), chunk_size=4)
    # the value head is not in log pi's graph; with Box actions log_std is
    assert not any(p is policy.value_net.weight for p in used)
    assert any(p is getattr(policy, "log_std", None) for p in used) == isinstance(action_space, gym.spaces.Box)

    def step(t):
        return policy.evaluate_actions(obs[t : t + 1], actions[t : t + 1])[1].sum()

    expected = one_backward_per_step(step, 9, used)
    np.testing.assert_allclose(scores.numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)


def test_coordinate_baseline_term_gradient():
    """The term's gradient is ``(1/N) sum_t w_t g_t ⊙ b_t``, laid out over the parameters in order."""
    first = th.nn.Parameter(th.zeros(2, 2))
    second = th.nn.Parameter(th.ones(3))
    rng = np.random.default_rng(1)
    scores = th.as_tensor(rng.normal(size=(5, 7)))
    baselines = rng.normal(size=(5, 7))
    step_weights = rng.uniform(size=5)
    term = coordinate_baseline_term(scores, [first, second], baselines, step_weights, n_episodes=2)
    term.backward()
    expected = (step_weights[:, None] * scores.numpy() * baselines).sum(axis=0) / 2
    assert first.grad is not None and second.grad is not None
    np.testing.assert_allclose(first.grad.numpy().ravel(), expected[:4], rtol=1e-6)
    np.testing.assert_allclose(second.grad.numpy(), expected[4:], rtol=1e-6)


# ----------------------------------------------------------------------------- names and errors


def test_names_and_alias():
    assert set(OPTIMAL_BASELINES) <= set(BASELINES)
    assert OPTIMAL_DEFAULT in OPTIMAL_BASELINES and OPTIMAL_DEFAULT != "optimal"
    lengths, scores, returns, discount = random_case(4)
    values = th.zeros(len(returns))
    score_tensor = th.as_tensor(scores)
    alias = compute_baseline("optimal", returns, lengths, True, values, discount, score_tensor)
    named = compute_baseline(OPTIMAL_DEFAULT, returns, lengths, True, values, discount, score_tensor)
    np.testing.assert_array_equal(alias, named)
    coordinate = compute_baseline("optimal_coordinate", returns, lengths, True, values, discount, score_tensor)
    assert coordinate.shape == scores.shape


def test_compute_baseline_errors():
    lengths, scores, returns, discount = random_case(0)
    values = th.zeros(len(returns))
    with pytest.raises(ValueError, match="scores"):
        compute_baseline("optimal_time", returns, lengths, True, values, discount)
    with pytest.raises(ValueError, match="at least 2 episodes"):
        one = np.array([len(returns)])
        compute_baseline("optimal_time", returns, one, True, values, discount, th.as_tensor(scores))
    with pytest.raises(ValueError, match="optimal_coordinate"):
        compute_baseline("optimal_spatial", returns, lengths, True, values, discount, th.as_tensor(scores))


@pytest.mark.parametrize("baseline", ["optimal_constant", "optimal_time", "optimal_coordinate"])
def test_constructor_validation(baseline):
    with pytest.raises(ValueError, match=rf"n_episodes=1 .*baseline='{baseline}'"):
        REINFORCE("MlpPolicy", "CartPole-v1", n_episodes=1, baseline=baseline)
    with pytest.raises(ValueError, match=rf"baseline='{baseline}' is not supported"):
        OffPolicyPG("MlpPolicy", "CartPole-v1", baseline=baseline)
    REINFORCE("MlpPolicy", "CartPole-v1", n_episodes=2, baseline=baseline)
    with pytest.raises(ValueError, match="'optimal_time', 'optimal_coordinate'"):
        REINFORCE("MlpPolicy", "CartPole-v1", baseline="optimal_per_step")


# ----------------------------------------------------------------------------- the benchmark's simulation


@pytest.mark.parametrize("reward_to_go", [True, False])
def test_forms_simulation_matches_the_library(reward_to_go):
    """The numpy simulation behind docs/maths.md §5.4's figures computes the library's diagonal baselines."""
    from benchmarks.gradient_quality import form_updates, returns_of, simulate_scores
    from benchmarks.tabular_mdp import random_length_mdp, random_policy_params
    from sb3_reinforce.common.episodes import episode_index, time_index

    mdp = random_length_mdp()
    scores, rewards = simulate_scores(mdp, random_policy_params(mdp), 6, np.random.default_rng(0), max_steps=30)
    alive = np.abs(scores).sum(axis=2) > 0
    lengths = alive.sum(axis=1)
    flat_scores = scores[episode_index(lengths), time_index(lengths)]
    returns = returns_of(rewards, reward_to_go)[episode_index(lengths), time_index(lengths)]
    ones = np.ones(len(returns))
    simulated = form_updates(scores, rewards, reward_to_go, None, exact=False)
    for kind in KINDS:
        baseline = library(kind, flat_scores, ones, returns, lengths, reward_to_go)
        if baseline.ndim == 1:
            baseline = baseline[:, None]
        per_step = flat_scores * (returns[:, None] - baseline)
        update = np.add.reduceat(per_step, np.cumsum(lengths) - lengths, axis=0).mean(axis=0)
        np.testing.assert_allclose(simulated[kind], update, rtol=1e-9, atol=1e-12, err_msg=kind)


@pytest.mark.parametrize("masked", [False, True], ids=["plain", "masked"])
@pytest.mark.parametrize("chunk_size", [None, 5])
def test_per_step_scores_chunk_by_chunk_equal_the_whole_graph(masked, chunk_size):
    """The model's evaluation recomputes chunks of steps on their own: the same scores, linear time."""
    from benchmarks.tabular_mdp import MaskedTabularEnv, TabularEnv, masked_mdp
    from sb3_reinforce import REINFORCE

    env = MaskedTabularEnv(masked_mdp()) if masked else TabularEnv(masked_mdp())
    model = REINFORCE("MlpPolicy", env, n_episodes=12, seed=0, policy_kwargs=dict(net_arch=[8]))
    model.learn(1)
    batch = model.rollout_buffer
    assert (batch.action_masks is not None) == masked and batch.n_steps > 12
    evaluation = model._evaluate_episodes(batch)
    assert evaluation.step_log_prob is not None
    params = list(model.policy.parameters())
    whole, used = per_step_scores(evaluation.log_prob, params, chunk_size=chunk_size)
    chunked, used_chunked = per_step_scores(
        evaluation.log_prob, params, chunk_size=chunk_size, step_log_prob=evaluation.step_log_prob
    )
    assert [id(p) for p in used] == [id(p) for p in used_chunked]
    np.testing.assert_allclose(chunked.numpy(), whole.numpy(), rtol=1e-6, atol=1e-7)
