"""docs/maths.md §7: REINFORCE behaves as a Stable-Baselines3 algorithm.

Construction from a gym.Env / an id / a VecEnv, policy_kwargs, parameter names, every supported
space and policy, save/load (including continuing training identically), callbacks and their
order, the learn loop's budget, logging, progress bar, VecNormalize, learning-rate schedules and
SB3's evaluate_policy.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.envs import (
    FakeImageEnv,
    IdentityEnv,
    IdentityEnvBox,
    IdentityEnvMultiBinary,
    IdentityEnvMultiDiscrete,
    SimpleMultiObsEnv,
)
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.policies import ActorCriticCnnPolicy, MultiInputActorCriticPolicy
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecNormalize

from sb3_reinforce import REINFORCE
from sb3_reinforce.common.episodes import EpisodeBatch
from tests.log_capture import MemoryWriter


def params_of(model):
    return {name: p.detach().clone() for name, p in model.policy.state_dict().items()}


def assert_same_params(a, b):
    assert a.keys() == b.keys()
    for name in a:
        assert th.equal(a[name], b[name]), name


def assert_same_optimizer_state(opt_a, opt_b):
    state_a, state_b = opt_a.state_dict(), opt_b.state_dict()
    assert state_a["state"].keys() == state_b["state"].keys()
    for key in state_a["state"]:
        for name, value in state_a["state"][key].items():
            other = state_b["state"][key][name]
            if isinstance(value, th.Tensor):
                assert th.equal(value, other), (key, name)
            else:
                assert value == other, (key, name)
    groups_a = [{k: v for k, v in g.items() if k != "params"} for g in state_a["param_groups"]]
    groups_b = [{k: v for k, v in g.items() if k != "params"} for g in state_b["param_groups"]]
    assert groups_a == groups_b


# ----------------------------------------------------------------------------- construction


@pytest.mark.parametrize("kind", ["gym_env", "id", "vec_env"])
def test_env_forms(kind):
    if kind == "gym_env":
        env, n_envs = gym.make("CartPole-v1"), 1
    elif kind == "id":
        env, n_envs = "CartPole-v1", 1
    else:
        env, n_envs = make_vec_env("CartPole-v1", n_envs=3, seed=0), 3
    model = REINFORCE("MlpPolicy", env, n_episodes=4, seed=0)
    assert isinstance(model.get_env(), VecEnv)
    assert model.get_env().num_envs == n_envs
    assert model.n_envs == n_envs
    model.learn(1)
    assert model._n_updates == 1
    assert isinstance(model.rollout_buffer, EpisodeBatch)
    assert model.rollout_buffer.n_episodes == 4


def test_constructor_arguments_are_stored():
    model = REINFORCE(
        "MlpPolicy",
        "CartPole-v1",
        learning_rate=3e-3,
        n_episodes=5,
        gamma=0.97,
        baseline="value",
        reward_to_go=False,
        unbiased_discount=True,
        normalize_advantage=True,
        ent_coef=0.01,
        vf_coef=0.25,
        max_grad_norm=0.7,
        max_episode_steps=1234,
        seed=3,
        device="cpu",
        verbose=0,
    )
    assert (model.learning_rate, model.n_episodes, model.gamma, model.baseline) == (3e-3, 5, 0.97, "value")
    assert (model.reward_to_go, model.unbiased_discount, model.normalize_advantage) == (False, True, True)
    assert (model.ent_coef, model.vf_coef, model.max_grad_norm, model.max_episode_steps) == (0.01, 0.25, 0.7, 1234)
    assert model.seed == 3
    assert model.device == th.device("cpu")
    assert model.policy.optimizer.param_groups[0]["lr"] == pytest.approx(3e-3)


def test_tensorboard_log_argument_is_accepted(tmp_path):
    model = REINFORCE("MlpPolicy", "CartPole-v1", n_episodes=2, seed=0, tensorboard_log=str(tmp_path))
    assert model.tensorboard_log == str(tmp_path)


def test_policy_kwargs_net_arch_empty_and_names():
    model = REINFORCE(
        "MlpPolicy", "CartPole-v1", seed=0, policy_kwargs={"net_arch": {"pi": [], "vf": []}, "ortho_init": False}
    )
    names = set(model.policy.state_dict())
    # a linear (tabular-softmax) policy and a linear value head on the raw observation
    assert names == {"action_net.weight", "action_net.bias", "value_net.weight", "value_net.bias"}
    assert model.policy.action_net.weight.shape == (2, 4)
    assert model.policy.value_net.weight.shape == (1, 4)
    model.learn(1)


def test_parameter_names_keep_sb3_names():
    model = REINFORCE("MlpPolicy", "Pendulum-v1", n_episodes=2, seed=0)
    names = set(model.policy.state_dict())
    for expected in (
        "action_net.weight",
        "action_net.bias",
        "value_net.weight",
        "value_net.bias",
        "log_std",
        "mlp_extractor.policy_net.0.weight",
        "mlp_extractor.value_net.0.weight",
    ):
        assert expected in names
    assert all(
        name.split(".")[0]
        in {
            "action_net",
            "value_net",
            "mlp_extractor",
            "log_std",
            "features_extractor",
            "pi_features_extractor",
            "vf_features_extractor",
        }
        for name in names
    )


def test_ortho_init_is_honoured():
    on = REINFORCE("MlpPolicy", "CartPole-v1", seed=0, policy_kwargs={"ortho_init": True})
    off = REINFORCE("MlpPolicy", "CartPole-v1", seed=0, policy_kwargs={"ortho_init": False})
    assert on.policy.ortho_init is True
    assert off.policy.ortho_init is False
    # SB3's orthogonal init gives the action head gain 0.01: all its singular values are 0.01
    singular = th.linalg.svdvals(on.policy.action_net.weight.detach())
    np.testing.assert_allclose(singular.numpy(), 0.01, rtol=1e-4)
    assert th.all(on.policy.action_net.bias == 0)
    singular_off = th.linalg.svdvals(off.policy.action_net.weight.detach())
    assert singular_off.max() > 0.05


def test_optimizer_class_and_kwargs_are_honoured():
    model = REINFORCE(
        "MlpPolicy",
        "CartPole-v1",
        learning_rate=0.02,
        n_episodes=2,
        seed=0,
        policy_kwargs={"optimizer_class": th.optim.SGD, "optimizer_kwargs": {"momentum": 0.9, "nesterov": True}},
    )
    optimizer = model.policy.optimizer
    assert type(optimizer) is th.optim.SGD
    assert optimizer.param_groups[0]["momentum"] == 0.9
    assert optimizer.param_groups[0]["nesterov"] is True
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.02)
    model.learn(1)
    # SGD with momentum keeps a momentum buffer once it has stepped
    assert any("momentum_buffer" in state for state in optimizer.state.values())


# ----------------------------------------------------------------------------- spaces and policies


def check_learns_and_predicts(model, env):
    before = params_of(model)
    model.learn(1)
    assert model._n_updates == 1
    after = params_of(model)
    assert any(not th.equal(before[k], after[k]) for k in before if not k.startswith("value_net"))
    obs = env.reset()
    action, _ = model.predict(obs, deterministic=True)
    assert action.shape[0] == env.num_envs
    for a in action:
        assert model.action_space.contains(np.asarray(a, dtype=model.action_space.dtype))
    return model.rollout_buffer


@pytest.mark.parametrize(
    ("make_env", "action_shape"),
    [
        (lambda: IdentityEnv(dim=3, ep_length=5), ()),
        (lambda: IdentityEnvBox(ep_length=5), (1,)),
        (lambda: IdentityEnvMultiDiscrete(dim=3, ep_length=5), (2,)),
        (lambda: IdentityEnvMultiBinary(dim=3, ep_length=5), (3,)),
    ],
    ids=["Discrete", "Box", "MultiDiscrete", "MultiBinary"],
)
def test_action_spaces(make_env, action_shape):
    env = DummyVecEnv([make_env, make_env])
    model = REINFORCE("MlpPolicy", env, n_episodes=3, seed=0)
    batch = check_learns_and_predicts(model, env)
    assert batch.actions.shape == (batch.n_steps, *action_shape)
    np.testing.assert_array_equal(batch.lengths, [5, 5, 5])
    assert np.all(np.isfinite(batch.log_probs))


def test_box_actions_are_clipped_for_the_env_but_stored_as_sampled():
    # a wide Gaussian (log_std = 1) samples outside [-1, 1]; the env sees clipped actions
    seen = []

    class RecordingBox(IdentityEnvBox):
        def step(self, action):
            seen.append(np.array(action))
            return super().step(action)

    env = DummyVecEnv([lambda: RecordingBox(ep_length=20)])
    model = REINFORCE("MlpPolicy", env, n_episodes=2, seed=0, policy_kwargs={"log_std_init": 1.0})
    model.learn(1)
    seen = np.concatenate(seen)
    stored = model.rollout_buffer.actions.reshape(-1)
    assert np.all(np.abs(seen) <= 1.0)
    assert np.any(np.abs(stored) > 1.0)
    np.testing.assert_allclose(seen, np.clip(stored, -1.0, 1.0), rtol=1e-6)


def test_dict_observations_multi_input_policy():
    env = DummyVecEnv([SimpleMultiObsEnv, SimpleMultiObsEnv])
    model = REINFORCE("MultiInputPolicy", env, n_episodes=2, seed=0)
    assert isinstance(model.policy, MultiInputActorCriticPolicy)
    batch = check_learns_and_predicts(model, env)
    assert isinstance(batch.observations, dict)
    assert set(batch.observations) == {"vec", "img"}
    assert batch.observations["vec"].shape == (batch.n_steps, 5)
    assert batch.observations["img"].shape[0] == batch.n_steps
    assert set(batch.terminal_observations) == {"vec", "img"}
    assert batch.terminal_observations["vec"].shape == (2, 5)


class RewardedImageEnv(FakeImageEnv):
    """SB3's FakeImageEnv (10-step episodes of random 36x36x3 images) with reward 1 for action 0."""

    def __init__(self):
        super().__init__(screen_height=36, screen_width=36, n_channels=3)

    def step(self, action):
        obs, _, terminated, truncated, info = super().step(action)
        return obs, float(int(action) == 0), terminated, truncated, info


