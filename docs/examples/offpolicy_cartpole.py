"""OffPolicyPG on CartPole-v1: train, save the model and its replay buffer, load both and continue."""

import os

import gymnasium as gym

from sb3_reinforce import OffPolicyPG

# With the defaults and seed 0, 25 000 env steps reach the maximum return of 500 (docs/offpolicy_pg.md).
total_timesteps = int(os.environ.get("SB3_REINFORCE_EXAMPLE_STEPS", 25_000))

env = gym.make("CartPole-v1")
model = OffPolicyPG(
    "MlpPolicy",
    env,
    n_episodes=4,  # new episodes per rollout
    batch_episodes=8,  # episodes sampled from the buffer for each gradient step
    buffer_size=2_000,  # transitions; the oldest whole episodes leave first
    importance_weights="per_step",
    truncation=1.0,
    seed=0,
    verbose=1,
)
model.learn(total_timesteps=total_timesteps)
model.save("offpolicy_cartpole")
model.save_replay_buffer("offpolicy_cartpole_buffer")  # not part of save(), as for SB3's off-policy algorithms

del model
model = OffPolicyPG.load("offpolicy_cartpole", env=env)
model.load_replay_buffer("offpolicy_cartpole_buffer")
assert model.replay_buffer is not None
print(f"{model.replay_buffer.n_episodes} episodes in the buffer")
model.learn(total_timesteps=total_timesteps // 5, reset_num_timesteps=False)
