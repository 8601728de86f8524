"""OffPolicyPG on Acrobot-v1: which single change to the class defaults stops the collapse to -500.

Each setting changes one thing of the class defaults; every run trains ``--budget`` env steps (no
early stop) and reports when the mean return of the last 20 training episodes first reached -100,
and that mean at the end of the budget (a run that collapsed ends at -500).  Usage::

    python -m benchmarks.acrobot_options --seeds 0 1 2 --budget 100000

writes ``benchmarks/results/acrobot_options.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecNormalize

from benchmarks.training_return import StopWhenSolved
from sb3_reinforce import OffPolicyPG

RESULTS = Path(__file__).resolve().parent / "results"

#: Setting name -> constructor arguments changed from the defaults ("normalize": VecNormalize of the observations).
SETTINGS: dict[str, dict[str, Any]] = {
    "class defaults (lr 1e-2)": {},
    "normalised observations": {"normalize": True},
    "learning_rate 3e-3": {"learning_rate": 3e-3},
    "ent_coef 0.01": {"ent_coef": 0.01},
    "baseline value": {"baseline": "value"},
}


def run(settings: dict[str, Any], seed: int, budget: int) -> dict[str, Any]:
    """
    Train OffPolicyPG on Acrobot-v1 for the whole budget.

    :param settings: Constructor arguments, plus ``normalize`` (bool) for ``VecNormalize(norm_reward=False)``.
    :param seed: Seed.
    :param budget: Env steps.
    :return: ``solved_at`` (or None), ``final`` (mean of the last 20 training episodes), ``wall_s``.
    """
    settings = dict(settings)
    env = make_vec_env("Acrobot-v1", n_envs=1, seed=seed)
    if settings.pop("normalize", False):
        env = VecNormalize(env, norm_reward=False)
    model = OffPolicyPG("MlpPolicy", env, seed=seed, **settings)
    callback = StopWhenSolved(-100.0, keep_going=True)
    start = time.perf_counter()
    model.learn(budget, callback=callback)
    return dict(
        solved_at=callback.solved_at,
        final=float(np.mean(callback.returns[-20:])),
        wall_s=time.perf_counter() - start,
    )


def main(argv: Sequence[str] | None = None) -> None:
    """
    Command-line entry point (see the module docstring).

    :param argv: Arguments (default: ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--budget", type=int, default=100_000)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    th.set_num_threads(1)
    rows = []
    for name in args.settings:
        results = [run(SETTINGS[name], seed, args.budget) for seed in args.seeds]
        rows.append(dict(setting=name, seeds=args.seeds, budget=args.budget, runs=results))
        summary = ", ".join(f"solved {r['solved_at']} final {r['final']:.1f}" for r in results)
        print(f"{name}: {summary}", flush=True)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / "acrobot_options.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
