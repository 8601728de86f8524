"""Unit tests of the vectorised estimator pieces against slow, obviously-correct reference loops.

Every public function of ``sb3_reinforce.common.{episodes,returns,baselines,surrogate}`` is
compared with a Python loop written here from the formulas of docs/maths.md §3–5, on random ragged
batches from a seeded generator and on edge cases (one episode, single-step episodes, long
episodes, every ``gamma`` of interest).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch as th

from sb3_reinforce.common.baselines import BASELINES, leave_one_out_mean
from sb3_reinforce.common.episodes import (
    EpisodeBatch,
    episode_index,
    episode_offsets,
    pad_episodes,
    take_steps,
    time_index,
    unpad_episodes,
)
from sb3_reinforce.common.returns import (
    discount_weights,
    discounted_returns,
    discounted_reward_to_go,
    episode_returns,
)
from sb3_reinforce.common.surrogate import standardize, surrogate_loss

GAMMAS = (0.0, 0.5, 0.99, 1.0)
SEEDS = range(6)


# ----------------------------------------------------------------------------- reference loops


def split(values, lengths):
    """The flat layout cut into one list per episode."""
    out, start = [], 0
    for length in lengths:
        out.append([values[k] for k in range(start, start + int(length))])
        start += int(length)
    return out


def ref_reward_to_go(rewards, lengths, gamma):
    """G_t = sum_{t' >= t} gamma^(t'-t) r_t', summed term by term for every t."""
    out = []
    for episode in split(rewards, lengths):
        for t in range(len(episode)):
            out.append(math.fsum(gamma ** (k - t) * episode[k] for k in range(t, len(episode))))
    return np.array(out)


def ref_episode_returns(rewards, lengths, gamma):
    return np.array([math.fsum(gamma**t * r for t, r in enumerate(ep)) for ep in split(rewards, lengths)])


def ref_discounted_returns(rewards, lengths, gamma, to_go):
    if to_go:
        return ref_reward_to_go(rewards, lengths, gamma)
    out = []
    for length, ret in zip(lengths, ref_episode_returns(rewards, lengths, gamma)):
        out.extend([ret] * int(length))
    return np.array(out)


def ref_leave_one_out(returns, lengths, to_go):
    episodes = split(returns, lengths)
    n = len(episodes)

    def value(j, t):
        if t < len(episodes[j]):
            return episodes[j][t]
        return 0.0 if to_go else episodes[j][0]

    out = []
    for i in range(n):
        for t in range(len(episodes[i])):
            out.append(math.fsum(value(j, t) for j in range(n) if j != i) / (n - 1))
    return np.array(out)


def random_batch(seed, max_episodes=6, max_length=20):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, max_episodes + 1))
    lengths = rng.integers(1, max_length + 1, size=n)
    rewards = rng.normal(size=int(lengths.sum())) * rng.uniform(0.1, 10.0)
    return lengths, rewards


def assert_close(actual, expected, rtol=1e-10, atol=1e-10):
    actual = np.asarray(actual)
    assert actual.shape == np.shape(expected)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


# ----------------------------------------------------------------------------- episodes.py


@pytest.mark.parametrize("seed", SEEDS)
def test_layout_helpers_match_loops(seed):
    lengths, _ = random_batch(seed)
    offsets, ep_index, t_index = [], [], []
    start = 0
    for i, length in enumerate(lengths):
        offsets.append(start)
        for t in range(length):
            ep_index.append(i)
            t_index.append(t)
        start += length
    np.testing.assert_array_equal(episode_offsets(lengths), offsets)
    np.testing.assert_array_equal(episode_index(lengths), ep_index)
    np.testing.assert_array_equal(time_index(lengths), t_index)
    # lists are accepted as well as arrays
    np.testing.assert_array_equal(episode_offsets(list(lengths)), offsets)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("per_episode_fill", [False, True])
def test_pad_unpad_match_loops(seed, per_episode_fill):
    lengths, values = random_batch(seed)
    rng = np.random.default_rng(100 + seed)
    fill = rng.normal(size=len(lengths)) if per_episode_fill else -7.5
    padded = pad_episodes(values, lengths, fill)
    expected = np.empty((len(lengths), max(lengths)))
    for i, episode in enumerate(split(values, lengths)):
        for t in range(max(lengths)):
            expected[i, t] = episode[t] if t < len(episode) else (fill[i] if per_episode_fill else fill)
    np.testing.assert_array_equal(padded, expected)
    np.testing.assert_array_equal(unpad_episodes(padded, lengths), values)


