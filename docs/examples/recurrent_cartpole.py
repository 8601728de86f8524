"""REINFORCE with an LSTM policy on CartPole without velocities (a task that needs memory)."""

import os

import numpy as np
import rl_zoo3.import_envs  # noqa: F401 (registers CartPoleNoVel-v1: CartPole-v1 with the velocities hidden)
from stable_baselines3.common.env_util import make_vec_env

from sb3_reinforce import REINFORCE

total_timesteps = int(os.environ.get("SB3_REINFORCE_EXAMPLE_STEPS", 100_000))

vec_env = make_vec_env("CartPoleNoVel-v1", n_envs=1, seed=0)
model = REINFORCE(
    "MlpLstmPolicy",  # sb3-contrib's RecurrentActorCriticPolicy; every episode is backpropagated whole
    vec_env,
    learning_rate=3e-3,
    n_episodes=8,
    baseline="mean",
    policy_kwargs=dict(lstm_hidden_size=32, net_arch=[]),
    seed=0,
)
model.learn(total_timesteps=total_timesteps)
model.save("reinforce_cartpole_novel_lstm")

del model
model = REINFORCE.load("reinforce_cartpole_novel_lstm", env=vec_env)
# As with RecurrentPPO: pass the LSTM state back in, and say where episodes start.
observations = vec_env.reset()
lstm_states = None
episode_starts = np.ones((vec_env.num_envs,), dtype=bool)
for _ in range(1_000):
    actions, lstm_states = model.predict(
        observations, state=lstm_states, episode_start=episode_starts, deterministic=True
    )
    observations, rewards, dones, infos = vec_env.step(actions)
    episode_starts = dones
