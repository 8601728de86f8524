"""Sample efficiency: env steps to solve, for REINFORCE and OffPolicyPG next to SB3's A2C and PPO.

Each algorithm is built by rl-zoo3's ``ExperimentManager`` from its hyperparameter file (ours from
``hyperparams/``, rl-zoo3's tuned ``a2c.yml`` and ``ppo.yml`` for SB3's), trained for the env's budget
(``ENVS``, the same for every algorithm) and evaluated on deterministic episodes every ``eval_freq``
env steps.  Per run it records the evaluation curve, ``reached`` (env steps at the first evaluation at
or above the threshold), ``stayed`` (env steps from which every later evaluation is, at least
``STOP_AFTER`` of them; the run then stops), the final return (the last evaluation's), the wall time and,
where the env's setting asks for one (``final_episodes``; LunarLander-v3), the returns of a last, longer
evaluation of the trained model with each policy.

Usage (from the repository root)::

    python -m benchmarks.sample_efficiency --envs CartPole-v1 Acrobot-v1 LunarLander-v3 --seeds 0 1 2 3 4 --workers 2
    python -m benchmarks.sample_efficiency --report        # tables and PNGs from the results so far
    python -m benchmarks.sample_efficiency --quick         # smoke run, about a minute

Runs are appended to ``benchmarks/results/sample_efficiency<tag>.jsonl`` as they finish (a run already
there is not repeated, so an interrupted benchmark resumes); the report writes the summary
``sample_efficiency<tag>.json`` and ``sample_efficiency<tag>_<env>.png``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import statistics
import tempfile
import time
import warnings
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sb3_contrib.common.maskable.evaluation import evaluate_policy as evaluate_masked_policy
from sb3_contrib.common.maskable.utils import is_masking_supported
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import sync_envs_normalization

RESULTS = Path(__file__).resolve().parent / "results"

#: The algorithms compared: ours first, then SB3's, then sb3-contrib's ``MaskablePPO`` (masked tasks) and
#: ``RecurrentPPO`` (``ppo_lstm``: CartPoleNoVel-v1).
ALGOS = ("reinforce", "offpolicy_pg", "a2c", "ppo", "ppo_mask", "ppo_lstm")
#: The algorithms run when none are named.
DEFAULT_ALGOS = ("reinforce", "offpolicy_pg", "a2c", "ppo")
#: Algorithms rl-zoo3 does not register, with their class and the hyperparameter file of this folder
#: (rl-zoo3 has no entries for them): name -> (module, class, file).
EXTRA_ALGOS = {
    "ppo_mask": ("sb3_contrib", "MaskablePPO", Path(__file__).resolve().parent / "hyperparams" / "ppo_mask.yml")
}


@dataclass(frozen=True)
class EnvSetting:
    """How one env is benchmarked.

    :param threshold: Evaluation return that counts as solved.
    :param budget: Env steps per run (the same for every algorithm).
    :param eval_freq: Env steps between evaluations.
    :param eval_episodes: Deterministic episodes per evaluation.
    :param final_episodes: Episodes of a last evaluation of the trained model, each way (0: none); with
        many episodes it measures the final policy far more precisely than one evaluation of the curve.
    """

    threshold: float
    budget: int
    eval_freq: int
    eval_episodes: int = 10
    final_episodes: int = 0


#: CartPole-v1 and Acrobot-v1 thresholds: the issue's (475, -100); LunarLander-v3: 200 (its "solved");
#: Pendulum-v1: -200 (it has no official threshold; about what rl-zoo3's tuned agents reach).
ENVS: dict[str, EnvSetting] = {
    "CartPole-v1": EnvSetting(threshold=475.0, budget=100_000, eval_freq=5_000, eval_episodes=5),
    "Acrobot-v1": EnvSetting(threshold=-100.0, budget=200_000, eval_freq=10_000, eval_episodes=5),
    # One evaluation swings by 100 or more on LunarLander-v3: the final model is also evaluated on 100 episodes.
    "LunarLander-v3": EnvSetting(
        threshold=200.0, budget=200_000, eval_freq=20_000, eval_episodes=5, final_episodes=100
    ),
    "Pendulum-v1": EnvSetting(threshold=-200.0, budget=1_000_000, eval_freq=50_000, eval_episodes=5),
    # Action masks (info["action_mask"], through InfoActionMasker); 8 is gymnasium's reward_threshold.
    "Taxi-v4": EnvSetting(threshold=8.0, budget=500_000, eval_freq=25_000, eval_episodes=10),
    # rl-zoo3's CartPole-v1 without velocities: a policy needs memory (docs/recurrent.md); not run by default
    "CartPoleNoVel-v1": EnvSetting(threshold=475.0, budget=100_000, eval_freq=5_000, eval_episodes=5),
}


def env_setting(
    env_id: str,
    budget: int | None = None,
    eval_freq: int | None = None,
    eval_episodes: int | None = None,
    final_episodes: int | None = None,
) -> EnvSetting:
    """
    The env's benchmark setting from :data:`ENVS`, with the values given here replacing its own.

    :param env_id: A key of :data:`ENVS`.
    :param budget: Env steps per run (None: the env's).
    :param eval_freq: Env steps between evaluations (None: the env's).
    :param eval_episodes: Deterministic episodes per evaluation (None: the env's).
    :param final_episodes: Episodes of the final evaluation, each way (None: the env's).
    :return: The setting.
    """
    given = dict(budget=budget, eval_freq=eval_freq, eval_episodes=eval_episodes, final_episodes=final_episodes)
    return EnvSetting(**{**asdict(ENVS[env_id]), **{k: v for k, v in given.items() if v is not None}})


#: A run stops once this many evaluations in a row reached the threshold.
STOP_AFTER = 4


@dataclass
class RunResult:
    """One training run: its evaluation curve and the figures derived from it.

    :param env: Env id.
    :param algo: rl-zoo3 algorithm name.
    :param seed: Seed given to rl-zoo3.
    :param budget: Env-step budget of the run.
    :param threshold: Solved threshold.
    :param steps: Env steps at each evaluation.
    :param returns: Mean evaluation return at each evaluation.
    :param wall_s: Wall time of the whole run (training and evaluations).
    :param n_envs: Number of training envs (from the hyperparameter file).
    :param stop_after: Evaluations in a row at or above the threshold that end the run (and that
        ``stayed`` requires).
    :param stochastic_returns: Mean return of the same number of episodes played by the stochastic
        policy (actions sampled), at each evaluation.
    :param diagnostics: At each evaluation, the training statistics averaged over the updates since
        the previous one (see :class:`EvaluateAndStop`).
    :param final_episode_returns: Returns of the final evaluation's episodes, deterministic policy
        (empty when the setting asks for none).
    :param final_stochastic_episode_returns: The same with the stochastic policy.
    """

    env: str
    algo: str
    seed: int
    budget: int
    threshold: float
    steps: list[int] = field(default_factory=list)
    returns: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    n_envs: int = 1
    stop_after: int = STOP_AFTER
    stochastic_returns: list[float] = field(default_factory=list)
    diagnostics: list[dict[str, float]] = field(default_factory=list)
    final_episode_returns: list[float] = field(default_factory=list)
    final_stochastic_episode_returns: list[float] = field(default_factory=list)

    @property
    def reached(self) -> int | None:
        """Env steps at the first evaluation at or above the threshold (None: never)."""
        return next((s for s, r in zip(self.steps, self.returns) if r >= self.threshold), None)

    @property
    def stayed(self) -> int | None:
        """
        Env steps at the start of the final run of evaluations at or above the threshold, if that run
        has at least ``stop_after`` evaluations (None otherwise: a run that only just got there at the
        end of its budget has not shown that it stays).
        """
        first, streak = None, 0
        for step, value in zip(self.steps, self.returns):
            if value >= self.threshold:
                first, streak = (step if first is None else first), streak + 1
            else:
                first, streak = None, 0
        return first if streak >= self.stop_after else None

    @property
    def final_return(self) -> float:
        """Mean return of the last evaluation."""
        return self.returns[-1] if self.returns else float("nan")

    @property
    def final_stochastic_return(self) -> float:
        """Mean return of the last evaluation of the stochastic policy (NaN when not measured)."""
        return self.stochastic_returns[-1] if self.stochastic_returns else float("nan")

    @property
    def final_eval_return(self) -> float:
        """Mean return of the final evaluation's episodes, deterministic policy (NaN when there was none)."""
        return _mean_or_nan(self.final_episode_returns)

    @property
    def final_eval_stochastic_return(self) -> float:
        """Mean return of the final evaluation's episodes, stochastic policy (NaN when there was none)."""
        return _mean_or_nan(self.final_stochastic_episode_returns)


def _mean_or_nan(values: Sequence[float]) -> float:
    """Mean of ``values`` (NaN when there are none)."""
    return float(np.mean(values)) if len(values) else float("nan")


#: Training statistics read from the logger at each rollout end (the last update's) and averaged
#: between evaluations; ``clipped`` is 1 for an update whose gradient norm exceeded ``max_grad_norm``
#: (NaN for SB3's algorithms, which do not log the norm).
DIAGNOSTICS = (
    "entropy",
    "explained_variance",
    "grad_norm",
    "clipped",
    "ep_len_mean",
    "ep_rew_mean",
    "approx_kl",  # PPO's, and OffPolicyPG's with target_kl
    "gradient_steps",  # OffPolicyPG's gradient steps per rollout (fewer than gradient_steps when target_kl stops them)
)


def play_episodes(model: Any, training_env: Any, eval_env: Any, episodes: int, deterministic: bool) -> list[float]:
    """
    The returns of ``episodes`` evaluation episodes of ``model``.

    :param model: The trained model.
    :param training_env: Its training env (``VecNormalize`` statistics are synced from it).
    :param eval_env: The evaluation env.
    :param episodes: Number of episodes.
    :param deterministic: Play the policy's mode (else sample actions).
    :return: One return per episode.
    """
    sync_envs_normalization(training_env, eval_env)
    # sb3-contrib's evaluation passes the eval env's action masks to predict (docs/masking.md).
    evaluate = evaluate_masked_policy if is_masking_supported(eval_env) else evaluate_policy
    returns, _ = evaluate(
        model, eval_env, n_eval_episodes=episodes, deterministic=deterministic, return_episode_rewards=True
    )
    return [float(r) for r in returns]


class EvaluateAndStop(BaseCallback):
    """
    Evaluate every ``setting.eval_freq`` env steps (and at the end) into ``result``, with the
    deterministic and the stochastic policy; stop once ``stop_after`` deterministic evaluations in a
    row reached the threshold.

    With each evaluation it records the training statistics of :data:`DIAGNOSTICS`, averaged over
    the updates since the previous evaluation, and ``optimizer_steps``, the number of optimiser
    steps taken so far (counted by a hook on the policy's optimiser, so that a PPO minibatch step
    counts as one, like a REINFORCE update).

    :param eval_env: The evaluation env (its ``VecNormalize`` statistics are synced from training).
    :param setting: Threshold and evaluation schedule.
    :param result: Where the evaluations are recorded.
    :param stop_after: Evaluations in a row at or above the threshold that end training.
    """

    def __init__(self, eval_env: Any, setting: EnvSetting, result: RunResult, stop_after: int) -> None:
        super().__init__()
        self.eval_env, self.setting, self.result, self.stop_after = eval_env, setting, result, stop_after
        self.next_eval = 0
        self.in_a_row = 0
        self.optimizer_steps = 0
        self.updates: list[dict[str, float]] = []

    def _init_callback(self) -> None:
        def count(*_: Any) -> None:
            self.optimizer_steps += 1

        self.model.policy.optimizer.register_step_post_hook(count)

    def _on_rollout_end(self) -> None:
        # The logger still holds the previous update's train/ values (it is dumped after this).
        values = self.model.logger.name_to_value
        if "train/entropy_loss" not in values:
            return
        max_grad_norm = getattr(self.model, "max_grad_norm", None)
        grad_norm = values.get("train/grad_norm", float("nan"))
        buffer = self.model.ep_info_buffer or []
        self.updates.append(
            dict(
                entropy=-values["train/entropy_loss"],
                explained_variance=values.get("train/explained_variance", float("nan")),
                grad_norm=grad_norm,
                # nothing is clipped without max_grad_norm; unknown when the norm is not logged (SB3's own)
                clipped=0.0
                if max_grad_norm is None
                else float(grad_norm > max_grad_norm)
                if grad_norm == grad_norm
                else float("nan"),
                ep_len_mean=float(np.mean([info["l"] for info in buffer])) if buffer else float("nan"),
                ep_rew_mean=float(np.mean([info["r"] for info in buffer])) if buffer else float("nan"),
                approx_kl=values.get("train/approx_kl", float("nan")),
                gradient_steps=values.get("train/gradient_steps", float("nan")),
            )
        )

    def evaluate(self) -> None:
        """Play the evaluation episodes with each policy and record their mean returns and the diagnostics."""
        means = [
            float(np.mean(play_episodes(self.model, self.training_env, self.eval_env, self.setting.eval_episodes, d)))
            for d in (True, False)
        ]
        self.result.steps.append(int(self.num_timesteps))
        self.result.returns.append(means[0])
        self.result.stochastic_returns.append(means[1])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # no update yet: the means are NaN
            averages = {name: float(np.nanmean([u[name] for u in self.updates])) for name in DIAGNOSTICS}
        self.result.diagnostics.append(dict(averages, optimizer_steps=self.optimizer_steps))
        self.updates = []
        self.in_a_row = self.in_a_row + 1 if means[0] >= self.setting.threshold else 0
        self.next_eval += self.setting.eval_freq

    def _on_step(self) -> bool:
        if self.num_timesteps >= self.next_eval:
            self.evaluate()
        return self.in_a_row < self.stop_after

    def _on_training_end(self) -> None:
        if not self.result.steps or self.result.steps[-1] != self.num_timesteps:
            self.evaluate()


def run_one(
    env_id: str,
    algo: str,
    seed: int,
    setting: EnvSetting,
    stop_after: int = STOP_AFTER,
    hyperparams: dict[str, Any] | None = None,
) -> RunResult:
    """
    Train one algorithm on one env with its rl-zoo3 hyperparameters and evaluate it along the way.

    :param env_id: Gymnasium env id.
    :param algo: One of :data:`ALGOS`.
    :param seed: Seed of the run.
    :param setting: Budget, threshold and evaluation schedule.
    :param stop_after: Stop once this many evaluations in a row reached the threshold.
    :param hyperparams: Entries that replace those of the hyperparameter file (rl-zoo3's ``-params``).
    :return: The run's curve and figures.
    """
    import argparse as _argparse

    import rl_zoo3.import_envs  # noqa: F401 (registers CartPoleNoVel-v1 in this process)
    import torch as th
    from rl_zoo3.exp_manager import ExperimentManager

    from sb3_reinforce.zoo.hyperparams import hyperparams_file
    from sb3_reinforce.zoo.registry import ZOO_ALGOS, register

    th.set_num_threads(1)
    register()
    config = str(hyperparams_file(algo)) if algo in ZOO_ALGOS else None
    if algo in EXTRA_ALGOS:
        from rl_zoo3.utils import ALGOS as ZOO_REGISTRY

        module, class_name, path = EXTRA_ALGOS[algo]
        ZOO_REGISTRY[algo] = getattr(importlib.import_module(module), class_name)
        config = str(path)
    result = RunResult(
        env=env_id, algo=algo, seed=seed, budget=setting.budget, threshold=setting.threshold, stop_after=stop_after
    )
    with tempfile.TemporaryDirectory() as log_folder:
        manager = ExperimentManager(
            _argparse.Namespace(),
            algo,
            env_id,
            log_folder,
            n_timesteps=setting.budget,
            eval_freq=-1,
            seed=seed,
            verbose=0,
            device="cpu",
            config=config,
            hyperparams=hyperparams,
        )
        with contextlib.redirect_stdout(io.StringIO()):  # rl-zoo3 prints the hyperparameters and paths
            setup = manager.setup_experiment()
        assert setup is not None
        model, _ = setup
        eval_env = manager.create_envs(1, eval_env=True)
        result.n_envs = model.n_envs
        callback = EvaluateAndStop(eval_env, setting, result, stop_after)
        start = time.perf_counter()
        model.learn(setting.budget, callback=callback)
        result.wall_s = time.perf_counter() - start
        assert model.env is not None
        if setting.final_episodes > 0:
            result.final_episode_returns, result.final_stochastic_episode_returns = (
                play_episodes(model, model.env, eval_env, setting.final_episodes, d) for d in (True, False)
            )
        eval_env.close()
        model.env.close()
    return result


def load_runs(path: Path) -> list[RunResult]:
    """
    Read the runs recorded so far.

    :param path: A ``.jsonl`` file written by :func:`main` (missing: no runs).
    :return: The runs, in file order.
    """
    if not path.exists():
        return []
    return [RunResult(**json.loads(line)) for line in path.read_text().splitlines() if line.strip()]


def _median_or_none(values: Sequence[int | None]) -> float | None:
    """Median over all runs, counting a run that never got there as infinitely slow; None if most never did."""
    done = sorted(v for v in values if v is not None)
    if len(done) * 2 <= len(values):
        return None
    padded = done + [float("inf")] * (len(values) - len(done))
    return float(statistics.median(padded))


def _median_of_all(values: Sequence[float]) -> float:
    """Median over all runs; NaN when any run lacks the figure (a median over some seeds would mislead)."""
    return float("nan") if any(np.isnan(v) for v in values) else float(statistics.median(values))


def summarize(runs: Iterable[RunResult]) -> list[dict[str, Any]]:
    """
    One row per (env, algo): medians over seeds of steps to reach/stay, final return, wall time.

    A median of steps is reported only when more than half of the seeds got there (the others
    count as slower than any); otherwise it is None.

    :param runs: Runs of any envs and algorithms.
    :return: Rows sorted by env (as in :data:`ENVS`) and algorithm (as in :data:`ALGOS`).
    """
    groups: dict[tuple[str, str], list[RunResult]] = {}
    for run in runs:
        groups.setdefault((run.env, run.algo), []).append(run)
    env_order = {env: i for i, env in enumerate(ENVS)}
    rows = []
    for (env, algo), group in sorted(
        groups.items(), key=lambda kv: (env_order.get(kv[0][0], 99), kv[0][0], ALGOS.index(kv[0][1]))
    ):
        group.sort(key=lambda r: r.seed)
        final_eval = [r.final_eval_return for r in group]
        final_eval_stochastic = [r.final_eval_stochastic_return for r in group]
        rows.append(
            dict(
                env=env,
                algo=algo,
                seeds=[r.seed for r in group],
                budget=group[0].budget,
                threshold=group[0].threshold,
                n_envs=group[0].n_envs,
                reached=[r.reached for r in group],
                stayed=[r.stayed for r in group],
                median_reached=_median_or_none([r.reached for r in group]),
                median_stayed=_median_or_none([r.stayed for r in group]),
                n_reached=sum(r.reached is not None for r in group),
                n_stayed=sum(r.stayed is not None for r in group),
                final_returns=[r.final_return for r in group],
                median_final_return=float(statistics.median(r.final_return for r in group)),
                final_stochastic_returns=[r.final_stochastic_return for r in group],
                median_final_stochastic_return=float(statistics.median(r.final_stochastic_return for r in group)),
                final_episodes=min(len(r.final_episode_returns) for r in group),
                final_eval_returns=final_eval,
                median_final_eval_return=_median_of_all(final_eval),
                final_eval_stochastic_returns=final_eval_stochastic,
                median_final_eval_stochastic_return=_median_of_all(final_eval_stochastic),
                median_wall_s=float(statistics.median(r.wall_s for r in group)),
            )
        )
    return rows


def _steps(value: float | None) -> str:
    return "–" if value is None else f"{int(value):,}".replace(",", " ")


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """
    The summary as a markdown table (the one in ``docs/benchmarks.md``).

    :param rows: Rows from :func:`summarize`.
    :return: Markdown text; the final evaluation's column shows its number of episodes and the median
        over seeds of each policy's mean return (deterministic / stochastic), "–" for runs without one.
    """
    lines = [
        "| env | algorithm | n_envs | reached (median steps) | stayed (median steps) | final return (median) "
        "| final return, stochastic policy (median) | final evaluation: episodes, deterministic / stochastic "
        "(median) | wall time (median) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        n = len(row["seeds"])
        reached = f"{_steps(row['median_reached'])} ({row['n_reached']}/{n})"
        stochastic = row.get("median_final_stochastic_return", float("nan"))
        final = "–"
        if row.get("final_episodes"):
            final = (
                f"{row['final_episodes']}: {row['median_final_eval_return']:.1f} / "
                f"{row['median_final_eval_stochastic_return']:.1f}"
            )
        lines.append(
            f"| {row['env']} | {row['algo']} | {row['n_envs']} | {reached} "
            f"| {_steps(row['median_stayed'])} ({row['n_stayed']}/{n}) | {row['median_final_return']:.1f} "
            f"| {'–' if np.isnan(stochastic) else f'{stochastic:.1f}'} | {final} | {row['median_wall_s']:.0f} s |"
        )
    return "\n".join(lines)


def diagnostics_table(runs: Sequence[RunResult], fractions: Sequence[float] = (0.1, 0.25, 0.5, 0.75, 1.0)) -> str:
    """
    Training statistics over the course of the runs, per env and algorithm (medians over seeds).

    :param runs: Runs with diagnostics (others are skipped).
    :param fractions: Points of the budget at which to read each run (its evaluation at or just
        after that many env steps).
    :return: Markdown table: evaluation returns of both policies, optimiser steps so far, entropy,
        explained variance of the value head, gradient norm, fraction of updates clipped and
        training episode length, each averaged over the updates since the previous evaluation.
    """
    lines = [
        "| env | algorithm | env steps | return (deterministic) | return (stochastic) | optimiser steps | entropy "
        "| explained variance | gradient norm | clipped | episode length |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    groups: dict[tuple[str, str], list[RunResult]] = {}
    for run in runs:
        if run.diagnostics:
            groups.setdefault((run.env, run.algo), []).append(run)
    for (env, algo), group in groups.items():
        for fraction in fractions:
            target = fraction * group[0].budget
            picked = [
                (run, next((i for i, s in enumerate(run.steps) if s >= target), len(run.steps) - 1)) for run in group
            ]

            def median(values: Iterable[float]) -> float:
                finite = [v for v in values if not np.isnan(v)]
                return float(statistics.median(finite)) if finite else float("nan")

            stats = {
                "det": median(run.returns[i] for run, i in picked),
                "sto": median(run.stochastic_returns[i] for run, i in picked),
                **{
                    name: median(run.diagnostics[i].get(name, float("nan")) for run, i in picked)
                    for name in ("optimizer_steps", *DIAGNOSTICS)
                },
            }
            lines.append(
                f"| {env} | {algo} | {_steps(target)} | {stats['det']:.1f} | {stats['sto']:.1f} "
                f"| {_steps(stats['optimizer_steps'])} | {stats['entropy']:.3f} | {stats['explained_variance']:.2f} "
                f"| {stats['grad_norm']:.2f} | {stats['clipped']:.2f} | {stats['ep_len_mean']:.0f} |"
            )
    return "\n".join(lines)


def _curve_on_grid(run: RunResult, grid: np.ndarray) -> np.ndarray:
    """The run's evaluation curve at the grid's steps (step function; after an early stop, the last value)."""
    steps = np.asarray(run.steps)
    index = np.searchsorted(steps, grid, side="right") - 1
    values = np.asarray(run.returns, dtype=float)[np.clip(index, 0, None)]
    values[index < 0] = np.nan
    return values


def plot_curves(runs: Sequence[RunResult], env_id: str, path: Path) -> None:
    """
    Learning curves of one env: per algorithm the median over seeds and the range between the
    25th and 75th percentiles, x = env steps.

    :param runs: Runs (only those of ``env_id`` are drawn).
    :param env_id: The env.
    :param path: PNG file to write.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [r for r in runs if r.env == env_id and r.steps]
    if not runs:
        return
    budget = max(r.budget for r in runs)
    grid = np.linspace(0, budget, 201)
    figure, axes = plt.subplots(figsize=(7, 4.2))
    for algo in ALGOS:
        curves = np.array([_curve_on_grid(r, grid) for r in runs if r.algo == algo])
        if len(curves) == 0:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns before the first evaluation
            median = np.nanmedian(curves, axis=0)
            low, high = np.nanpercentile(curves, [25, 75], axis=0)
        (line,) = axes.plot(grid, median, label=f"{algo} ({len(curves)} seeds)")
        axes.fill_between(grid, low, high, color=line.get_color(), alpha=0.2)
    axes.axhline(runs[0].threshold, color="grey", linestyle="--", linewidth=1, label="threshold")
    axes.set_xlabel("env steps")
    axes.set_ylabel("evaluation return (deterministic)")
    axes.set_title(f"{env_id}: median and 25-75% over seeds")
    axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def report(runs_path: Path, tag: str, results_dir: Path = RESULTS) -> list[dict[str, Any]]:
    """
    Write the summary JSON and one PNG per env, and print the markdown table.

    :param runs_path: The ``.jsonl`` file of runs.
    :param tag: Suffix of the output names.
    :param results_dir: Folder of the outputs.
    :return: The summary rows.
    """
    runs = load_runs(runs_path)
    rows = summarize(runs)
    (results_dir / f"sample_efficiency{tag}.json").write_text(json.dumps(rows, indent=1))
    for env_id in sorted({r.env for r in runs}):
        plot_curves(runs, env_id, results_dir / f"sample_efficiency{tag}_{env_id}.png")
    print(markdown_table(rows))
    if any(run.diagnostics for run in runs):
        print()
        print(diagnostics_table(runs))
    return rows


def _progress(total: int) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc="runs", unit="run", dynamic_ncols=True)


def main(argv: Sequence[str] | None = None) -> None:
    """
    Command-line entry point (see the module docstring).

    :param argv: Arguments (default: ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="+", default=[e for e in ENVS if e != "CartPoleNoVel-v1"], choices=list(ENVS))
    parser.add_argument("--algos", nargs="+", default=list(DEFAULT_ALGOS), choices=list(ALGOS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--workers", type=int, default=1, help="runs in parallel (one process and torch thread each)")
    parser.add_argument("--budget", type=int, default=None, help="override every env's budget")
    parser.add_argument("--eval-freq", type=int, default=None, help="override every env's evaluation interval")
    parser.add_argument("--eval-episodes", type=int, default=None, help="override every env's evaluation episodes")
    parser.add_argument(
        "--final-episodes",
        type=int,
        default=None,
        help="episodes of a last evaluation of each trained model, each way (default: the env's; 0: none)",
    )
    parser.add_argument("--tag", default="", help="suffix of the result files, e.g. _quick")
    parser.add_argument("--results-dir", type=Path, default=RESULTS, help="folder of the result files")
    parser.add_argument(
        "--hyperparams",
        type=json.loads,
        default=None,
        help="JSON dict replacing entries of the hyperparameter files (as rl-zoo3's -params); use with a --tag",
    )
    parser.add_argument("--report", action="store_true", help="only write the tables and plots from the results")
    parser.add_argument("--quick", action="store_true", help="smoke run: CartPole-v1, seed 0, 5 000 steps")
    args = parser.parse_args(argv)

    if args.quick:
        args.envs, args.seeds, args.tag = ["CartPole-v1"], [0], args.tag or "_quick"
    args.results_dir.mkdir(parents=True, exist_ok=True)
    runs_path = args.results_dir / f"sample_efficiency{args.tag}.jsonl"
    if args.report:
        report(runs_path, args.tag, args.results_dir)
        return

    overrides = {
        "budget": args.budget,
        "eval_freq": args.eval_freq,
        "eval_episodes": args.eval_episodes,
        "final_episodes": args.final_episodes,
    }
    if args.quick:
        overrides = {"budget": 5_000, "eval_freq": 1_000, "eval_episodes": 2, "final_episodes": 2}
    settings = {env: env_setting(env, **overrides) for env in args.envs}
    done = {(r.env, r.algo, r.seed) for r in load_runs(runs_path)}
    jobs = [
        (env, algo, seed)
        for env in args.envs
        for seed in args.seeds
        for algo in args.algos
        if (env, algo, seed) not in done
    ]
    print(f"{len(jobs)} runs to do ({len(done)} already in {runs_path})", flush=True)
    with _progress(len(jobs)) as bar, ProcessPoolExecutor(max_workers=args.workers) as pool:
        futures = {
            pool.submit(run_one, env, algo, seed, settings[env], STOP_AFTER, args.hyperparams): (env, algo, seed)
            for env, algo, seed in jobs
        }
        for future in as_completed(futures):
            result = future.result()
            with runs_path.open("a") as file:
                file.write(json.dumps(asdict(result)) + "\n")
            bar.write(
                f"{result.env} {result.algo} seed {result.seed}: reached {_steps(result.reached)}, "
                f"stayed {_steps(result.stayed)}, final {result.final_return:.1f} "
                f"({len(result.final_episode_returns)} episodes: {result.final_eval_return:.1f}), {result.wall_s:.0f} s"
            )
            bar.update()
    report(runs_path, args.tag, args.results_dir)


if __name__ == "__main__":
    main()