def test_pad_default_fill_is_zero_and_single_step_episodes():
    lengths = np.array([1, 1, 1])
    values = np.array([3.0, 4.0, 5.0])
    np.testing.assert_array_equal(pad_episodes(values, lengths), [[3.0], [4.0], [5.0]])
    np.testing.assert_array_equal(pad_episodes(np.array([1.0, 2.0, 3.0]), np.array([1, 2])), [[1, 0], [2, 3]])


def test_take_steps_array_and_dict():
    obs = np.arange(24).reshape(4, 3, 2)
    index = (np.array([0, 3, 1]), np.array([2, 0, 1]))
    np.testing.assert_array_equal(take_steps(obs, index), np.stack([obs[0, 2], obs[3, 0], obs[1, 1]]))
    dict_obs = {"a": obs, "b": obs[..., 0] * 10}
    taken = take_steps(dict_obs, np.array([2, 0]))
    assert set(taken) == {"a", "b"}
    np.testing.assert_array_equal(taken["a"], obs[[2, 0]])
    np.testing.assert_array_equal(taken["b"], obs[[2, 0], :, 0] * 10)


def test_episode_batch_properties():
    lengths = np.array([3, 1, 2])
    batch = EpisodeBatch(
        observations=np.zeros((6, 2)),
        actions=np.zeros(6),
        rewards=np.arange(6, dtype=np.float64),
        lengths=lengths,
        truncated=np.array([False, True, False]),
        terminal_observations=np.zeros((3, 2)),
        log_probs=np.zeros(6),
    )
    assert batch.n_episodes == 3
    assert batch.n_steps == 6
    np.testing.assert_array_equal(batch.episode_index, [0, 0, 0, 1, 2, 2])
    np.testing.assert_array_equal(batch.time_index, [0, 1, 2, 0, 0, 1])
    np.testing.assert_array_equal(batch.last_step_index, [2, 3, 5])


# ----------------------------------------------------------------------------- returns.py


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("gamma", GAMMAS)
def test_reward_to_go_matches_loop(seed, gamma):
    lengths, rewards = random_batch(seed)
    assert_close(discounted_reward_to_go(rewards, lengths, gamma), ref_reward_to_go(rewards, lengths, gamma))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("gamma", GAMMAS)
def test_episode_returns_match_loop(seed, gamma):
    lengths, rewards = random_batch(seed)
    assert_close(episode_returns(rewards, lengths, gamma), ref_episode_returns(rewards, lengths, gamma))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("to_go", [True, False])
def test_discounted_returns_match_loop(seed, gamma, to_go):
    lengths, rewards = random_batch(seed)
    expected = ref_discounted_returns(rewards, lengths, gamma, to_go)
    assert_close(discounted_returns(rewards, lengths, gamma, to_go), expected)


@pytest.mark.parametrize("gamma", GAMMAS)
def test_returns_single_step_episodes(gamma):
    lengths = np.ones(5, dtype=np.int64)
    rewards = np.array([1.0, -2.0, 3.5, 0.0, 7.0])
    # one step: every estimate is the step's own reward, whatever gamma is
    for to_go in (True, False):
        assert_close(discounted_returns(rewards, lengths, gamma, to_go), rewards)
    assert_close(discounted_reward_to_go(rewards, lengths, gamma), rewards)
    assert_close(episode_returns(rewards, lengths, gamma), rewards)


@pytest.mark.parametrize("gamma", GAMMAS)
def test_returns_one_episode(gamma):
    rewards = np.array([1.0, 2.0, 3.0, 4.0])
    lengths = np.array([4])
    assert_close(discounted_reward_to_go(rewards, lengths, gamma), ref_reward_to_go(rewards, lengths, gamma))
    expected_return = 1 + 2 * gamma + 3 * gamma**2 + 4 * gamma**3
    assert_close(episode_returns(rewards, lengths, gamma), [expected_return])
    assert_close(discounted_returns(rewards, lengths, gamma, False), [expected_return] * 4)