def test_image_observations_cnn_policy():
    env = make_vec_env(RewardedImageEnv, n_envs=2, seed=0)
    model = REINFORCE("CnnPolicy", env, n_episodes=2, seed=0)
    assert isinstance(model.policy, ActorCriticCnnPolicy)
    batch = check_learns_and_predicts(model, model.get_env())
    # SB3 transposes channel-last images; the batch keeps them as uint8
    assert batch.observations.shape == (batch.n_steps, 3, 36, 36)
    assert batch.observations.dtype == np.uint8
    np.testing.assert_array_equal(batch.lengths, [10, 10])
    np.testing.assert_array_equal(batch.truncated, [True, True])


# ----------------------------------------------------------------------------- save / load


def test_save_load_predict_identical(tmp_path):
    model = REINFORCE("MlpPolicy", "CartPole-v1", n_episodes=3, seed=0)
    model.learn(300)
    path = tmp_path / "model.zip"
    model.save(path)
    loaded = REINFORCE.load(path, env=gym.make("CartPole-v1"))
    assert_same_params(params_of(model), params_of(loaded))
    assert_same_optimizer_state(model.policy.optimizer, loaded.policy.optimizer)
    for attr in ("n_episodes", "gamma", "baseline", "reward_to_go", "num_timesteps", "_n_updates"):
        assert getattr(loaded, attr) == getattr(model, attr), attr
    obs = np.random.default_rng(0).uniform(-1, 1, size=(50, 4)).astype(np.float32)
    a, _ = model.predict(obs, deterministic=True)
    b, _ = loaded.predict(obs, deterministic=True)
    np.testing.assert_array_equal(a, b)


