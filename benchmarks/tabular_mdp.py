"""Small tabular MDPs with exactly computable policy gradients, for the tests and the gradient benchmark.

An MDP here has ``S`` transient states, ``A`` actions and one absorbing terminal state.  It is
given by an initial distribution ``init`` (S,), a *sub-stochastic* transition tensor ``P``
(S, A, S) whose missing mass ``1 - sum_s' P[s, a, s']`` is the probability of terminating, and
mean rewards ``R`` (S, A).  The environment observes the one-hot encoding of the state (float32
``Box``), so with ``net_arch=dict(pi=[], vf=[])`` SB3's policy is a tabular softmax::

    pi(a|s) = softmax(W[:, s] + b)_a      W = action_net.weight (A, S), b = action_net.bias (A,)

With an action mask ``valid`` (S, A), the policy is the softmax over the valid actions only (an
invalid action's logit is replaced by ``-inf``), as sb3-contrib's maskable distributions make it.

Three instances:

- :func:`fixed_horizon_mdp`: time is part of the state (index ``t * S0 + s``), every episode
  terminates after exactly ``H`` steps, rewards depend on ``(t, s, a)``.
- :func:`random_length_mdp`: no time in the state; each step terminates with a probability that
  depends strongly on the action, so episode lengths vary and depend on the policy.
- :func:`masked_mdp`: random lengths, 3 actions, and in two of the three states one action is
  invalid (:class:`MaskedTabularEnv` exposes ``action_masks()`` and raises on an invalid action).

Exact quantities (float64 torch, differentiable), with ``P_pi``/``r_pi`` the policy's transition
matrix/expected reward and ``rho = init``:

- ``V_gamma = (I - gamma P_pi)^-1 r_pi``, ``J_gamma = rho . V_gamma`` and ``grad J_gamma`` by autograd
  (:meth:`TabularMDP.exact_gradient`).  With guaranteed termination ``I - P_pi`` is invertible, so
  ``gamma = 1`` is allowed.
- ``Q_gamma(s, a) = R(s, a) + gamma sum_s' P[s, a, s'] V_gamma(s')``.
- the expected value of the per-episode REINFORCE estimate ``sum_t lambda_t grad log pi(a_t|s_t) Ĝ_t``
  (:meth:`TabularMDP.expected_estimate`).  With ``lambda_t = c^t``:

  * reward-to-go, ``Ĝ_t = sum_{t'>=t} gamma^(t'-t) r_t'``:  ``E[Ĝ_t | s_t, a_t] = Q_gamma(s_t, a_t)``, so
    the expectation is ``sum_t c^t E[grad log pi(a_t|s_t) Q_gamma(s_t, a_t)]
    = sum_s d_c(s) sum_a grad pi(a|s) Q_gamma(s, a)`` with ``d_c = rho^T (I - c P_pi)^-1`` the
    ``c``-discounted visitation counts.
  * no reward-to-go, ``Ĝ_t = R(tau) = sum_t' gamma^t' r_t'``: the rewards before ``t`` contribute 0
    (the score at ``t`` has conditional mean 0 given the past), the rest is
    ``gamma^t * (reward-to-go from t)``, so the expectation is the formula above with ``c`` replaced
    by ``c * gamma``.

  Hence with ``kappa = c * (1 if reward_to_go else gamma)`` the expectation is
  ``sum_s d_kappa(s) sum_a grad pi(a|s) Q_gamma(s, a)``, which by the policy-gradient theorem equals
  ``grad J_gamma`` iff ``kappa = gamma``: reward-to-go with ``lambda_t = gamma^t``, or no
  reward-to-go with ``lambda_t = 1``.  Reward-to-go with ``lambda_t = 1`` gives the usual discounted
  surrogate (``kappa = 1``), and no reward-to-go with ``lambda_t = gamma^t`` gives ``kappa = gamma^2``
  (neither ``grad J_gamma`` nor the surrogate).  Baselines that do not depend on the episode's own
  actions do not change these expectations.

These formulas are checked against brute-force enumeration of all trajectories of the
fixed-horizon MDP and against a large Monte-Carlo sample of the random-length MDP (see
``tests/test_exact_gradient.py``), using the independent numpy simulator :func:`simulate_estimates`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Union

import gymnasium as gym
import numpy as np
import torch as th
from gymnasium import spaces

Gradient = tuple[th.Tensor, th.Tensor]
Array = Union[np.ndarray, th.Tensor]


@dataclass(frozen=True)
class TabularMDP:
    """
    Tabular MDP with an absorbing terminal state (see the module docstring).

    :param init: Initial state distribution, shape ``(S,)``.
    :param transitions: Sub-stochastic transitions ``P[s, a, s']``, shape ``(S, A, S)``; the missing
        mass is the probability of terminating.
    :param rewards: Mean reward ``R[s, a]``, shape ``(S, A)``.
    :param reward_noise: Standard deviation of the Gaussian noise added to every reward.
    :param name: Short name, used in test ids.
    :param valid: Which actions are allowed in each state, boolean, shape ``(S, A)`` (None: all).
    """

    init: np.ndarray
    transitions: np.ndarray
    rewards: np.ndarray
    reward_noise: float
    name: str
    valid: Optional[np.ndarray] = None

    @property
    def n_states(self) -> int:
        """Number of transient states ``S`` (= observation size)."""
        return int(self.init.shape[0])

    @property
    def n_actions(self) -> int:
        """Number of actions ``A``."""
        return int(self.rewards.shape[1])

    @property
    def termination(self) -> np.ndarray:
        """Probability of terminating after ``(s, a)``, shape ``(S, A)``."""
        return np.clip(1.0 - self.transitions.sum(axis=2), 0.0, 1.0)

    # ----------------------------------------------------------------------------------------
    # Exact quantities (float64 torch)
    # ----------------------------------------------------------------------------------------
    def _tensors(self) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        f64 = th.float64
        return (
            th.tensor(self.init, dtype=f64),
            th.tensor(self.transitions, dtype=f64),
            th.tensor(self.rewards, dtype=f64),
        )

    def policy(self, weight: th.Tensor, bias: th.Tensor) -> th.Tensor:
        """``pi[s, a]`` of the tabular softmax policy over the valid actions, shape ``(S, A)``."""
        logits = weight.T + bias
        if self.valid is not None:
            logits = logits.masked_fill(~th.as_tensor(self.valid), -th.inf)
        return th.softmax(logits, dim=-1)

    def values(self, weight: th.Tensor, bias: th.Tensor, gamma: float) -> tuple[th.Tensor, th.Tensor]:
        """``(V_gamma (S,), Q_gamma (S, A))`` of the policy, differentiable in ``(weight, bias)``."""
        _, transitions, rewards = self._tensors()
        pi = self.policy(weight, bias)
        p_pi = th.einsum("sa,sat->st", pi, transitions)
        r_pi = (pi * rewards).sum(dim=1)
        eye = th.eye(self.n_states, dtype=th.float64)
        v = th.linalg.solve(eye - gamma * p_pi, r_pi)
        q = rewards + gamma * th.einsum("sat,t->sa", transitions, v)
        return v, q

    def objective(self, weight: th.Tensor, bias: th.Tensor, gamma: float) -> th.Tensor:
        """``J_gamma = E[sum_t gamma^t r_t]``."""
        init, _, _ = self._tensors()
        v, _ = self.values(weight, bias, gamma)
        return init @ v

    def visitation(self, weight: th.Tensor, bias: th.Tensor, discount: float) -> th.Tensor:
        """``d_c(s) = sum_t c^t P(s_t = s)``, shape ``(S,)``."""
        init, transitions, _ = self._tensors()
        pi = self.policy(weight, bias)
        p_pi = th.einsum("sa,sat->st", pi, transitions)
        eye = th.eye(self.n_states, dtype=th.float64)
        return th.linalg.solve((eye - discount * p_pi).T, init)

    def exact_gradient(self, weight: Array, bias: Array, gamma: float) -> Gradient:
        """``grad J_gamma`` with respect to ``(weight, bias)``, by autograd of the linear solve."""
        w, b = _leaf(weight), _leaf(bias)
        grad_w, grad_b = th.autograd.grad(self.objective(w, b, gamma), (w, b))
        return grad_w, grad_b

    def expected_estimate_kappa(self, weight: Array, bias: Array, gamma: float, kappa: float) -> Gradient:
        """``sum_s d_kappa(s) sum_a grad pi(a|s) Q_gamma(s, a)`` (``d`` and ``Q`` held constant)."""
        w, b = _leaf(weight), _leaf(bias)
        with th.no_grad():
            d = self.visitation(w, b, kappa)
            _, q = self.values(w, b, gamma)
        surrogate = (d[:, None] * self.policy(w, b) * q).sum()
        grad_w, grad_b = th.autograd.grad(surrogate, (w, b))
        return grad_w, grad_b

    def expected_estimate(
        self,
        weight: Array,
        bias: Array,
        gamma: float,
        reward_to_go: bool,
        unbiased_discount: bool,
    ) -> Gradient:
        """
        ``E[sum_t lambda_t grad log pi(a_t|s_t) Ĝ_t]`` for one episode (docs/maths.md §3–4 without baseline).

        ``lambda_t = gamma^t`` if ``unbiased_discount`` else 1; ``Ĝ_t`` is the reward-to-go or the
        whole discounted return.  See the module docstring for the derivation.
        """
        kappa = estimate_kappa(gamma, reward_to_go, unbiased_discount)
        return self.expected_estimate_kappa(weight, bias, gamma, kappa)


def estimate_kappa(gamma: float, reward_to_go: bool, unbiased_discount: bool) -> float:
    """The visitation discount ``kappa`` whose ``d_kappa`` gives the estimator's expectation."""
    return (gamma if unbiased_discount else 1.0) * (1.0 if reward_to_go else gamma)


def _leaf(x: Array) -> th.Tensor:
    return (
        th.as_tensor(np.asarray(x, dtype=np.float64) if not isinstance(x, th.Tensor) else x.detach())
        .to(th.float64)
        .clone()
        .requires_grad_(True)
    )


def flat_gradient(gradient: Gradient) -> np.ndarray:
    """``(grad_W, grad_b)`` as one float64 vector (``W`` row-major, then ``b``)."""
    return np.concatenate([gradient[0].detach().numpy().ravel(), gradient[1].detach().numpy().ravel()])


# --------------------------------------------------------------------------------------------
# The two MDPs and a non-trivial policy for each
# --------------------------------------------------------------------------------------------
FIXED_HORIZON = 3
FIXED_HORIZON_BASE_STATES = 3


def fixed_horizon_mdp() -> TabularMDP:
    """
    3 base states x horizon 3 (time in the state: 9 observation states), 2 actions.

    Episodes always terminate after exactly 3 steps.  Rewards depend on ``(t, s, a)`` and grow with
    ``t``, so discounting changes the gradient's direction, not just its scale.
    """
    base, horizon, n_actions = FIXED_HORIZON_BASE_STATES, FIXED_HORIZON, 2
    rng = np.random.default_rng(20240610)
    n_states = base * horizon
    init = np.zeros(n_states)
    init[:base] = [0.5, 0.3, 0.2]
    transitions = np.zeros((n_states, n_actions, n_states))
    base_p = np.array(
        [
            [[0.8, 0.1, 0.1], [0.1, 0.2, 0.7]],
            [[0.2, 0.7, 0.1], [0.6, 0.1, 0.3]],
            [[0.1, 0.1, 0.8], [0.7, 0.2, 0.1]],
        ]
    )
    for t in range(horizon - 1):
        transitions[t * base : (t + 1) * base, :, (t + 1) * base : (t + 2) * base] = base_p
    # Mean rewards: a random (but fixed) state/action pattern, scaled up with t.
    pattern = rng.uniform(-1.0, 1.0, size=(horizon, base, n_actions))
    rewards = (pattern * (1.0 + np.arange(horizon))[:, None, None]).reshape(n_states, n_actions)
    return TabularMDP(init, transitions, rewards, reward_noise=0.3, name="fixed_horizon")


def random_length_mdp() -> TabularMDP:
    """
    3 states, 2 actions, termination probability 0.15-0.6 depending strongly on the action.

    Action 1 is the "ending" action in states 0 and 1 (it terminates with probability 0.6 and 0.5),
    action 0 in state 2; the rewards make long episodes worth more in some states and less in
    others, so episode length and return are correlated with the actions.
    """
    init = np.array([0.6, 0.3, 0.1])
    termination = np.array([[0.15, 0.6], [0.15, 0.5], [0.55, 0.15]])
    moves = np.array(
        [
            [[0.2, 0.5, 0.3], [0.1, 0.1, 0.8]],
            [[0.5, 0.2, 0.3], [0.3, 0.6, 0.1]],
            [[0.3, 0.3, 0.4], [0.7, 0.2, 0.1]],
        ]
    )
    transitions = moves * (1.0 - termination)[:, :, None]
    rewards = np.array([[1.0, -0.5], [-0.8, 1.5], [0.4, 2.0]])
    return TabularMDP(init, transitions, rewards, reward_noise=0.3, name="random_length")


def masked_mdp() -> TabularMDP:
    """
    3 states, 3 actions, random lengths; action 2 is invalid in state 0 and action 0 in state 2.

    Each invalid action is the one that would pay most there, so a policy that ignored the mask
    would be pulled towards it: the masked gradient differs from the unmasked one in every state.
    """
    init = np.array([0.5, 0.3, 0.2])
    termination = np.array([[0.2, 0.55, 0.3], [0.15, 0.5, 0.35], [0.3, 0.2, 0.5]])
    moves = np.array(
        [
            [[0.2, 0.5, 0.3], [0.1, 0.1, 0.8], [0.4, 0.4, 0.2]],
            [[0.5, 0.2, 0.3], [0.3, 0.6, 0.1], [0.2, 0.2, 0.6]],
            [[0.3, 0.3, 0.4], [0.7, 0.2, 0.1], [0.1, 0.6, 0.3]],
        ]
    )
    transitions = moves * (1.0 - termination)[:, :, None]
    rewards = np.array([[1.0, -0.5, 3.0], [-0.8, 1.5, 0.3], [4.0, 0.4, 2.0]])
    valid = np.array([[True, True, False], [True, True, True], [False, True, True]])
    return TabularMDP(init, transitions, rewards, reward_noise=0.3, name="masked", valid=valid)


def random_policy_params(mdp: TabularMDP, seed: int = 7, scale: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
    """A fixed non-trivial ``(W (A, S), b (A,))`` as float32-representable float64 arrays."""
    rng = np.random.default_rng(seed)
    weight = rng.normal(0.0, scale, size=(mdp.n_actions, mdp.n_states))
    bias = rng.normal(0.0, 0.5 * scale, size=(mdp.n_actions,))
    return weight.astype(np.float32).astype(np.float64), bias.astype(np.float32).astype(np.float64)


# --------------------------------------------------------------------------------------------
# Gymnasium environment
# --------------------------------------------------------------------------------------------
class TabularEnv(gym.Env[np.ndarray, np.int64]):
    """
    The MDP as a gymnasium env: one-hot float32 observations, ``Discrete`` actions.

    Reaching the absorbing state ends the episode with ``terminated=True``; the observation
    returned then is all zeros.  Rewards are ``R[s, a]`` plus Gaussian noise.
    """

    metadata = {"render_modes": []}  # noqa: RUF012 (gymnasium declares it as an instance attribute)

    def __init__(self, mdp: TabularMDP) -> None:
        super().__init__()
        self.mdp = mdp
        self.observation_space = spaces.Box(0.0, 1.0, shape=(mdp.n_states,), dtype=np.float32)
        self.action_space = spaces.Discrete(mdp.n_actions)
        n = mdp.n_states
        # Outcome distribution of every (s, a): the S next states, then "terminate".
        outcome = np.concatenate([mdp.transitions, mdp.termination[:, :, None]], axis=2)
        self._outcome_cdf = np.cumsum(outcome / outcome.sum(axis=2, keepdims=True), axis=2)
        self._outcome_cdf[:, :, -1] = 1.0
        self._terminal = n
        self._state = 0

    def _obs(self, state: int) -> np.ndarray:
        obs = np.zeros(self.mdp.n_states, dtype=np.float32)
        if state != self._terminal:
            obs[state] = 1.0
        return obs

    def reset(self, *, seed: Optional[int] = None, options: Optional[dict] = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._state = int(self.np_random.choice(self.mdp.n_states, p=self.mdp.init))
        return self._obs(self._state), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        s, a = self._state, int(action)
        reward = float(self.mdp.rewards[s, a] + self.mdp.reward_noise * self.np_random.standard_normal())
        nxt = int(np.searchsorted(self._outcome_cdf[s, a], self.np_random.random(), side="right"))
        self._state = nxt
        return self._obs(nxt), reward, nxt == self._terminal, False, {}


class MaskedTabularEnv(TabularEnv):
    """
    :class:`TabularEnv` of an MDP with an action mask: ``action_masks()`` gives the valid actions of
    the current state (sb3-contrib's convention), and an invalid action raises ``ValueError``.
    """

    def __init__(self, mdp: TabularMDP) -> None:
        if mdp.valid is None:
            raise ValueError(f"the MDP {mdp.name!r} has no action mask")
        super().__init__(mdp)
        self._valid = np.asarray(mdp.valid, dtype=bool)

    def action_masks(self) -> np.ndarray:
        """Which actions are allowed in the current state (all of them once the episode has ended), shape ``(A,)``."""
        if self._state == self._terminal:
            return np.ones(self.mdp.n_actions, dtype=bool)
        return self._valid[self._state].copy()

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        if not self._valid[self._state, int(action)]:
            raise ValueError(f"invalid action {int(action)} in state {self._state}")
        return super().step(action)


# --------------------------------------------------------------------------------------------
# Independent numpy simulator of per-episode REINFORCE estimates (no SB3, no torch)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EpisodeEstimates:
    """
    Per-episode estimates ``sum_t lambda_t grad_W log pi(a_t|s_t) Ĝ_t`` for the four
    ``(reward_to_go, unbiased_discount)`` combinations, plus lengths and returns.

    ``grad_b`` of an episode is ``grad_W`` summed over its state axis (one-hot observations).
    Arrays: ``estimates[(rtg, unbiased)]`` shape ``(n, A, S)``; ``lengths`` and ``returns`` ``(n,)``.
    """

    estimates: dict[tuple[bool, bool], np.ndarray]
    lengths: np.ndarray
    returns: np.ndarray

    def flat(self, reward_to_go: bool, unbiased_discount: bool) -> np.ndarray:
        """``(grad_W, grad_b)`` of every episode as rows, shape ``(n, A*S + A)``."""
        g = self.estimates[(reward_to_go, unbiased_discount)]
        return np.concatenate([g.reshape(len(g), -1), g.sum(axis=2)], axis=1)


def simulate_estimates(
    mdp: TabularMDP,
    weight: np.ndarray,
    bias: np.ndarray,
    gamma: float,
    n_episodes: int,
    rng: np.random.Generator,
    max_steps: int = 200,
) -> EpisodeEstimates:
    """
    Sample ``n_episodes`` i.i.d. episodes (vectorised over episodes) and their REINFORCE estimates.

    Reward-to-go estimates use the forward recursion ``sum_t c^t score_t Ĝ_t = sum_t' r_t' E_t'`` with
    ``E_t' = gamma E_{t'-1} + c^t' score_t'``; the others are ``(sum_t c^t score_t) R(tau)``.
    Episodes still running after ``max_steps`` are cut (probability negligible for these MDPs).
    """
    n_s, n_a = mdp.n_states, mdp.n_actions
    logits = weight.T + bias
    pi = np.exp(logits - logits.max(axis=1, keepdims=True))
    pi /= pi.sum(axis=1, keepdims=True)
    outcome = np.concatenate([mdp.transitions, mdp.termination[:, :, None]], axis=2)
    outcome_cdf = np.cumsum(outcome / outcome.sum(axis=2, keepdims=True), axis=2)
    outcome_cdf[:, :, -1] = 1.0
    policy_cdf = np.cumsum(pi, axis=1)
    policy_cdf[:, -1] = 1.0

    state = (rng.random(n_episodes)[:, None] > np.cumsum(mdp.init)[None, :-1]).sum(axis=1)
    alive = np.ones(n_episodes, dtype=bool)
    lengths = np.zeros(n_episodes, dtype=np.int64)
    ret = np.zeros(n_episodes)
    zeros = np.zeros((n_episodes, n_a, n_s))
    trace = {unbiased: zeros.copy() for unbiased in (False, True)}  # E_t' for rtg
    score_sum = {unbiased: zeros.copy() for unbiased in (False, True)}  # sum_t c^t score_t
    rtg_acc = {unbiased: zeros.copy() for unbiased in (False, True)}
    eye_a = np.eye(n_a)
    for t in range(max_steps):
        idx = np.flatnonzero(alive)
        if idx.size == 0:
            break
        s = state[idx]
        a = (rng.random(idx.size)[:, None] > policy_cdf[s][:, :-1]).sum(axis=1)
        r = mdp.rewards[s, a] + mdp.reward_noise * rng.standard_normal(idx.size)
        score = np.zeros((idx.size, n_a, n_s))
        score[np.arange(idx.size), :, s] = eye_a[a] - pi[s]
        ret[idx] += gamma**t * r
        for unbiased in (False, True):
            c_t = gamma**t if unbiased else 1.0
            trace[unbiased][idx] = gamma * trace[unbiased][idx] + c_t * score
            rtg_acc[unbiased][idx] += r[:, None, None] * trace[unbiased][idx]
            score_sum[unbiased][idx] += c_t * score
        lengths[idx] += 1
        nxt = (rng.random(idx.size)[:, None] > outcome_cdf[s, a][:, :-1]).sum(axis=1)
        state[idx] = nxt
        alive[idx] = nxt != n_s
    estimates = {}
    for unbiased in (False, True):
        estimates[(True, unbiased)] = rtg_acc[unbiased]
        estimates[(False, unbiased)] = score_sum[unbiased] * ret[:, None, None]
    return EpisodeEstimates(estimates, lengths, ret)


def vec_env_batch_estimates(
    mdp: TabularMDP,
    weight: np.ndarray,
    bias: np.ndarray,
    gamma: float,
    n_envs: int,
    n_episodes: int,
    n_batches: int,
    rule: str,
    rng: np.random.Generator,
) -> np.ndarray:
    """
    Reference simulation of docs/maths.md §2: per-batch REINFORCE estimates (reward-to-go, ``lambda_t = gamma^t``,
    no baseline) when ``n_envs`` envs step together from a common reset and the batch is either the
    first ``n_episodes`` episodes to **start** (``rule="start"``, docs/maths.md §2.1) or to **finish**
    (``rule="finish"``, length-biased).  Ties are broken by env index.

    Every env runs ``n_episodes`` i.i.d. episodes back to back (enough for either rule: no env can
    contribute more than ``n_episodes`` episodes); episode ``j`` of an env starts at step
    ``sum of its earlier lengths`` and ends ``length - 1`` steps later.

    :return: Per-batch estimates ``(1/N) sum_{i in batch} g_i``, shape ``(n_batches, A*S + A)``.
    """
    if rule not in ("start", "finish"):
        raise ValueError(f"rule must be 'start' or 'finish', got {rule!r}")
    est = simulate_estimates(mdp, weight, bias, gamma, n_batches * n_envs * n_episodes, rng)
    per_episode = est.flat(True, True).reshape(n_batches, n_envs, n_episodes, -1)
    lengths = est.lengths.reshape(n_batches, n_envs, n_episodes)
    starts = np.cumsum(lengths, axis=2) - lengths
    time = starts if rule == "start" else starts + lengths - 1
    key = (time * n_envs + np.arange(n_envs)[None, :, None]).reshape(n_batches, -1)
    chosen = np.argsort(key, axis=1, kind="stable")[:, :n_episodes]
    flat = per_episode.reshape(n_batches, n_envs * n_episodes, -1)
    return np.take_along_axis(flat, chosen[:, :, None], axis=1).mean(axis=1)
