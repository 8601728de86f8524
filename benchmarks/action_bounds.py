"""Where the Gaussian policy's mean goes on Pendulum-v1: inside the action bounds or past them.

SB3's ``MlpPolicy`` for a ``Box`` action space is a Gaussian whose mean is not bounded; the env gets
the sample clipped to ``[-2, 2]``.  Once the mean is well past a bound, nearly every sample is clipped
to that bound, so the return no longer depends on the mean and its gradient carries no signal.  This
script trains REINFORCE (8 envs under ``VecNormalize``, 8 episodes per update, learning rate 3e-3,
gamma 0.9, value baseline, normalised advantages, gradient norm clipped at 0.5) and prints, every
``--interval`` env steps, over a fixed set of 500 states (angles and velocities drawn uniformly):

- ``mean |mu|``: mean absolute policy mean; ``outside``: fraction of states whose mean is outside
  ``[-2, 2]``; ``corr(mu, velocity)``: correlation of the mean with the angular velocity;
- ``std``: the policy's standard deviation; ``train return``: mean return of the last 100 episodes.

Usage (from the repository root)::

    python -m benchmarks.action_bounds                  # 300 000 env steps, about a minute
    python -m benchmarks.action_bounds --steps 20000 --interval 10000
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np
import torch as th
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecNormalize

from sb3_reinforce import REINFORCE


def probe_states(n: int = 500, seed: int = 0) -> np.ndarray:
    """
    Pendulum-v1 observations ``(cos, sin, angular velocity)`` at uniformly drawn angles and velocities.

    :param n: Number of states.
    :param seed: Seed of the draw.
    :return: Array of shape ``(n, 3)``.
    """
    rng = np.random.default_rng(seed)
    angle, velocity = rng.uniform(-np.pi, np.pi, n), rng.uniform(-8.0, 8.0, n)
    return np.stack([np.cos(angle), np.sin(angle), velocity], axis=1).astype(np.float32)


def main(argv: Sequence[str] | None = None) -> list[dict[str, float]]:
    """
    Command-line entry point (see the module docstring).

    :param argv: Arguments (default: ``sys.argv[1:]``).
    :return: One row per report: steps and the figures above.
    """
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300_000)
    parser.add_argument("--interval", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    th.set_num_threads(1)
    env = VecNormalize(make_vec_env("Pendulum-v1", n_envs=8, seed=args.seed), gamma=0.9)
    model = REINFORCE(
        "MlpPolicy",
        env,
        learning_rate=3e-3,
        n_episodes=8,
        gamma=0.9,
        baseline="value",
        normalize_advantage=True,
        max_grad_norm=0.5,
        seed=args.seed,
    )
    states = probe_states()
    high = float(env.action_space.high[0])  # type: ignore[index]
    rows = []
    while model.num_timesteps < args.steps:
        model.learn(args.interval, reset_num_timesteps=False)
        observations = th.as_tensor(env.normalize_obs(states))
        with th.no_grad():
            mean = model.policy.get_distribution(observations).distribution.mean.numpy().ravel()  # type: ignore[union-attr]
        row = dict(
            steps=float(model.num_timesteps),
            mean_abs_mu=float(np.abs(mean).mean()),
            outside=float((np.abs(mean) > high).mean()),
            corr_mu_velocity=float(np.corrcoef(mean, states[:, 2])[0, 1]),
            std=float(th.exp(model.policy.log_std).item()),  # type: ignore[operator]
            train_return=float(np.mean([info["r"] for info in model.ep_info_buffer])),
        )
        rows.append(row)
        print(
            f"{int(row['steps']):>8} steps: mean |mu| {row['mean_abs_mu']:.2f}, outside [-{high:g}, {high:g}] "
            f"{row['outside']:.2f}, corr(mu, velocity) {row['corr_mu_velocity']:.2f}, std {row['std']:.2f}, "
            f"train return {row['train_return']:.0f}",
            flush=True,
        )
    return rows


if __name__ == "__main__":
    main()