def test_load_without_env_for_inference(tmp_path):
    # SB3 algorithms load without an env, e.g. to predict
    model = REINFORCE("MlpPolicy", "CartPole-v1", n_episodes=3, seed=0)
    model.learn(100)
    model.save(tmp_path / "model.zip")
    loaded = REINFORCE.load(tmp_path / "model.zip")
    assert loaded.get_env() is None
    assert loaded.action_space == model.action_space
    assert_same_params(params_of(model), params_of(loaded))
    obs = np.random.default_rng(1).uniform(-1, 1, size=(20, 4)).astype(np.float32)
    np.testing.assert_array_equal(model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0])


@pytest.mark.parametrize("force_reset", [True, False])
@pytest.mark.parametrize("baseline", ["mean", "value"])
def test_continue_training_after_load_is_identical(tmp_path, baseline, force_reset):
    """docs/maths.md §7, with SB3's default ``load(..., force_reset=True)`` as well as ``force_reset=False``."""

    def env():
        return make_vec_env("CartPole-v1", n_envs=2, seed=5)

    a = REINFORCE("MlpPolicy", env(), n_episodes=4, baseline=baseline, seed=0, learning_rate=3e-3)
    a.learn(600)
    path = tmp_path / "a.zip"
    a.save(path)

    a.set_random_seed(1)
    a.learn(800, reset_num_timesteps=False)

    b = REINFORCE.load(path, env=env(), force_reset=force_reset)
    b.set_random_seed(1)
    b.learn(800, reset_num_timesteps=False)

    assert a.num_timesteps == b.num_timesteps
    assert a._n_updates == b._n_updates
    assert_same_params(params_of(a), params_of(b))
    assert_same_optimizer_state(a.policy.optimizer, b.policy.optimizer)
    # and continuing did change the parameters
    c = REINFORCE.load(path, env=env())
    assert not all(th.equal(p, q) for p, q in zip(params_of(a).values(), params_of(c).values()))


