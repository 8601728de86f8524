"""Compare baselines (REINFORCE) and importance-weight modes (OffPolicyPG) on CartPole-v1, same seed."""

import os

import gymnasium as gym
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor

from sb3_reinforce import REINFORCE, OffPolicyPG

total_timesteps = int(os.environ.get("SB3_REINFORCE_EXAMPLE_STEPS", 50_000))

settings = [
    (REINFORCE, dict(baseline="none")),
    (REINFORCE, dict(baseline="mean")),  # the default: leave-one-out mean of the other episodes
    (REINFORCE, dict(baseline="optimal")),
    (REINFORCE, dict(baseline="value")),
    (OffPolicyPG, dict(importance_weights="per_step", truncation=1.0)),  # the default: biased, low variance
    (OffPolicyPG, dict(importance_weights="per_decision", truncation=1.0)),  # bounded weights, shorter horizon
    (OffPolicyPG, dict(importance_weights="per_decision", truncation=None, learning_rate=3e-3)),  # unbiased
]

eval_env = Monitor(gym.make("CartPole-v1"))
for algorithm, kwargs in settings:
    model = algorithm("MlpPolicy", "CartPole-v1", seed=0, **kwargs)
    model.learn(total_timesteps=total_timesteps)
    eval_env.reset(seed=1_000)
    mean_return, _ = evaluate_policy(model, eval_env, n_eval_episodes=10, deterministic=True)
    print(f"{algorithm.__name__:11s} {kwargs}: evaluation return {mean_return:.1f}")