def test_returns_do_not_leak_between_episodes():
    # a huge reward in episode 1 must not reach episode 0's returns (and vice versa)
    lengths = np.array([3, 2])
    rewards = np.array([1.0, 1.0, 1.0, 1e12, 0.0])
    np.testing.assert_array_equal(discounted_reward_to_go(rewards, lengths, 1.0), [3.0, 2.0, 1.0, 1e12, 0.0])
    np.testing.assert_array_equal(episode_returns(rewards, lengths, 1.0), [3.0, 1e12])


def direct_reward_to_go(rewards, gamma):
    """Reward-to-go of one long episode by direct sums (no recursion)."""
    powers = gamma ** np.arange(len(rewards), dtype=np.float64)
    return np.array([np.dot(powers[: len(rewards) - t], rewards[t:]) for t in range(len(rewards))])


@pytest.mark.parametrize("gamma", [0.9, 0.99, 1.0])
def test_long_episodes_are_numerically_stable(gamma):
    rng = np.random.default_rng(7)
    lengths = np.array([5000, 3, 4000])
    rewards = rng.normal(loc=1.0, size=int(lengths.sum()))
    out = discounted_reward_to_go(rewards, lengths, gamma)
    expected = np.concatenate([direct_reward_to_go(ep, gamma) for ep in np.split(rewards, np.cumsum(lengths)[:-1])])
    assert np.all(np.isfinite(out))
    scale = np.abs(expected).max()
    np.testing.assert_allclose(out, expected, rtol=1e-9, atol=1e-9 * scale)
    starts = episode_offsets(lengths)
    np.testing.assert_allclose(episode_returns(rewards, lengths, gamma), expected[starts], rtol=1e-9)
    if gamma == 0.9:
        # with gamma = 0.9 the reward-to-go stays near 1 / (1 - gamma) = 10 all along
        assert np.all(np.abs(out[:4000] - 10.0) < 10.0)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("gamma", GAMMAS)
def test_discount_weights_match_loop(seed, gamma):
    lengths, _ = random_batch(seed)
    unbiased = [gamma**t for length in lengths for t in range(length)]
    assert_close(discount_weights(lengths, gamma, True, reward_to_go=True), unbiased)
    assert_close(discount_weights(lengths, gamma, False, reward_to_go=True), [1.0] * int(lengths.sum()))
    assert discount_weights(lengths, gamma, True, reward_to_go=True).dtype == np.float64
    # without reward-to-go Ĝ_t = R(tau) is already discounted from the episode's start: lambda_t = 1
    assert_close(discount_weights(lengths, gamma, True, reward_to_go=False), [1.0] * int(lengths.sum()))
    assert_close(discount_weights(lengths, gamma, True, reward_to_go=True), unbiased)


def test_discount_weights_gamma_zero_keeps_first_step():
    np.testing.assert_array_equal(
        discount_weights(np.array([3, 1]), 0.0, True, reward_to_go=True), [1.0, 0.0, 0.0, 1.0]
    )


def test_returns_are_float64():
    lengths = np.array([2, 2])
    rewards = np.array([1, 2, 3, 4], dtype=np.float32)
    assert discounted_reward_to_go(rewards, lengths, 0.5).dtype == np.float64
    assert discounted_returns(rewards, lengths, 0.5, False).dtype == np.float64


# ----------------------------------------------------------------------------- baselines.py


def test_baseline_names():
    assert set(BASELINES) == {
        "none",
        "mean",
        "optimal",
        "optimal_constant",
        "optimal_time",
        "optimal_coordinate",
        "value",
    }


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("to_go", [True, False])
def test_leave_one_out_matches_loop(seed, gamma, to_go):
    lengths, rewards = random_batch(seed)
    if len(lengths) < 2:
        lengths = np.append(lengths, 4)
        rewards = np.append(rewards, [1.0, -1.0, 2.0, 0.5])
    returns = ref_discounted_returns(rewards, lengths, gamma, to_go)
    expected = ref_leave_one_out(returns, lengths, to_go)
    assert_close(leave_one_out_mean(returns, lengths, to_go), expected, rtol=1e-10, atol=1e-9)


def test_leave_one_out_by_hand():
    # episodes: [1, 2, 3] and [10]; with reward-to-go, episode 1 counts as 0 after its end
    lengths = np.array([3, 1])
    returns = np.array([1.0, 2.0, 3.0, 10.0])
    np.testing.assert_allclose(leave_one_out_mean(returns, lengths, True), [10.0, 0.0, 0.0, 1.0])
    # without reward-to-go each Ĝ is constant per episode, R(tau_1) = 10 continues past the end
    returns = np.array([5.0, 5.0, 5.0, 10.0])
    np.testing.assert_allclose(leave_one_out_mean(returns, lengths, False), [10.0, 10.0, 10.0, 5.0])


