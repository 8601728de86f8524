"""How REINFORCE's defaults were chosen: env steps to solve CartPole-v1 for a grid of settings.

A run counts as solved when the mean training return of the last 20 episodes reaches 475; it then
stops.  Usage::

    python benchmarks/reinforce_defaults.py --seeds 0 1 2 --budget 100000 [--quick]

prints one line per setting (median steps to solve, solved runs, mean wall time) and writes the
rows as JSON to ``benchmarks/results/reinforce_defaults.json``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import pathlib
import statistics
import time
from typing import Any

import gymnasium as gym
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor

from sb3_reinforce import REINFORCE

try:
    from benchmarks.training_return import StopWhenSolved
except ModuleNotFoundError:  # run as a script (python benchmarks/<name>.py): this folder is on sys.path
    from training_return import StopWhenSolved  # type: ignore[no-redef]


def run(
    settings: dict[str, Any], seed: int, budget: int, env_id: str, threshold: float, final_eval: bool
) -> tuple[int | None, float, float | None]:
    """Train one model; return (steps to solve or None, wall time, final evaluation return or None)."""
    model = REINFORCE("MlpPolicy", env_id, seed=seed, **settings)
    callback = StopWhenSolved(threshold, keep_going=final_eval)
    start = time.perf_counter()
    model.learn(budget, callback=callback)
    wall = time.perf_counter() - start
    final = None
    if final_eval:
        eval_env = Monitor(gym.make(env_id))
        eval_env.reset(seed=seed + 1000)
        final = float(evaluate_policy(model, eval_env, n_eval_episodes=10, deterministic=True)[0])  # type: ignore[arg-type]
    return callback.solved_at, wall, final


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--budget", type=int, default=100_000)
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--threshold", type=float, default=475.0)
    parser.add_argument("--grid", default="main", choices=["main", "candidates", "baselines"])
    parser.add_argument(
        "--final-eval", action="store_true", help="train the whole budget and evaluate 10 episodes at the end"
    )
    parser.add_argument("--quick", action="store_true", help="two settings, one seed, 10k steps")
    parser.add_argument("--out", default="benchmarks/results/reinforce_defaults.json")
    args = parser.parse_args()

    if args.grid == "main":
        grid = [dict(learning_rate=lr, n_episodes=n) for lr, n in itertools.product([3e-3, 1e-2, 3e-2], [4, 8, 16])]
    elif args.grid == "candidates":
        grid = [dict(learning_rate=lr, n_episodes=n) for lr, n in [(1e-2, 8), (1e-2, 16), (3e-2, 4), (3e-2, 8)]]
    else:
        grid = [
            dict(baseline=b, normalize_advantage=norm)
            for b, norm in itertools.product(["none", "mean", "optimal", "value"], [False, True])
        ]
    if args.quick:
        grid, args.seeds, args.budget = grid[:2], args.seeds[:1], 10_000

    rows = []
    for settings in grid:
        results = [run(settings, seed, args.budget, args.env, args.threshold, args.final_eval) for seed in args.seeds]
        steps = [s if s is not None else args.budget for s, _, _ in results]
        row = dict(
            settings=settings,
            env=args.env,
            seeds=args.seeds,
            steps_to_solve=[s for s, _, _ in results],
            final_eval=[f for _, _, f in results],
            median_steps=statistics.median(steps),
            solved=sum(s is not None for s, _, _ in results),
            mean_wall_s=statistics.mean(w for _, w, _ in results),
        )
        rows.append(row)
        print(
            f"{settings}: median steps {row['median_steps']:.0f} (unsolved counted as budget "
            f"{args.budget}), solved {row['solved']}/{len(args.seeds)}, wall {row['mean_wall_s']:.1f}s"
            + (f", final eval {row['final_eval']}" if args.final_eval else ""),
            flush=True,
        )
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
