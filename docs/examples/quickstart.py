"""Quick start: train REINFORCE on CartPole-v1, save it, load it, evaluate it and watch it."""

import os

import gymnasium as gym
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor

from sb3_reinforce import REINFORCE

# 50 000 env steps reach the maximum return of 500 with the defaults (this is `make demo`);
# the test suite sets SB3_REINFORCE_EXAMPLE_STEPS to run the same code on a tiny budget.
total_timesteps = int(os.environ.get("SB3_REINFORCE_EXAMPLE_STEPS", 50_000))

model = REINFORCE("MlpPolicy", "CartPole-v1", seed=0, verbose=1)
model.learn(total_timesteps=total_timesteps)
model.save("reinforce_cartpole")
del model  # the saved file holds everything needed to use, or continue training, the model

model = REINFORCE.load("reinforce_cartpole")
env = Monitor(gym.make("CartPole-v1"))
mean_return, std_return = evaluate_policy(model, env, n_eval_episodes=10, deterministic=True)
print(f"evaluation return {mean_return:.1f} ± {std_return:.1f}")

observation, _ = env.reset(seed=0)
for _ in range(1_000):
    action, _ = model.predict(observation, deterministic=True)
    observation, reward, terminated, truncated, _ = env.step(action)
    if terminated or truncated:
        observation, _ = env.reset()
env.close()