def test_same_seed_same_training():
    runs = []
    for _ in range(2):
        model = REINFORCE("MlpPolicy", "CartPole-v1", n_episodes=3, seed=11)
        model.learn(500)
        runs.append((params_of(model), model.num_timesteps))
    assert runs[0][1] == runs[1][1]
    assert_same_params(runs[0][0], runs[1][0])


# ----------------------------------------------------------------------------- callbacks and the loop


class OrderRecorder(BaseCallback):
    def __init__(self, stop_at_step=None):
        super().__init__()
        self.events: list[str] = []
        self.snapshots: list[tuple[str, dict]] = []
        self.stop_at_step = stop_at_step
        self.n_steps = 0

    def _snapshot(self, event):
        self.events.append(event)
        self.snapshots.append((event, params_of(self.model)))

    def _on_training_start(self):
        self._snapshot("training_start")

    def _on_rollout_start(self):
        self._snapshot("rollout_start")

    def _on_step(self):
        self.events.append("step")
        self.n_steps += 1
        return self.stop_at_step is None or self.n_steps < self.stop_at_step

    def _on_rollout_end(self):
        self._snapshot("rollout_end")

    def _on_training_end(self):
        self._snapshot("training_end")


def test_callback_order_and_update_after_rollout_end():
    model = REINFORCE("MlpPolicy", "CartPole-v1", n_episodes=2, seed=0)
    recorder = OrderRecorder()
    model.learn(150, callback=recorder)
    events = recorder.events
    assert events[0] == "training_start"
    assert events[1] == "rollout_start"
    assert events[-1] == "training_end"
    assert events[-2] == "rollout_end"
    # every rollout: start, one "step" per env step, end
    cycles = " ".join(e for e in events[1:-1]).split("rollout_end")
    assert len(cycles) - 1 == model._n_updates >= 2
    for cycle in cycles[:-1]:
        words = cycle.split()
        assert words[0] == "rollout_start"
        assert set(words[1:]) == {"step"}
    assert events.count("step") == model.num_timesteps

    snaps = recorder.snapshots
    for (ev_a, pa), (ev_b, pb) in zip(snaps, snaps[1:]):
        if (ev_a, ev_b) == ("rollout_start", "rollout_end"):
            assert_same_params(pa, pb)  # collection does not change the parameters
        if ev_a == "rollout_end":
            # the update runs after on_rollout_end
            assert any(not th.equal(pa[k], pb[k]) for k in pa if not k.startswith("value_net"))


