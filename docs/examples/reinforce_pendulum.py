"""REINFORCE with continuous actions (Pendulum-v1): a Gaussian policy, a learned value baseline, VecNormalize."""

import os

from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecNormalize

from sb3_reinforce import REINFORCE

# gSDE with tanh-squashed actions: the settings of the rl-zoo3 entry (hyperparams/reinforce.yml), which
# learn Pendulum-v1 (near -700 after 1e6 steps on 3 of 3 seeds) without solving it (docs/choosing.md, "Continuous
# actions with bounds").  The default 200 000 steps show the API, not that result.
total_timesteps = int(os.environ.get("SB3_REINFORCE_EXAMPLE_STEPS", 200_000))

vec_env = VecNormalize(make_vec_env("Pendulum-v1", n_envs=8, seed=0), norm_obs=True, norm_reward=True)
model = REINFORCE(
    "MlpPolicy",
    vec_env,
    n_episodes=16,
    gamma=0.9,
    baseline="value",  # V(s_t) from the policy's value head, fitted to the returns with vf_coef
    normalize_advantage=True,
    max_grad_norm=0.5,
    learning_rate=3e-3,
    use_sde=True,  # state-dependent exploration noise, redrawn every 4 steps
    sde_sample_freq=4,
    policy_kwargs=dict(log_std_init=-2, ortho_init=False, squash_output=True),
    seed=0,
    verbose=1,
)
model.learn(total_timesteps=total_timesteps)
model.save("reinforce_pendulum")
vec_env.save("reinforce_pendulum_vecnormalize.pkl")  # the normalisation statistics go with the model
