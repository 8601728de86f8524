"""REINFORCE with continuous actions (Pendulum-v1): a Gaussian policy, a learned value baseline, VecNormalize."""

import os

from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecNormalize

from sb3_reinforce import REINFORCE

# REINFORCE does not learn Pendulum-v1 with SB3's unbounded Gaussian policy (docs/choosing.md,
# "Continuous actions with bounds"): this example shows the API, not a result.
total_timesteps = int(os.environ.get("SB3_REINFORCE_EXAMPLE_STEPS", 200_000))

vec_env = VecNormalize(make_vec_env("Pendulum-v1", n_envs=4, seed=0), norm_obs=True, norm_reward=True)
model = REINFORCE(
    "MlpPolicy",
    vec_env,
    n_episodes=8,
    gamma=0.95,
    baseline="value",  # V(s_t) from the policy's value head, fitted to the returns with vf_coef
    vf_coef=0.5,
    learning_rate=3e-3,
    policy_kwargs=dict(log_std_init=-0.5, net_arch=dict(pi=[64, 64], vf=[64, 64])),
    seed=0,
    verbose=1,
)
model.learn(total_timesteps=total_timesteps)
model.save("reinforce_pendulum")
vec_env.save("reinforce_pendulum_vecnormalize.pkl")  # the normalisation statistics go with the model