def test_on_step_false_stops_without_update():
    model = REINFORCE("MlpPolicy", "CartPole-v1", n_episodes=4, seed=0)
    before = params_of(model)
    assert model.policy.optimizer.state_dict()["state"] == {}
    recorder = OrderRecorder(stop_at_step=5)
    model.learn(10_000, callback=recorder)
    assert recorder.events.count("step") == 5
    assert "rollout_end" not in recorder.events
    assert recorder.events[-1] == "training_end"
    assert model._n_updates == 0
    assert model.num_timesteps == 5
    assert_same_params(before, params_of(model))
    assert model.policy.optimizer.state_dict()["state"] == {}  # the optimizer never stepped


@pytest.mark.parametrize("n_envs", [1, 3])
def test_learn_one_timestep_runs_one_cycle(n_envs):
    env = make_vec_env("CartPole-v1", n_envs=n_envs, seed=0)
    model = REINFORCE("MlpPolicy", env, n_episodes=5, seed=0)
    recorder = OrderRecorder()
    model.learn(total_timesteps=1, callback=recorder)
    assert model._n_updates == 1
    assert recorder.events.count("rollout_end") == 1
    assert recorder.events.count("rollout_start") == 1
    # a cycle is never cut short: all 5 episodes are complete
    batch = model.rollout_buffer
    assert batch.n_episodes == 5
    assert model.num_timesteps >= batch.n_steps > 5
    if n_envs == 1:
        assert model.num_timesteps == batch.n_steps
    # optimizer stepped exactly once
    steps = {int(s["step"]) for s in model.policy.optimizer.state.values()}
    assert steps == {1}


def test_budget_is_checked_before_each_cycle():
    model = REINFORCE("MlpPolicy", "CartPole-v1", n_episodes=2, seed=0)
    recorder = OrderRecorder()
    ends = []

    class Timesteps(BaseCallback):
        def _on_step(self):
            return True

        def _on_rollout_end(self):
            ends.append(self.model.num_timesteps)

    model.learn(200, callback=[recorder, Timesteps()])
    # every cycle but the last started below the budget and the last one ended at or above it
    assert all(end < 200 for end in ends[:-1])
    assert ends[-1] >= 200
    assert model._n_updates == len(ends)


# ----------------------------------------------------------------------------- logging


def test_logged_keys():
    writer = MemoryWriter()
    model = REINFORCE("MlpPolicy", "CartPole-v1", n_episodes=3, seed=0, baseline="value")
    model.set_logger(Logger(folder=None, output_formats=[writer]))
    batches = []

    class Keep(BaseCallback):
        def _on_step(self):
            return True

        def _on_rollout_end(self):
            batches.append(self.model.rollout_buffer)

    model.learn(150, callback=Keep())
    assert len(writer.dumps) >= 2
    first, second = writer.dumps[0], writer.dumps[1]
    for key in ("rollout/ep_rew_mean", "rollout/ep_len_mean", "time/fps", "rollout/unused_steps"):
        assert key in first, key
    # SB3 dumps before train(): the first update's values appear in the second dump
    for key in ("train/policy_loss", "train/value_loss", "train/entropy_loss", "train/grad_norm", "train/n_updates"):
        assert key not in first
        assert key in second, key
        assert np.isfinite(second[key])
    assert second["train/n_updates"] == 1
    assert second["train/grad_norm"] > 0
    assert second["train/value_loss"] > 0
    assert second["rollout/unused_steps"] == 0  # one env
    # with one env every finished episode is a batch episode
    assert first["rollout/ep_len_mean"] == pytest.approx(batches[0].lengths.mean())
    assert first["rollout/ep_rew_mean"] == pytest.approx(batches[0].lengths.mean())  # CartPole: +1 per step
    assert first["time/fps"] > 0
    assert first["time/total_timesteps"] == batches[0].n_steps


