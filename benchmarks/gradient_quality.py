"""Gradient quality: bias and variance of each estimator against the exact policy gradient.

On the random-length tabular MDP of :mod:`benchmarks.tabular_mdp` (3 states, 2 actions, episode
lengths that depend on the actions) SB3's ``MlpPolicy`` with ``net_arch=[]`` is a tabular softmax,
so ``grad J`` is known exactly.  Each *draw* is one update of the public API (SGD,
``learning_rate=1``: the parameter change is the estimate) on a fresh batch of ``n_episodes``
episodes, always from the same parameters.  Per estimator, over ``draws`` draws: ``rel_bias``
(``|mean - grad J| / |grad J|``) with its Monte-Carlo ``noise`` level, ``rel_se`` (one batch's
relative standard error) and ``rel_rmse`` (both together).  Three studies:

- ``baselines``: REINFORCE on-policy, ``gamma = 1``, every baseline (``value`` with a fixed,
  deliberately imperfect value head ``0.8 V + 0.1``; ``optimal`` is ``optimal_constant`` under its
  short name), with reward-to-go and with the whole return.  Every baseline of one returns setting
  sees the same batches (one seed), so the comparison between baselines is paired;
- ``offpolicy``: OffPolicyPG (mean baseline, one gradient step on a fresh buffer) on episodes drawn
  by behaviour parameters a fraction ``distance`` of the way from the target to another random
  policy, for each importance-weight mode and truncation, and with no weights at all;
- ``forms`` (not run by default): the forms of the optimal baselines of docs/maths.md §5.4, by a
  numpy simulation of per-step scores (no library involved): the diagonal form the library uses and
  the exact minimiser, each estimated leave-one-out from the other episodes or set to its value
  from a large separate sample (``draws`` batches of ``n_episodes``, reward-to-go and whole return).

Usage (from the repository root)::

    python -m benchmarks.gradient_quality              # both studies, 400 draws each, a few minutes
    python -m benchmarks.gradient_quality --quick      # 20 draws: a smoke check
    python -m benchmarks.gradient_quality --studies forms --draws 3000 --tag _forms

prints the tables and writes ``benchmarks/results/gradient_quality<tag>.json`` and ``.png``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch as th

from benchmarks.tabular_mdp import TabularEnv, TabularMDP, flat_gradient, random_length_mdp, random_policy_params
from benchmarks.tabular_policy import SwapParameters, action_net_vector
from sb3_reinforce import REINFORCE, OffPolicyPG

RESULTS = Path(__file__).resolve().parent / "results"

Params = tuple[np.ndarray, np.ndarray]

#: The tabular softmax policy: no hidden layers; SGD so that the update is ``lr * estimate``.
POLICY_KWARGS: dict[str, Any] = dict(net_arch=dict(pi=[], vf=[]), optimizer_class=th.optim.SGD)

BASELINES = ("none", "mean", "optimal", "optimal_constant", "optimal_time", "optimal_coordinate", "value")
#: Seeds of the baselines study: one per returns setting, shared by every baseline (common random
#: numbers: each baseline is applied to the same batches, so their differences are not sampling luck).
BASELINE_SEED_OFFSETS = {True: 1, False: 5}
#: The off-policy study's first seed offset (as when each of the 8 baselines runs had its own seed).
OFFPOLICY_SEED_OFFSET = 8
#: (importance_weights, truncation) pairs of the off-policy study.
OFFPOLICY_ESTIMATORS: tuple[tuple[str, float | None], ...] = (
    ("per_decision", None),
    ("per_decision", 2.0),
    ("per_decision", 1.0),
    ("per_decision", 0.5),
    ("per_step", None),
    ("per_step", 2.0),
    ("per_step", 1.0),
    ("per_step", 0.5),
)
DISTANCES = (0.35, 0.7)


@dataclass
class Row:
    """The figures of one estimator.

    :param study: ``"baselines"`` or ``"offpolicy"``.
    :param estimator: Short description of the estimator.
    :param distance: How far the behaviour policy is from the target (0: on-policy).
    :param n_episodes: Episodes per estimate.
    :param draws: Number of estimates.
    :param rel_bias: ``|mean - grad J| / |grad J|``.
    :param noise: Monte-Carlo noise level of ``rel_bias``.
    :param rel_se: Relative standard error of one estimate.
    :param rel_rmse: Relative root-mean-square error of one estimate.
    """

    study: str
    estimator: str
    distance: float
    n_episodes: int
    draws: int
    rel_bias: float
    noise: float
    rel_se: float
    rel_rmse: float


class FreshUpdates(SwapParameters):
    """
    Turn training into independent draws of the update at ``target``.

    Each rollout starts from ``behaviour`` (an empty replay buffer for OffPolicyPG, and the value
    head reset to ``value_weight``); at its end ``target`` is loaded (``SwapParameters``), so the
    update is taken there; at the next rollout start the change ``theta_after - target`` is recorded.

    :param behaviour: Parameters that collect the episodes.
    :param target: Parameters at which the update is taken.
    :param draws: Stop after this many recorded updates.
    :param value_weight: Weights of the value head (``value_net``) at every rollout start.
    """

    def __init__(self, behaviour: Params, target: Params, draws: int, value_weight: np.ndarray) -> None:
        super().__init__(behaviour, target)
        self.draws = draws
        self.value_weight = value_weight
        self.target_vector = np.concatenate([target[0].ravel(), target[1]])
        self.samples: list[np.ndarray] = []
        self.rollouts = 0

    def _on_rollout_start(self) -> None:
        if self.rollouts > 0:
            self.samples.append(action_net_vector(self.model) - self.target_vector)
        self.rollouts += 1
        model: Any = self.model
        if isinstance(model, OffPolicyPG):
            assert model.replay_buffer is not None
            model.replay_buffer.reset()
        super()._on_rollout_start()
        with th.no_grad():
            model.policy.value_net.weight.copy_(th.as_tensor(self.value_weight[None, :], dtype=th.float32))
            model.policy.value_net.bias.zero_()

    def _on_step(self) -> bool:
        return len(self.samples) < self.draws


def draw_updates(
    mdp: TabularMDP, algo: str, behaviour: Params, target: Params, draws: int, seed: int, **kwargs: Any
) -> np.ndarray:
    """
    ``draws`` independent gradient estimates of one estimator, shape ``(draws, n_params)``.

    :param mdp: The tabular MDP.
    :param algo: ``"reinforce"`` or ``"offpolicy_pg"``.
    :param behaviour: Parameters that collect the episodes.
    :param target: Parameters at which the update is taken.
    :param draws: Number of estimates.
    :param seed: Seed of the run.
    :param kwargs: Further constructor arguments (n_episodes, baseline, importance_weights, ...).
    :return: The estimates.
    """
    weight, bias = target
    v_true, _ = mdp.values(th.tensor(weight), th.tensor(bias), kwargs.get("gamma", 1.0))
    value_weight = (0.8 * v_true + 0.1).numpy()
    common: dict[str, Any] = dict(learning_rate=1.0, policy_kwargs=POLICY_KWARGS, seed=seed, device="cpu", gamma=1.0)
    if algo == "offpolicy_pg":
        n = kwargs["n_episodes"]
        kwargs = dict(batch_episodes=n, buffer_size=100_000, gradient_steps=1, **kwargs)
        model: Any = OffPolicyPG("MlpPolicy", TabularEnv(mdp), **common, **kwargs)
    else:
        model = REINFORCE("MlpPolicy", TabularEnv(mdp), **common, **kwargs)
    recorder = FreshUpdates(behaviour, target, draws, value_weight)
    model.learn(10**9, callback=recorder, log_interval=None)
    return np.array(recorder.samples)


def figures(samples: np.ndarray, exact: np.ndarray) -> dict[str, float]:
    """
    Relative bias, its noise level, relative standard error and RMSE of the draws against ``exact``.

    :param samples: ``(draws, n_params)`` estimates.
    :param exact: The exact gradient.
    :return: ``rel_bias``, ``noise``, ``rel_se``, ``rel_rmse``.
    """
    norm = float(np.linalg.norm(exact))
    total_variance = float(samples.var(axis=0, ddof=1).sum())
    return dict(
        rel_bias=float(np.linalg.norm(samples.mean(axis=0) - exact)) / norm,
        noise=float(np.sqrt(total_variance / len(samples))) / norm,
        rel_se=float(np.sqrt(total_variance)) / norm,
        rel_rmse=float(np.sqrt(((samples - exact) ** 2).sum(axis=1).mean())) / norm,
    )


def behaviour_params(mdp: TabularMDP, target: Params, distance: float) -> Params:
    """
    Parameters a fraction ``distance`` of the way from ``target`` to another fixed random policy.

    :param mdp: The MDP (for the shapes).
    :param target: The target parameters.
    :param distance: 0 gives ``target``, 1 the other policy.
    :return: The behaviour parameters (float32-representable).
    """
    other = random_policy_params(mdp, seed=21)
    moved = [(x + distance * (y - x)).astype(np.float32).astype(np.float64) for x, y in zip(target, other)]
    return moved[0], moved[1]


def run(
    studies: Sequence[str], draws: int, n_episodes: int, seed: int = 0, estimators: Any = None, distances: Any = None
) -> list[Row]:
    """
    Measure every estimator of the chosen studies.

    :param studies: ``"baselines"`` and/or ``"offpolicy"``.
    :param draws: Estimates per estimator.
    :param n_episodes: Episodes per estimate.
    :param seed: Seed of the first run (each estimator gets its own).
    :param estimators: Off-policy (mode, truncation) pairs (default :data:`OFFPOLICY_ESTIMATORS`).
    :param distances: Behaviour distances of the off-policy study (default :data:`DISTANCES`).
    :return: One row per estimator, printed as it is measured.
    """
    mdp = random_length_mdp()
    target = random_policy_params(mdp, seed=7)
    exact = flat_gradient(mdp.exact_gradient(*target, 1.0))
    rows: list[Row] = []

    def record(study: str, estimator: str, distance: float, samples: np.ndarray) -> None:
        row = Row(study, estimator, distance, n_episodes, len(samples), **figures(samples, exact))
        rows.append(row)
        print(
            f"{study:>9} | {estimator:<24} | d={distance:<4} | bias {row.rel_bias:.3f} (noise {row.noise:.3f}) "
            f"| se {row.rel_se:.3f} | rmse {row.rel_rmse:.3f}",
            flush=True,
        )

    if "baselines" in studies:
        for reward_to_go in (True, False):
            for baseline in BASELINES:
                samples = draw_updates(
                    mdp,
                    "reinforce",
                    target,
                    target,
                    draws,
                    seed + BASELINE_SEED_OFFSETS[reward_to_go],
                    n_episodes=n_episodes,
                    baseline=baseline,
                    reward_to_go=reward_to_go,
                )
                returns = "reward-to-go" if reward_to_go else "whole return"
                record("baselines", f"{returns}, baseline={baseline}", 0.0, samples)
    run_seed = seed + OFFPOLICY_SEED_OFFSET
    if "offpolicy" in studies:
        for distance in distances or DISTANCES:
            behaviour = behaviour_params(mdp, target, distance)
            for mode, truncation in estimators or OFFPOLICY_ESTIMATORS:
                run_seed += 1
                samples = draw_updates(
                    mdp,
                    "offpolicy_pg",
                    behaviour,
                    target,
                    draws,
                    run_seed,
                    n_episodes=n_episodes,
                    baseline="mean",
                    importance_weights=mode,
                    truncation=truncation,
                )
                record("offpolicy", f"{mode} c={truncation}", distance, samples)
            run_seed += 1
            # No importance weights at all: REINFORCE's update at theta' on theta_b's episodes.
            samples = draw_updates(
                mdp, "reinforce", behaviour, target, draws, run_seed, n_episodes=n_episodes, baseline="mean"
            )
            record("offpolicy", "no weights", distance, samples)
    return rows


def simulate_scores(
    mdp: TabularMDP, params: Params, n_episodes: int, rng: np.random.Generator, max_steps: int = 100
) -> tuple[np.ndarray, np.ndarray]:
    """
    Episodes of the tabular softmax policy with the score of every step, vectorised over episodes.

    :param mdp: The MDP.
    :param params: ``(W, b)`` of the policy.
    :param n_episodes: Number of episodes.
    :param rng: Random generator.
    :param max_steps: Episodes are cut there (a negligible probability for these MDPs).
    :return: Scores ``(n, T, A*S + A)`` (0 past an episode's end) and rewards ``(n, T)``.
    """
    weight, bias = params
    n_s, n_a = mdp.n_states, mdp.n_actions
    logits = weight.T + bias
    pi = np.exp(logits - logits.max(axis=1, keepdims=True))
    pi /= pi.sum(axis=1, keepdims=True)
    outcome = np.concatenate([mdp.transitions, mdp.termination[:, :, None]], axis=2)
    outcome_cdf = np.cumsum(outcome / outcome.sum(axis=2, keepdims=True), axis=2)
    scores = np.zeros((n_episodes, max_steps, n_a * n_s + n_a))
    rewards = np.zeros((n_episodes, max_steps))
    state = (rng.random(n_episodes)[:, None] > np.cumsum(mdp.init)[None, :-1]).sum(axis=1)
    alive = np.ones(n_episodes, dtype=bool)
    for t in range(max_steps):
        idx = np.flatnonzero(alive)
        if idx.size == 0:
            break
        s = state[idx]
        a = (rng.random(idx.size)[:, None] > np.cumsum(pi, axis=1)[s][:, :-1]).sum(axis=1)
        rewards[idx, t] = mdp.rewards[s, a] + mdp.reward_noise * rng.standard_normal(idx.size)
        score_w = np.zeros((idx.size, n_a, n_s))
        score_w[np.arange(idx.size), :, s] = np.eye(n_a)[a] - pi[s]
        scores[idx, t] = np.concatenate([score_w.reshape(idx.size, -1), score_w.sum(axis=2)], axis=1)
        state[idx] = (rng.random(idx.size)[:, None] > outcome_cdf[s, a][:, :-1]).sum(axis=1)
        alive[idx] = state[idx] != n_s
    return scores, rewards


#: The optimal baseline forms of the ``forms`` study, from the coarsest to the finest.
FORMS = ("constant", "time", "coordinate")


def form_statistics(scores: np.ndarray, returns: np.ndarray, exact: bool) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """
    Per-episode numerators and denominators of each optimal baseline form (docs/maths.md §5.4).

    Diagonal form: ``u_t^2 Ĝ_t`` over ``u_t^2``; exact form: ``u_t A`` over ``u_t^2`` with ``A`` the
    episode's update without baseline (for the constant, ``S . A`` over ``||S||^2``, ``S = sum_t u_t``).

    :param scores: ``(n, T, P)`` per-step scores (``lambda_t = 1``).
    :param returns: ``(n, T)`` returns ``Ĝ_t``.
    :param exact: The exact minimiser instead of the diagonal form.
    :return: For each form, ``(numerator, denominator)`` per episode, shapes ``(n,)``, ``(n, T)``, ``(n, T, P)``.
    """
    squares = scores**2
    update = (scores * returns[:, :, None]).sum(axis=1)
    per_coordinate = scores * update[:, None, :] if exact else squares * returns[:, :, None]
    if exact:
        total = scores.sum(axis=1)
        constant = ((total * update).sum(axis=1), (total**2).sum(axis=1))
    else:
        constant = (per_coordinate.sum(axis=(1, 2)), squares.sum(axis=(1, 2)))
    return {
        "constant": constant,
        "time": (per_coordinate.sum(axis=2), squares.sum(axis=2)),
        "coordinate": (per_coordinate, squares),
    }


def form_updates(
    scores: np.ndarray, rewards: np.ndarray, reward_to_go: bool, population: dict[str, np.ndarray] | None, exact: bool
) -> dict[str, np.ndarray]:
    """
    One batch's update (mean over its episodes) without baseline, with the mean baseline and with each form.

    :param scores: ``(n, T, P)`` per-step scores of the batch.
    :param rewards: ``(n, T)`` rewards.
    :param reward_to_go: Reward-to-go or the whole return.
    :param population: Baselines set in advance (the form's value), or None: leave-one-out from the batch.
    :param exact: The exact minimiser instead of the diagonal form.
    :return: Update per estimator name, each ``(P,)``.
    """
    n = rewards.shape[0]
    returns = returns_of(rewards, reward_to_go)
    update = (scores * returns[:, :, None]).sum(axis=1)
    mean = (returns.sum(axis=0, keepdims=True) - returns) / (n - 1)
    out = {"none": update.mean(axis=0), "mean": (update - (scores * mean[:, :, None]).sum(axis=1)).mean(axis=0)}
    statistics = form_statistics(scores, returns, exact)
    for name in FORMS:
        if population is not None:
            baseline = np.broadcast_to(population[name], statistics[name][0].shape[1:])[None]
        else:
            numerator, denominator = statistics[name]
            others_num, others_den = numerator.sum(axis=0) - numerator, denominator.sum(axis=0) - denominator
            fallback = mean if name == "time" else mean[:, :, None] if name == "coordinate" else mean[:, :1]
            baseline = np.where(others_den > 0, others_num / np.where(others_den > 0, others_den, 1.0), 0.0)
            baseline = np.where(others_den > 0, baseline, fallback[:, 0] if name == "constant" else fallback)
        if name == "coordinate":
            correction = (scores * baseline).sum(axis=1)
        elif name == "time":
            correction = (scores * baseline[..., None]).sum(axis=1)
        else:
            correction = scores.sum(axis=1) * np.reshape(baseline, (-1, 1))
        out[name] = (update - correction).mean(axis=0)
    return out


def form_values(
    mdp: TabularMDP, params: Params, reward_to_go: bool, exact: bool, size: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """
    The value of each baseline form, from ``size`` episodes simulated apart from the batches (in chunks).

    :param mdp: The MDP.
    :param params: The policy's parameters.
    :param reward_to_go: Reward-to-go or the whole return.
    :param exact: The exact minimiser instead of the diagonal form.
    :param size: Number of episodes.
    :param rng: Random generator.
    :return: Baseline per form: a scalar, ``(T,)`` and ``(T, P)``.
    """
    sums: dict[str, list[np.ndarray]] = {}
    for start in range(0, size, 5_000):
        scores, rewards = simulate_scores(mdp, params, min(5_000, size - start), rng)
        for name, (numerator, denominator) in form_statistics(scores, returns_of(rewards, reward_to_go), exact).items():
            totals = [numerator.sum(axis=0), denominator.sum(axis=0)]
            sums[name] = [a + b for a, b in zip(sums[name], totals)] if name in sums else totals
    return {name: numerator / np.maximum(denominator, 1e-300) for name, (numerator, denominator) in sums.items()}


def returns_of(rewards: np.ndarray, reward_to_go: bool) -> np.ndarray:
    """
    ``Ĝ_t`` of zero-padded rewards, ``gamma = 1``: the reward-to-go (0 past the end) or the whole return.

    :param rewards: ``(n, T)`` rewards, 0 past each episode's end.
    :param reward_to_go: Reward-to-go or the whole return.
    :return: ``(n, T)`` returns.
    """
    if reward_to_go:
        return np.cumsum(rewards[:, ::-1], axis=1)[:, ::-1]
    return np.repeat(rewards.sum(axis=1, keepdims=True), rewards.shape[1], axis=1)


def forms_study(batches: int, n_episodes: int, seed: int, population_size: int = 200_000) -> list[Row]:
    """
    The ``forms`` study (see the module docstring): relative bias and s.e. of each form against ``grad J``.

    :param batches: Batches per configuration.
    :param n_episodes: Episodes per batch.
    :param seed: Seed of the simulation.
    :param population_size: Episodes of the separate sample that sets the forms' values.
    :return: One row per (returns, form, estimation).
    """
    mdp = random_length_mdp()
    target = random_policy_params(mdp, seed=7)
    exact_gradient = flat_gradient(mdp.exact_gradient(*target, 1.0))
    rng = np.random.default_rng(seed)
    rows = []
    for reward_to_go in (True, False):
        returns = "reward-to-go" if reward_to_go else "whole return"
        values = {exact: form_values(mdp, target, reward_to_go, exact, population_size, rng) for exact in (False, True)}
        samples: dict[str, list[np.ndarray]] = {}
        for _ in range(batches):  # every form on the same batches
            scores, rewards = simulate_scores(mdp, target, n_episodes, rng)
            for exact in (False, True):
                form = "exact" if exact else "diagonal"
                for setting, fixed in (("leave-one-out", None), ("set in advance", values[exact])):
                    for name, update in form_updates(scores, rewards, reward_to_go, fixed, exact).items():
                        plain = name in ("none", "mean")
                        if not plain or (not exact and fixed is None):
                            label = name if plain else f"{form} {name} {setting}"
                            samples.setdefault(label, []).append(update)
        for label, updates in samples.items():
            row = Row(
                "forms", f"{returns}, {label}", 0.0, n_episodes, batches, **figures(np.array(updates), exact_gradient)
            )
            rows.append(row)
            print(f"    forms | {row.estimator:<55} | se {row.rel_se:.3f}", flush=True)
    return rows


def markdown_tables(rows: Sequence[Row]) -> str:
    """
    The rows as the markdown tables of ``docs/benchmarks.md``.

    :param rows: From :func:`run`.
    :return: Markdown text.
    """
    lines = []
    for study in ("baselines", "offpolicy", "forms"):
        chosen = [r for r in rows if r.study == study]
        if not chosen:
            continue
        lines += [
            "",
            "| estimator | behaviour distance | relative bias (noise) | relative s.e. | relative RMSE |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {r.estimator} | {r.distance} | {r.rel_bias:.3f} ({r.noise:.3f}) | {r.rel_se:.3f} | {r.rel_rmse:.3f} |"
            for r in chosen
        ]
    return "\n".join(lines)


def plot(rows: Sequence[Row], path: Path) -> None:
    """
    Bar charts: relative s.e. per baseline; relative bias and s.e. per off-policy estimator.

    :param rows: From :func:`run`.
    :param path: PNG file to write.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    baselines = [r for r in rows if r.study == "baselines"]
    offpolicy = [r for r in rows if r.study == "offpolicy"]
    figure, axes = plt.subplots(1, 2, figsize=(13, 4.8), gridspec_kw=dict(width_ratios=[1.6, 3]))
    if baselines:
        names = list(dict.fromkeys(r.estimator.split("baseline=")[1] for r in baselines))
        x = np.arange(len(names))
        for i, returns in enumerate(("reward-to-go", "whole return")):
            by_name = {
                r.estimator.split("baseline=")[1]: r.rel_se for r in baselines if r.estimator.startswith(returns)
            }
            heights = [by_name.get(name, np.nan) for name in names]
            axes[0].bar(x + (i - 0.5) * 0.4, heights, 0.4, label=returns)
        axes[0].set_xticks(x, names, rotation=35, ha="right", fontsize=8)
        axes[0].set_title(f"REINFORCE, {baselines[0].n_episodes} episodes: relative s.e.", fontsize=9)
        axes[0].set_ylabel("relative standard error of one estimate")
        axes[0].legend(fontsize=8)
    if offpolicy:
        names = list(dict.fromkeys(r.estimator for r in offpolicy))
        distances = sorted({r.distance for r in offpolicy})
        x = np.arange(len(names))
        width = 0.8 / (2 * len(distances))
        for i, distance in enumerate(distances):
            by_name = {r.estimator: r for r in offpolicy if r.distance == distance}
            offset = (2 * i - len(distances)) * width
            axes[1].bar(x + offset, [by_name[n].rel_bias for n in names], width, label=f"bias, d={distance}")
            axes[1].bar(x + offset + width, [by_name[n].rel_se for n in names], width, label=f"s.e., d={distance}")
        axes[1].set_xticks(x + width / 2, names, rotation=30, ha="right", fontsize=8)
        axes[1].set_yscale("log")
        axes[1].set_title("OffPolicyPG (mean baseline): relative bias and s.e.")
        axes[1].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv: Sequence[str] | None = None) -> None:
    """
    Command-line entry point (see the module docstring).

    :param argv: Arguments (default: ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--studies", nargs="+", default=["baselines", "offpolicy"], choices=["baselines", "offpolicy", "forms"]
    )
    parser.add_argument("--draws", type=int, default=400)
    parser.add_argument("--n-episodes", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tag", default="")
    parser.add_argument("--results-dir", type=Path, default=RESULTS, help="folder of the result files")
    parser.add_argument("--quick", action="store_true", help="20 draws per estimator")
    args = parser.parse_args(argv)
    if args.quick:
        args.draws, args.tag = 20, args.tag or "_quick"
    th.set_num_threads(1)
    rows = run(args.studies, args.draws, args.n_episodes, args.seed)
    if "forms" in args.studies:
        rows += forms_study(args.draws, args.n_episodes, args.seed)
    print(markdown_tables(rows))
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / f"gradient_quality{args.tag}.json").write_text(json.dumps([asdict(r) for r in rows], indent=1))
    if any(row.study != "forms" for row in rows):  # the forms study has no plot
        plot(rows, args.results_dir / f"gradient_quality{args.tag}.png")


if __name__ == "__main__":
    main()
