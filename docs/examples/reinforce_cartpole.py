"""REINFORCE on 4 CartPole-v1 envs stepping together, with the variance-minimising baseline."""

import os

from stable_baselines3.common.env_util import make_vec_env

from sb3_reinforce import REINFORCE

total_timesteps = int(os.environ.get("SB3_REINFORCE_EXAMPLE_STEPS", 60_000))

# A batch is the first 8 episodes to *start* after the envs are reset, whichever env plays them.
vec_env = make_vec_env("CartPole-v1", n_envs=4, seed=0)
model = REINFORCE(
    "MlpPolicy",
    vec_env,
    n_episodes=8,
    baseline="optimal",  # E[|g|^2 R] / E[|g|^2], estimated from the other episodes of the batch
    normalize_advantage=True,
    seed=0,
    verbose=1,
)
model.learn(total_timesteps=total_timesteps)
model.save("reinforce_cartpole_4envs")

del model
model = REINFORCE.load("reinforce_cartpole_4envs", env=vec_env)
observations = vec_env.reset()
for _ in range(1_000):
    actions, _ = model.predict(observations, deterministic=True)
    observations, rewards, dones, infos = vec_env.step(actions)