def test_progress_bar():
    model = REINFORCE("MlpPolicy", "CartPole-v1", n_episodes=2, seed=0)
    model.learn(100, progress_bar=True)
    assert model.num_timesteps >= 100


# ----------------------------------------------------------------------------- VecNormalize


def test_vec_normalize_train_save_load(tmp_path):
    def raw_env():
        return make_vec_env("Pendulum-v1", n_envs=2, seed=0)

    env = VecNormalize(raw_env(), gamma=0.9)
    model = REINFORCE("MlpPolicy", env, n_episodes=2, gamma=0.9, baseline="value", seed=0)
    model.learn(1200)
    assert env.obs_rms.count > 1000
    # the batch holds normalised observations (clipped to +-10, roughly standardised)
    obs = model.rollout_buffer.observations
    assert np.all(np.abs(obs) <= env.clip_obs)
    assert np.abs(obs.mean(axis=0)).max() < 1.0

    model_path, stats_path = tmp_path / "model.zip", tmp_path / "vecnormalize.pkl"
    model.save(model_path)
    env.save(stats_path)

    loaded_env = VecNormalize.load(str(stats_path), raw_env())
    loaded_env.training = False
    env.training = False
    loaded = REINFORCE.load(model_path, env=loaded_env)
    np.testing.assert_array_equal(loaded_env.obs_rms.mean, env.obs_rms.mean)
    np.testing.assert_array_equal(loaded_env.obs_rms.var, env.obs_rms.var)
    raw = np.random.default_rng(0).uniform(-1, 1, size=(20, 3)).astype(np.float32)
    a, _ = model.predict(env.normalize_obs(raw), deterministic=True)
    b, _ = loaded.predict(loaded_env.normalize_obs(raw), deterministic=True)
    np.testing.assert_array_equal(a, b)
    # and training continues with the loaded statistics
    loaded_env.training = True
    loaded.learn(400, reset_num_timesteps=False)
    assert loaded._n_updates > model._n_updates


# ----------------------------------------------------------------------------- schedules and evaluation


def test_learning_rate_schedule():
    calls = []

    def schedule(progress_remaining):
        calls.append(progress_remaining)
        return 1e-3 * (1.0 + progress_remaining)

    lrs, progress = [], []

    class Watch(BaseCallback):
        def _on_step(self):
            return True

        def _on_rollout_start(self):
            lrs.append(self.model.policy.optimizer.param_groups[0]["lr"])

        def _on_rollout_end(self):
            # a cycle of whole episodes can overshoot the budget: the progress is clipped at 0
            progress.append(max(0.0, 1.0 - self.model.num_timesteps / 300))

    model = REINFORCE("MlpPolicy", "CartPole-v1", learning_rate=schedule, n_episodes=2, seed=0)
    assert model.policy.optimizer.param_groups[0]["lr"] == pytest.approx(2e-3)  # schedule(1)
    model.learn(300, callback=Watch())
    assert len(progress) >= 3
    # the update after collection k uses the schedule at the progress remaining after collection k
    for k in range(len(progress) - 1):
        assert lrs[k + 1] == pytest.approx(1e-3 * (1.0 + progress[k]))
    assert min(calls) >= 0.0
    assert model.policy.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 * (1.0 + progress[-1]))
    assert len(set(np.round(lrs, 12))) == len(lrs)  # it really changes


def test_evaluate_policy_works():
    model = REINFORCE("MlpPolicy", "CartPole-v1", n_episodes=2, seed=0)
    model.learn(100)
    eval_env = gym.make("CartPole-v1")
    eval_env.reset(seed=0)
    mean, std = evaluate_policy(model, eval_env, n_eval_episodes=3, deterministic=True, warn=False)
    assert 1 <= mean <= 500
    assert std >= 0
    rewards, lengths = evaluate_policy(model, model.get_env(), n_eval_episodes=3, return_episode_rewards=True)
    assert len(rewards) == len(lengths) == 3
    np.testing.assert_array_equal(rewards, lengths)
