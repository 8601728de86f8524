"""``make demo``: train REINFORCE on CartPole-v1 with its defaults and a fixed seed, then evaluate it.

Usage: ``python -m sb3_reinforce.demo [--timesteps N] [--seed S]``.  Exits with status 1 if the
deterministic evaluation does not reach the maximum return of 500.
"""

from __future__ import annotations

import argparse
import sys
import time

import gymnasium as gym
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor

from sb3_reinforce import REINFORCE


def main(argv: list[str] | None = None) -> int:
    """
    Train, evaluate over 10 episodes and print the result.

    :param argv: Command-line arguments (``sys.argv[1:]`` when None).
    :return: Exit status: 0 if the evaluation mean reached 500, else 1.
    """
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--timesteps", type=int, default=50_000, help="training budget in env steps")
    parser.add_argument("--seed", type=int, default=0, help="seed of the model and the envs")
    args = parser.parse_args(argv)

    model = REINFORCE("MlpPolicy", "CartPole-v1", seed=args.seed)
    start = time.perf_counter()
    model.learn(total_timesteps=args.timesteps)
    wall = time.perf_counter() - start

    eval_env = Monitor(gym.make("CartPole-v1"))
    eval_env.reset(seed=args.seed + 1000)
    result = evaluate_policy(model, eval_env, n_eval_episodes=10, deterministic=True)
    mean, std = float(result[0]), float(result[1])  # type: ignore[arg-type]
    print(
        f"REINFORCE on CartPole-v1 (seed {args.seed}): evaluation return {mean:.1f} ± {std:.1f} "
        f"over 10 episodes after {model.num_timesteps} timesteps, trained in {wall:.1f} s"
    )
    if mean < 500:
        print("The demo did not reach the maximum return of 500.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
