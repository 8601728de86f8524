"""Throughput: env steps per second of ``learn()`` next to the raw env and a rollout-only loop.

CartPole-v1 in a ``DummyVecEnv`` of ``--n-envs`` envs (8 by default), one process, one torch thread.
Each entry is timed ``--repeats`` times in turn (so that a change of machine load hits every entry
alike) and the median reported:

- ``env``: the vectorised env alone, stepped with random actions;
- ``rollout``: the env driven by ``policy.predict`` of an ``MlpPolicy``, no learning;
- ``reinforce``, ``offpolicy_pg``, ``a2c``, ``ppo``: ``learn()`` with each class's default
  hyperparameters, after an untimed warm-up of ``--warmup`` steps;
- not run by default, ``reinforce_lstm``, ``offpolicy_pg_lstm`` and ``ppo_lstm`` (sb3-contrib's
  ``RecurrentPPO``): the same with ``MlpLstmPolicy`` (``LSTM_POLICY_KWARGS`` for all three).

``--masked`` measures the same on a task with action masks, Taxi-v4 (masks from ``info`` through
``InfoActionMasker``), with sb3-contrib's ``MaskablePPO`` as the reference: entries ``env``,
``reinforce``, ``offpolicy_pg``, ``ppo_mask`` (masks read from every env before every step).

``--scores`` measures the per-step scores of the optimal baselines (``baselines.per_step_scores``)
on batches of ``--score-steps`` CartPole-v1 steps with the default ``MlpPolicy``: seconds per
batch, chunk by chunk (a feed-forward policy) and through the whole batch's graph (the way a
recurrent policy needs).

``--guard`` measures instead what the non-finite guard of the optimiser step costs on a
``CnnPolicy`` (Atari-sized frames, 84x84x4): milliseconds per update of a plain ``optimizer.step()``,
of the guarded step, and of the copies the guard before commit d8b0bac made at every update (a
deep copy of the optimiser state, a clone of the parameters, one finiteness check per tensor),
next to the whole update (forward, backward, step) on a batch of ``--guard-steps`` frames.

Usage (from the repository root)::

    python -m benchmarks.throughput                 # 5 repeats of 20 000 steps each
    python -m benchmarks.throughput --quick         # smoke run, seconds
    python -m benchmarks.throughput --guard         # the guard's cost, CnnPolicy
    python -m benchmarks.throughput --scores        # per-step scores of the optimal baselines
    python -m benchmarks.throughput --masked --tag _masked   # Taxi-v4 with action masks, next to MaskablePPO

The medians and the ratios to A2C are printed and written to ``benchmarks/results/throughput<tag>.json``
(``throughput_guard<tag>.json`` for ``--guard``).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"

#: What is measured, in the order of the table.
ENTRIES = ("env", "rollout", "reinforce", "offpolicy_pg", "a2c", "ppo")
#: What ``--masked`` measures (on Taxi-v4 with action masks).
MASKED_ENTRIES = ("env", "reinforce", "offpolicy_pg", "ppo_mask")
#: The env of each mode.
ENV_IDS = {False: "CartPole-v1", True: "Taxi-v4"}
#: The recurrent entries (``MlpLstmPolicy``, CartPole-v1), measured on request (``--entries``).
LSTM_ENTRIES = ("reinforce_lstm", "offpolicy_pg_lstm", "ppo_lstm")
#: The LSTM policy of every recurrent entry (RecurrentPPO's rl-zoo3 CartPoleNoVel-v1 size).
LSTM_POLICY_KWARGS: dict[str, Any] = {"lstm_hidden_size": 64, "net_arch": {"pi": [64], "vf": [64]}}


def _make_env(n_envs: int, seed: int, masked: bool = False) -> Any:
    from stable_baselines3.common.env_util import make_vec_env

    from sb3_reinforce.common.masking import InfoActionMasker

    wrapper = InfoActionMasker if masked else None
    return make_vec_env(ENV_IDS[masked], n_envs=n_envs, seed=seed, wrapper_class=wrapper)


def _algorithm(name: str) -> Any:
    from sb3_contrib import MaskablePPO, RecurrentPPO
    from stable_baselines3 import A2C, PPO

    from sb3_reinforce import REINFORCE, OffPolicyPG

    classes = {"reinforce": REINFORCE, "offpolicy_pg": OffPolicyPG, "a2c": A2C, "ppo": PPO}
    classes.update(ppo_mask=MaskablePPO, ppo_lstm=RecurrentPPO)
    return classes[name if name in classes else name.removesuffix("_lstm")]


def time_env(n_envs: int, steps: int, seed: int, masked: bool = False) -> float:
    """
    Env steps per second of the vectorised env stepped with random actions.

    :param n_envs: Number of envs.
    :param steps: Env steps to time (``steps // n_envs`` vector steps).
    :param seed: Seed of the envs and actions.
    :param masked: Taxi-v4 with action masks instead of CartPole-v1.
    :return: Env steps per second.
    """
    env = _make_env(n_envs, seed, masked)
    env.reset()
    actions = np.random.default_rng(seed).integers(0, env.action_space.n, size=(steps // n_envs, n_envs))
    start = time.perf_counter()
    for action in actions:
        env.step(action)
    elapsed = time.perf_counter() - start
    env.close()
    return len(actions) * n_envs / elapsed


def time_rollout(n_envs: int, steps: int, seed: int) -> float:
    """
    Env steps per second of the env driven by a freshly built ``MlpPolicy`` through ``policy.predict``.

    :param n_envs: Number of envs.
    :param steps: Env steps to time.
    :param seed: Seed of the envs and the policy.
    :return: Env steps per second.
    """
    env = _make_env(n_envs, seed)
    model = _algorithm("a2c")("MlpPolicy", env, seed=seed, device="cpu")
    observations = env.reset()
    start = time.perf_counter()
    for _ in range(steps // n_envs):
        actions, _ = model.policy.predict(observations, deterministic=False)  # type: ignore[arg-type]
        observations, _, _, _ = env.step(actions)
    elapsed = time.perf_counter() - start
    env.close()
    return (steps // n_envs) * n_envs / elapsed


def build_learner(name: str, n_envs: int, seed: int, warmup: int, masked: bool = False) -> Any:
    """
    Build an algorithm with its default hyperparameters on ``n_envs`` envs and warm it up.

    :param name: ``"reinforce"``, ``"offpolicy_pg"``, ``"a2c"``, ``"ppo"``, ``"ppo_mask"``, or one of
        :data:`LSTM_ENTRIES`.
    :param n_envs: Number of envs.
    :param seed: Seed.
    :param warmup: Env steps learnt before timing (0: none).
    :param masked: Taxi-v4 with action masks instead of CartPole-v1.
    :return: The model.
    """
    if name in LSTM_ENTRIES:
        policy, kwargs = "MlpLstmPolicy", {"policy_kwargs": LSTM_POLICY_KWARGS}
    else:
        policy, kwargs = "MlpPolicy", {}
    model = _algorithm(name)(policy, _make_env(n_envs, seed, masked), seed=seed, device="cpu", **kwargs)
    if warmup:
        model.learn(warmup)
    return model


def time_learn(model: Any, steps: int) -> float:
    """
    Env steps per second of ``model.learn(steps)``, continuing the model's training.

    :param model: An SB3 algorithm.
    :param steps: Env steps to learn.
    :return: Env steps per second (by ``num_timesteps``).
    """
    before = model.num_timesteps
    start = time.perf_counter()
    model.learn(steps, reset_num_timesteps=False)
    return (model.num_timesteps - before) / (time.perf_counter() - start)


def measure(
    entries: Sequence[str], n_envs: int, steps: int, repeats: int, warmup: int, seed: int = 0, masked: bool = False
) -> dict[str, list[float]]:
    """
    Steps per second of every entry, ``repeats`` times in turn.

    :param entries: Names from :data:`ENTRIES` (:data:`MASKED_ENTRIES` when ``masked``).
    :param n_envs: Number of envs.
    :param steps: Env steps per timed measurement.
    :param repeats: Rounds over all entries.
    :param warmup: Warm-up env steps of each learner.
    :param seed: Seed.
    :param masked: Taxi-v4 with action masks instead of CartPole-v1.
    :return: Entry name -> the measured rates, one per round.
    """
    learners = {
        name: build_learner(name, n_envs, seed, warmup, masked) for name in entries if name not in ("env", "rollout")
    }
    timers: dict[str, Callable[[], float]] = {
        "env": lambda: time_env(n_envs, steps, seed, masked),
        "rollout": lambda: time_rollout(n_envs, steps, seed),
    }
    rates: dict[str, list[float]] = {name: [] for name in entries}
    for round_ in range(repeats):
        for name in entries:
            rate = timers[name]() if name in timers else time_learn(learners[name], steps)
            rates[name].append(rate)
            print(f"round {round_ + 1}/{repeats} {name:>13}: {rate:8.0f} steps/s", flush=True)
    return rates


def summarize(rates: dict[str, list[float]], reference: str = "a2c") -> list[dict[str, Any]]:
    """
    Median rate of each entry and its ratio to the reference entry's median.

    :param rates: From :func:`measure`.
    :param reference: Entry the ratios are relative to.
    :return: One row per entry.
    """
    medians = {name: statistics.median(values) for name, values in rates.items()}
    return [
        dict(
            entry=name,
            rates=values,
            median=medians[name],
            ratio_to_reference=medians[name] / medians[reference] if reference in medians else None,
        )
        for name, values in rates.items()
    ]


def markdown_table(rows: Sequence[dict[str, Any]], reference: str = "a2c") -> str:
    """
    The rows as the markdown table of ``docs/benchmarks.md``.

    :param rows: From :func:`summarize`.
    :param reference: Name of the reference entry (column title).
    :return: Markdown text.
    """
    lines = [f"| measured | median env steps/s | × {reference} | runs (steps/s) |", "|---|---|---|---|"]
    for row in rows:
        ratio = "–" if row["ratio_to_reference"] is None else f"{row['ratio_to_reference']:.2f}"
        runs = ", ".join(f"{v:.0f}" for v in row["rates"])
        lines.append(f"| {row['entry']} | {row['median']:.0f} | {ratio} | {runs} |")
    return "\n".join(lines)


def measure_guard(batch_steps: int, repeats: int, seed: int = 0) -> dict[str, float]:
    """
    Milliseconds per update of the optimiser step, guarded or not, on a ``CnnPolicy`` with Adam.

    :param batch_steps: Frames in the batch of the update.
    :param repeats: Timed repetitions of each measurement (the median is kept).
    :param seed: Seed of the policy and the frames.
    :return: Median milliseconds: ``update`` (forward, backward and a plain step), ``step`` (a plain
        ``optimizer.step()``), ``guarded_step`` (``GuardedStep.step``), ``previous_guard_copies``
        (the copies and checks the deep-copying guard made at every update).
    """
    import copy

    import torch as th
    from gymnasium import spaces
    from stable_baselines3.common.policies import ActorCriticCnnPolicy

    from sb3_reinforce.common.gradient_step import GuardedStep

    th.manual_seed(seed)
    policy = ActorCriticCnnPolicy(spaces.Box(0, 255, (4, 84, 84), np.uint8), spaces.Discrete(6), lambda _: 1e-4)
    frames = th.as_tensor(np.random.default_rng(seed).integers(0, 256, (batch_steps, 4, 84, 84), dtype=np.uint8))
    actions = th.as_tensor(np.random.default_rng(seed + 1).integers(0, 6, batch_steps))
    parameters = list(policy.parameters())
    guard = GuardedStep()

    def backward() -> None:
        policy.optimizer.zero_grad()
        values, log_prob, _ = policy.evaluate_actions(frames, actions)
        (-log_prob.mean() + values.pow(2).mean()).backward()

    def previous_guard_copies() -> None:
        [p.detach().clone() for p in parameters]
        copy.deepcopy(policy.optimizer.state_dict())
        all(bool(th.isfinite(p).all()) for p in parameters)

    def timed(function: Callable[[], object]) -> float:
        start = time.perf_counter()
        function()
        return (time.perf_counter() - start) * 1e3

    backward()
    policy.optimizer.step()  # the optimiser state exists from here on
    times: dict[str, list[float]] = {"update": [], "step": [], "guarded_step": [], "previous_guard_copies": []}
    for _ in range(repeats):
        times["update"].append(timed(lambda: (backward(), policy.optimizer.step())))
        backward()
        times["step"].append(timed(policy.optimizer.step))
        backward()
        times["guarded_step"].append(timed(lambda: guard.step(policy.optimizer, parameters)))
        times["previous_guard_copies"].append(timed(previous_guard_copies))
    return {name: statistics.median(values) for name, values in times.items()}


def measure_scores(batch_steps: Sequence[int], repeats: int, seed: int = 0) -> list[dict[str, float]]:
    """
    Seconds to compute the per-step scores of a batch, chunk by chunk and through the whole graph.

    :param batch_steps: Batch sizes (steps of one CartPole-v1-shaped batch of random observations).
    :param repeats: Timed repetitions of each measurement (the median is kept).
    :param seed: Seed of the policy and the batch.
    :return: One row per batch size: ``steps``, ``chunked_s``, ``whole_graph_s``.
    """
    from sb3_reinforce import REINFORCE
    from sb3_reinforce.common.baselines import per_step_scores
    from sb3_reinforce.common.episodes import EpisodeBatch

    model = REINFORCE("MlpPolicy", "CartPole-v1", seed=seed, device="cpu")
    rng = np.random.default_rng(seed)
    rows = []
    for steps in batch_steps:
        batch = EpisodeBatch(
            observations=rng.normal(size=(steps, 4)).astype(np.float32),
            actions=rng.integers(0, 2, steps),
            rewards=np.ones(steps),
            lengths=np.array([steps]),
            truncated=np.array([False]),
            terminal_observations=np.zeros((1, 4), np.float32),
            log_probs=np.zeros(steps),
        )
        evaluation = model._evaluate_episodes(batch)
        parameters = list(model.policy.parameters())
        timings: dict[str, list[float]] = {"chunked_s": [], "whole_graph_s": []}
        for _ in range(repeats):
            for name, by_chunk in (("chunked_s", evaluation.step_log_prob), ("whole_graph_s", None)):
                start = time.perf_counter()
                per_step_scores(evaluation.log_prob, parameters, step_log_prob=by_chunk)
                timings[name].append(time.perf_counter() - start)
        rows.append(dict(steps=steps, **{name: statistics.median(values) for name, values in timings.items()}))
        chunked, whole = rows[-1]["chunked_s"], rows[-1]["whole_graph_s"]
        print(f"{steps:>6} steps: chunk by chunk {chunked:.2f} s, whole graph {whole:.2f} s")
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    """
    Command-line entry point (see the module docstring).

    :param argv: Arguments (default: ``sys.argv[1:]``).
    """
    import torch as th

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--entries", nargs="+", default=None, choices=sorted({*ENTRIES, *MASKED_ENTRIES, *LSTM_ENTRIES})
    )
    parser.add_argument("--masked", action="store_true", help="Taxi-v4 with action masks, next to MaskablePPO")
    parser.add_argument("--n-envs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20_000, help="env steps per timed measurement")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=10_000, help="env steps learnt before timing")
    parser.add_argument("--tag", default="")
    parser.add_argument("--results-dir", type=Path, default=RESULTS, help="folder of the result files")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 repeats of 2 000 steps, warm-up 1 000")
    parser.add_argument("--guard", action="store_true", help="measure the cost of the optimiser-step guard instead")
    parser.add_argument("--guard-steps", type=int, default=256, help="frames in the batch of --guard's update")
    parser.add_argument("--scores", action="store_true", help="time the per-step scores of the optimal baselines")
    parser.add_argument("--score-steps", type=int, nargs="+", default=[500, 2000, 4000], help="batch sizes of --scores")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.repeats, args.warmup, args.tag = 2_000, 2, 1_000, args.tag or "_quick"

    th.set_num_threads(1)
    if args.scores:
        rows = measure_scores(args.score_steps, max(1, min(args.repeats, 3)))
        args.results_dir.mkdir(parents=True, exist_ok=True)
        out = args.results_dir / f"throughput_scores{args.tag}.json"
        out.write_text(json.dumps(dict(rows=rows), indent=1))
        print(f"written to {out}")
        return
    if args.guard:
        guard = measure_guard(args.guard_steps, max(args.repeats, 3))
        for name, milliseconds in guard.items():
            print(f"{name:>22}: {milliseconds:8.2f} ms")
        args.results_dir.mkdir(parents=True, exist_ok=True)
        out = args.results_dir / f"throughput_guard{args.tag}.json"
        out.write_text(json.dumps(dict(guard_steps=args.guard_steps, repeats=args.repeats, ms=guard), indent=1))
        print(f"written to {out}")
        return
    entries = args.entries or list(MASKED_ENTRIES if args.masked else ENTRIES)
    reference = "ppo_mask" if args.masked else "a2c"
    rates = measure(entries, args.n_envs, args.steps, args.repeats, args.warmup, masked=args.masked)
    rows = summarize(rates, reference)
    print(markdown_table(rows, reference))
    args.results_dir.mkdir(parents=True, exist_ok=True)
    out = args.results_dir / f"throughput{args.tag}.json"
    settings = {k: v for k, v in vars(args).items() if k not in ("quick", "results_dir")}
    machine = dict(python=platform.python_version(), processor=platform.processor() or platform.machine())
    out.write_text(json.dumps(dict(settings=settings, machine=machine, rows=rows), indent=1))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