def test_leave_one_out_needs_two_episodes():
    with pytest.raises(ValueError, match="2"):
        leave_one_out_mean(np.array([1.0, 2.0]), np.array([2]), True)


@pytest.mark.parametrize("to_go", [True, False])
def test_leave_one_out_ignores_own_episode(to_go):
    """docs/maths.md §5: episode i's baseline does not depend on episode i, however large its returns are."""
    lengths = np.array([3, 2, 4])
    returns = np.array([1.0, 2.0, 3.0, -1.0, 0.5, 2.0, 2.0, 2.0, 2.0])
    if not to_go:
        returns = np.repeat([1.0, -1.0, 2.0], lengths)
    before = leave_one_out_mean(returns, lengths, to_go)
    changed = returns.copy()
    changed[:3] = 1e17
    after = leave_one_out_mean(changed, lengths, to_go)
    np.testing.assert_allclose(after[:3], before[:3], rtol=1e-12)


# ----------------------------------------------------------------------------- surrogate.py


@pytest.mark.parametrize("seed", SEEDS)
def test_surrogate_loss_value_and_gradient_match_loop(seed):
    lengths, advantages = random_batch(seed)
    rng = np.random.default_rng(50 + seed)
    m, n = int(lengths.sum()), len(lengths)
    log_prob = th.tensor(rng.normal(size=m) - 1.0, requires_grad=True)
    adv = th.tensor(advantages, requires_grad=True)
    weights = th.tensor(rng.uniform(0, 1, size=m), requires_grad=True)
    loss = surrogate_loss(log_prob, adv, weights, n)

    # -(1/N) sum_i sum_t w_t log pi A_t: a mean over episodes and a sum over steps
    per_episode = []
    for ep_lp, ep_adv, ep_w in zip(
        split(log_prob.tolist(), lengths), split(advantages.tolist(), lengths), split(weights.tolist(), lengths)
    ):
        per_episode.append(math.fsum(w * lp * a for lp, a, w in zip(ep_lp, ep_adv, ep_w)))
    expected = -math.fsum(per_episode) / n
    assert loss.dim() == 0
    assert loss.item() == pytest.approx(expected, rel=1e-12, abs=1e-12)

    loss.backward()
    expected_grad = -(weights.detach().numpy() * advantages) / n
    np.testing.assert_allclose(log_prob.grad.numpy(), expected_grad, rtol=1e-12)
    # advantages and step weights are constants in the gradient
    assert adv.grad is None
    assert weights.grad is None


def test_surrogate_loss_is_not_a_mean_over_steps():
    # two episodes of lengths 1 and 3: each step's gradient is -A_t / N, not -A_t / M
    log_prob = th.zeros(4, requires_grad=True)
    surrogate_loss(log_prob, th.ones(4), th.ones(4), 2).backward()
    np.testing.assert_allclose(log_prob.grad.numpy(), [-0.5] * 4)


def test_surrogate_loss_rejects_no_episode():
    with pytest.raises(ValueError, match="n_episodes"):
        surrogate_loss(th.zeros(2), th.ones(2), th.ones(2), 0)


@pytest.mark.parametrize("seed", SEEDS)
def test_standardize_matches_formula(seed):
    _, values = random_batch(seed)
    values = np.append(values, [0.3, -0.2])  # at least 2 values
    out = standardize(th.tensor(values)).numpy()
    mean = math.fsum(values) / len(values)
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1))
    np.testing.assert_allclose(out, (values - mean) / (std + 1e-8), rtol=1e-10, atol=1e-12)
    assert abs(out.mean()) < 1e-10
    assert out.std(ddof=1) == pytest.approx(1.0, abs=1e-6)


def test_standardize_edge_cases():
    np.testing.assert_array_equal(standardize(th.tensor([5.0])).numpy(), [0.0])
    np.testing.assert_array_equal(standardize(th.full((4,), 3.0)).numpy(), np.zeros(4))
    out = standardize(th.tensor([1.0, 3.0]), eps=0.0).numpy()
    np.testing.assert_allclose(out, [-1 / math.sqrt(2), 1 / math.sqrt(2)], rtol=1e-6)
