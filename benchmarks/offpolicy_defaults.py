"""How OffPolicyPG's defaults were chosen: env steps to solve, gradient bias and variance, memory.

Run on CartPole-v1 and Acrobot-v1 (one torch thread; ``--threads`` to change it):

``learning``
    Train one model per (setting, seed) until the mean return of the last 20 training episodes
    reaches the env's threshold (475 for CartPole-v1, as in ``reinforce_defaults.py``; -100, the
    registered reward threshold, for Acrobot-v1) or the budget (50k env steps) runs out.  The grid
    is every importance-weight estimator (mode x truncation, ``ESTIMATORS``) x every reuse setting
    (gradient steps per rollout x buffer size, with the learning rates of ``REUSE``), with
    ``n_episodes=4``, ``batch_episodes=8`` and the other parameters at their defaults.  Reports the
    median env steps to solve over the seeds (an unsolved run counts as the budget), how many
    solved, and the mean return of the last 20 training episodes when the run stopped.

``gradients``
    Bias and variance against the age of the data.  Train (``PROBE_SETTINGS``) until the mean
    training return passes the env's ``probe`` level, keeping the parameters of the last 64
    updates.  Then, for data ``k`` updates old (``--ages``), sample ``--probe-episodes`` fresh
    episodes with the policy of ``k`` updates ago and evaluate every estimator at the *current*
    parameters on consecutive chunks of ``--chunk`` episodes (one chunk = one update's batch).
    The reference is the on-policy estimate (REINFORCE, which every estimator reduces to) from
    ``--reference-episodes`` episodes of the current policy.  Per estimator and age, relative to
    the reference's squared norm ``|g|^2``:

    * ``bias``: ``sqrt(|mean of chunks - reference|^2 - noise^2) / |g|``, the distance that the
      sampling noise of both means (estimated from the chunks) does not explain (0: none resolved);
    * ``var``: the variance of one chunk's estimate (summed over parameters) ``/ |g|^2``;
    * ``cos``: the mean cosine between one chunk's estimate and the reference;
    * ``ess``, ``trunc``: effective sample size of the applied weights (fraction of the steps)
      and the fraction of truncated ratios, over all the age's episodes.

``memory``
    Bytes per stored transition of ``EpisodeReplayBuffer`` and of SB3's ``ReplayBuffer`` for the
    same spaces.

``tables``
    Print the markdown tables of ``docs/offpolicy_pg.md`` from the JSON results.

Commands behind ``docs/offpolicy_pg.md`` (``B=benchmarks/offpolicy_defaults.py``)::

    python $B --part learning --envs CartPole-v1 --seeds 0 1 2 --tag cartpole
    python $B --part learning --envs Acrobot-v1 --seeds 0 1 2 --lrs 0.01 --tag acrobot
    python $B --part learning --envs Acrobot-v1 --seeds 0 1 2 --lrs 0.003 --tag acrobot_lr0.003
    python $B --part learning --envs CartPole-v1 Acrobot-v1 --seeds 3 4 5 --grid confirm --tag confirm
    python $B --part gradients --envs CartPole-v1 Acrobot-v1 --seeds 0 1 2
    python $B --part memory
    python $B --part tables
    python $B --quick                # smoke run of every part, a few minutes

Every line is printed as soon as it is measured; the rows are written as JSON to
``benchmarks/results/offpolicy_defaults_<part>[_<tag>].json``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import pathlib
import statistics
import time
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3.common.callbacks import BaseCallback

from sb3_reinforce import OffPolicyPG
from sb3_reinforce.common.episode_replay_buffer import EpisodeReplayBuffer

try:
    from benchmarks.training_return import StopWhenSolved
except ModuleNotFoundError:  # run as a script (python benchmarks/<name>.py): this folder is on sys.path
    from training_return import StopWhenSolved  # type: ignore[no-redef]

RESULTS = pathlib.Path(__file__).parent / "results"

#: threshold: "solved" mean return of the last 20 training episodes; probe: the gradient study's
#: half-way return; budget: env steps per run.
ENVS: dict[str, dict[str, float]] = {
    "CartPole-v1": {"threshold": 475.0, "probe": 150.0, "budget": 50_000},
    "Acrobot-v1": {"threshold": -100.0, "probe": -250.0, "budget": 50_000},
}

#: Importance-weight estimators compared: (importance_weights, truncation).
ESTIMATORS: dict[str, tuple[str, float | None]] = {
    "per_decision c=None": ("per_decision", None),
    "per_decision c=2": ("per_decision", 2.0),
    "per_decision c=1": ("per_decision", 1.0),
    "per_step c=None": ("per_step", None),
    "per_step c=1": ("per_step", 1.0),
}

#: Data reuse: how many gradient steps per rollout, how long episodes stay in the buffer, and the
#: learning rates tried with it (Adam moves each parameter by about the learning rate per gradient
#: step, so more gradient steps also mean larger moves per rollout: the smaller rate compensates).
#: ``gs1 buf=2k`` is nearly on-policy: the buffer holds little more than the newest rollout.
REUSE: dict[str, dict[str, Any]] = {
    "gs1 buf=2k": {"gradient_steps": 1, "buffer_size": 2_000, "learning_rates": [1e-2]},
    "gs4 buf=2k": {"gradient_steps": 4, "buffer_size": 2_000, "learning_rates": [1e-2]},
    "gs4 buf=10k": {"gradient_steps": 4, "buffer_size": 10_000, "learning_rates": [1e-2, 3e-3]},
    "gs8 buf=10k": {"gradient_steps": 8, "buffer_size": 10_000, "learning_rates": [1e-2, 3e-3]},
}

#: The best candidates of the grid, run again on new seeds (``--grid confirm``).
CONFIRM: dict[str, dict[str, Any]] = {
    "per_step c=1 | gs4 buf=2k | lr=0.01": {
        "importance_weights": "per_step",
        "truncation": 1.0,
        "gradient_steps": 4,
        "buffer_size": 2_000,
        "learning_rate": 1e-2,
    },
    "per_step c=1 | gs1 buf=2k | lr=0.01": {
        "importance_weights": "per_step",
        "truncation": 1.0,
        "gradient_steps": 1,
        "buffer_size": 2_000,
        "learning_rate": 1e-2,
    },
    "per_step c=1 | gs4 buf=10k | lr=0.003": {
        "importance_weights": "per_step",
        "truncation": 1.0,
        "gradient_steps": 4,
        "buffer_size": 10_000,
        "learning_rate": 3e-3,
    },
    "per_decision c=None | gs4 buf=2k | lr=0.01": {
        "importance_weights": "per_decision",
        "truncation": None,
        "gradient_steps": 4,
        "buffer_size": 2_000,
        "learning_rate": 1e-2,
    },
}

#: Fixed for the whole study (chosen by short trials, see docs/offpolicy_pg.md).
COMMON: dict[str, Any] = {"n_episodes": 4, "batch_episodes": 8}

WINDOW = 20

#: The run whose parameter history the gradient probe uses.
PROBE_SETTINGS: dict[str, Any] = {
    "importance_weights": "per_step",
    "truncation": 1.0,
    "gradient_steps": 4,
    "buffer_size": 10_000,
    "learning_rate": 3e-3,
}


def make_model(env_id: str, settings: dict[str, Any], seed: int) -> OffPolicyPG:
    return OffPolicyPG("MlpPolicy", env_id, seed=seed, **{**COMMON, **settings})


# ----------------------------------------------------------------------------------- learning


def learning(envs: list[str], seeds: list[int], settings_grid: dict[str, dict[str, Any]], budget: int | None) -> list:
    rows = []
    for env_id in envs:
        spec = ENVS[env_id]
        env_budget = int(budget or spec["budget"])
        for name, settings in settings_grid.items():
            steps, walls, finals = [], [], []
            for seed in seeds:
                model = make_model(env_id, settings, seed)
                callback = StopWhenSolved(spec["threshold"], window=WINDOW)
                start = time.perf_counter()
                model.learn(env_budget, callback=callback)
                walls.append(time.perf_counter() - start)
                steps.append(callback.solved_at)
                finals.append(float(np.mean(callback.returns[-WINDOW:])))
                print(
                    f"  {env_id} | {name} | seed {seed}: solved at {callback.solved_at}, "
                    f"last {WINDOW} returns {finals[-1]:.0f} ({walls[-1]:.0f}s)",
                    flush=True,
                )
            counted = [s if s is not None else env_budget for s in steps]
            row = {
                "env": env_id,
                "setting": name,
                "settings": settings,
                "seeds": seeds,
                "steps_to_solve": steps,
                "median_steps": statistics.median(counted),
                "solved": sum(s is not None for s in steps),
                "final_returns": finals,
                "budget": env_budget,
                "mean_wall_s": float(np.mean(walls)),
            }
            rows.append(row)
            print(
                f"{env_id:12s} {name:44s} median {row['median_steps']:>7.0f} solved {row['solved']}/{len(seeds)} "
                f"final return {np.mean(finals):7.1f}",
                flush=True,
            )
    return rows


def learning_grid(learning_rates: list[float] | None = None) -> dict[str, dict[str, Any]]:
    """Every (reuse, learning rate, estimator); ``learning_rates`` restricts the rates tried."""
    grid = {}
    for reuse_name, reuse in REUSE.items():
        settings = {k: v for k, v in reuse.items() if k != "learning_rates"}
        for lr in reuse["learning_rates"]:
            if learning_rates is not None and lr not in learning_rates:
                continue
            for est_name, (mode, truncation) in ESTIMATORS.items():
                grid[f"{est_name} | {reuse_name} | lr={lr:g}"] = {
                    **settings,
                    "importance_weights": mode,
                    "truncation": truncation,
                    "learning_rate": lr,
                }
    return grid


# ----------------------------------------------------------------------------------- gradients


class StopAtReturn(BaseCallback):
    """Stop once the mean of the last ``WINDOW`` training returns reaches ``level`` and ``min_updates`` updates ran."""

    def __init__(self, level: float, min_updates: int):
        super().__init__()
        self.level, self.min_updates = level, min_updates
        self.returns: list[float] = []

    def _on_step(self) -> bool:
        for info in self.locals["infos"]:
            if "episode" in info:
                self.returns.append(info["episode"]["r"])
        reached = len(self.returns) >= WINDOW and np.mean(self.returns[-WINDOW:]) >= self.level
        return not (reached and self.model._n_updates >= self.min_updates)


def policy_gradient(model: OffPolicyPG, batch: Any) -> np.ndarray:
    """The estimator's gradient ``-grad L_pg`` at the model's current parameters (no update)."""
    losses = model.losses(batch)
    params = [p for p in model.policy.parameters() if p.requires_grad]
    grads = th.autograd.grad(losses.policy_loss, params, allow_unused=True)
    flat = [(g if g is not None else th.zeros_like(p)).flatten().numpy() for g, p in zip(grads, params)]
    return -np.concatenate(flat)


def sample_episodes(policy: Any, env_id: str, n_episodes: int, seed: int) -> EpisodeReplayBuffer:
    """``n_episodes`` episodes of ``policy`` with the log-probabilities of its actions."""
    env = gym.make(env_id)
    buffer = EpisodeReplayBuffer(10**7, env.observation_space, env.action_space)
    obs, _ = env.reset(seed=seed)
    steps: list[tuple[np.ndarray, np.ndarray, float, float]] = []
    while buffer.n_episodes < n_episodes:
        with th.no_grad():
            distribution = policy.get_distribution(th.as_tensor(obs[None]))
            action = distribution.get_actions()
            log_prob = float(distribution.log_prob(action)[0])
        action_np = action.numpy()[0]
        next_obs, reward, terminated, truncated, _ = env.step(action_np)
        steps.append((obs, action_np, float(reward), log_prob))
        obs = next_obs
        if terminated or truncated:
            observations, actions, rewards, log_probs = (np.array(x) for x in zip(*steps))
            buffer.add(observations, actions, rewards, log_probs, obs, bool(truncated and not terminated))
            steps = []
            obs, _ = env.reset()
    return buffer


def chunk_gradients(model: OffPolicyPG, buffer: EpisodeReplayBuffer, chunk: int) -> np.ndarray:
    """The estimator over consecutive chunks of ``chunk`` episodes: independent draws of one update's gradient."""
    starts = range(0, buffer.n_episodes - chunk + 1, chunk)
    return np.array([policy_gradient(model, buffer._get_samples(np.arange(s, s + chunk))) for s in starts])


def staleness_probe(
    env_id: str, seed: int, ages: list[int], episodes: int, chunk: int, reference_episodes: int
) -> list[dict[str, Any]]:
    """
    Train to the env's probe return, then measure every estimator on data ``k`` updates old.

    For each age ``k``: ``episodes`` fresh episodes of the policy of ``k`` updates ago, split into
    chunks of ``chunk`` episodes; each chunk gives one estimate at the current parameters.  The
    reference is the same with ``k = 0`` (on-policy: every estimator is REINFORCE) and
    ``reference_episodes`` episodes.
    """
    spec = ENVS[env_id]
    model = make_model(env_id, PROBE_SETTINGS, seed)
    history: list[dict[str, th.Tensor]] = []
    update = model.update_on_batch

    def recording_update(batch: Any) -> dict[str, float]:
        history.append({k: v.detach().clone() for k, v in model.policy.state_dict().items()})
        del history[: -max(ages) - 1]
        return update(batch)

    model.update_on_batch = recording_update  # type: ignore[method-assign]
    model.learn(int(spec["budget"]), callback=StopAtReturn(spec["probe"], max(ages)))
    history.append({k: v.detach().clone() for k, v in model.policy.state_dict().items()})
    behaviour = model.policy_class(
        model.observation_space, model.action_space, model.lr_schedule, use_sde=False, **model.policy_kwargs
    )
    samples: dict[tuple[int, str], np.ndarray] = {}
    stats: dict[tuple[int, str], dict[str, float]] = {}
    for age in [0, *ages]:
        behaviour.load_state_dict(history[-1 - age])
        buffer = sample_episodes(behaviour, env_id, episodes if age else reference_episodes, seed + 1000 * age)
        # On-policy data (age 0): every estimator is REINFORCE, one is enough.
        for name, (mode, truncation) in ESTIMATORS.items() if age > 0 else [("on-policy", ("per_step", None))]:
            model.importance_weights, model.truncation = mode, truncation
            samples[age, name] = chunk_gradients(model, buffer, chunk)
            stats[age, name] = model.losses(buffer.all_episodes()).stats
    on_policy = samples[0, "on-policy"]
    reference = on_policy.mean(axis=0)
    reference_var = on_policy.var(axis=0, ddof=1).sum() / len(on_policy)
    norm2 = float(reference @ reference)
    rows = [
        {
            "env": env_id,
            "seed": seed,
            "age": 0,
            "estimator": "on-policy",
            "probe_steps": model.num_timesteps,
            "bias2": 0.0,
            "noise2": float(reference_var / norm2),
            "var": float(on_policy.var(axis=0, ddof=1).sum()) / norm2,
            "cos": float(np.mean([d @ reference / (np.linalg.norm(d) * np.sqrt(norm2) + 1e-12) for d in on_policy])),
            "ess": 1.0,
            "trunc": 0.0,
        }
    ]
    for age in ages:
        for name in ESTIMATORS:
            draws = samples[age, name]
            mean = draws.mean(axis=0)
            noise = draws.var(axis=0, ddof=1).sum() / len(draws) + reference_var
            cos = [float(d @ reference / (np.linalg.norm(d) * np.sqrt(norm2) + 1e-12)) for d in draws]
            rows.append(
                {
                    "env": env_id,
                    "seed": seed,
                    "age": age,
                    "estimator": name,
                    "probe_steps": model.num_timesteps,
                    "bias2": float((np.sum((mean - reference) ** 2) - noise) / norm2),
                    "noise2": float(noise / norm2),
                    "var": float(draws.var(axis=0, ddof=1).sum()) / norm2,
                    "cos": float(np.mean(cos)),
                    "ess": stats[age, name]["train/ess_fraction"],
                    "trunc": stats[age, name]["train/truncated_fraction"],
                }
            )
    return rows


def gradients(envs: list[str], seeds: list[int], ages: list[int], episodes: int, chunk: int, reference: int) -> list:
    rows: list[dict[str, Any]] = []
    for env_id in envs:
        for seed in seeds:
            start = time.perf_counter()
            new = staleness_probe(env_id, seed, ages, episodes, chunk, reference)
            rows.extend(new)
            print(
                f"  {env_id} | seed {seed}: probe at {new[0]['probe_steps']} steps ({time.perf_counter() - start:.0f}s)"
            )
        for age, name in [(0, "on-policy"), *itertools.product(ages, ESTIMATORS)]:
            picked = [r for r in rows if r["env"] == env_id and r["age"] == age and r["estimator"] == name]
            mean = {
                key: float(np.mean([r[key] for r in picked]))
                for key in ("bias2", "noise2", "var", "cos", "ess", "trunc")
            }
            bias = np.sqrt(max(mean["bias2"], 0.0))
            print(
                f"{env_id:12s} age {age:3d} {name:20s} bias {bias:5.2f} (noise {np.sqrt(mean['noise2']):4.2f}) "
                f"var {mean['var']:8.2f} cos {mean['cos']:+.2f} ess {mean['ess']:.2f} trunc {mean['trunc']:.2f}",
                flush=True,
            )
    return rows


# ----------------------------------------------------------------------------------- memory


def memory(capacity: int = 100_000) -> list:
    """Bytes per stored transition: EpisodeReplayBuffer against SB3's (Dict)ReplayBuffer, same spaces and capacity."""
    from gymnasium import spaces
    from stable_baselines3.common.buffers import DictReplayBuffer, ReplayBuffer

    cases = {
        "CartPole-v1": (gym.make("CartPole-v1").observation_space, gym.make("CartPole-v1").action_space),
        "Acrobot-v1": (gym.make("Acrobot-v1").observation_space, gym.make("Acrobot-v1").action_space),
        "Pendulum-v1": (gym.make("Pendulum-v1").observation_space, gym.make("Pendulum-v1").action_space),
        "Atari 4x84x84 uint8, Discrete(6)": (spaces.Box(0, 255, (4, 84, 84), np.uint8), spaces.Discrete(6)),
        "Dict(vec 5, image 3x8x8), Box(2)": (
            spaces.Dict({"vec": spaces.Box(-1, 1, (5,)), "image": spaces.Box(0, 255, (3, 8, 8), np.uint8)}),
            spaces.Box(-1, 1, (2,)),
        ),
    }
    rows = []
    for name, (obs_space, action_space) in cases.items():
        ours = EpisodeReplayBuffer(capacity, obs_space, action_space).nbytes
        reference_class = DictReplayBuffer if isinstance(obs_space, spaces.Dict) else ReplayBuffer
        ref = reference_class(capacity, obs_space, action_space)
        arrays = [ref.observations, ref.next_observations, ref.actions, ref.rewards, ref.dones, ref.timeouts]
        theirs = sum(sum(a.nbytes for a in x.values()) if isinstance(x, dict) else x.nbytes for x in arrays)
        rows.append({"spaces": name, "episode_replay_buffer": ours / capacity, "sb3_replay_buffer": theirs / capacity})
        print(
            f"{name:36s} EpisodeReplayBuffer {ours / capacity:9.1f} B/transition, ReplayBuffer {theirs / capacity:9.1f}"
        )
    return rows


# ----------------------------------------------------------------------------------- tables


def tables() -> None:
    """Print the markdown tables of docs/offpolicy_pg.md from the JSON results."""

    def steps(value: int | None) -> str:
        return "–" if value is None else f"{value:,}".replace(",", " ")

    learning_files = sorted(p for p in RESULTS.glob("offpolicy_defaults_learning*.json") if "quick" not in p.name)
    for confirm in (False, True):
        for env_id in ENVS:
            rows = [
                row
                for path in learning_files
                if ("confirm" in path.name) == confirm
                for row in json.loads(path.read_text())
                if row["env"] == env_id
            ]
            if not rows:
                continue
            print(f"\n{env_id}{' (confirmation seeds)' if confirm else ''}\n")
            print("| estimator | reuse | lr | steps to solve per seed | median | solved | mean final return |")
            print("|---|---|---|---|---|---|---|")
            for row in rows:
                estimator, reuse, lr = (part.strip() for part in row["setting"].split("|"))
                per_seed = ", ".join(steps(v) for v in row["steps_to_solve"])
                median = steps(int(row["median_steps"])) if row["solved"] * 2 > len(row["seeds"]) else "–"
                print(
                    f"| {estimator} | {reuse} | {lr.removeprefix('lr=')} | {per_seed} | {median} "
                    f"| {row['solved']}/{len(row['seeds'])} | {np.mean(row['final_returns']):.0f} |"
                )
    path = RESULTS / "offpolicy_defaults_gradients.json"
    if path.exists():
        rows = json.loads(path.read_text())
        print("\n| env | data age (updates) | estimator | bias | var | cos | ESS | truncated |")
        print("|---|---|---|---|---|---|---|---|")
        groups = sorted({(r["env"], r["age"], r["estimator"]) for r in rows}, key=lambda k: (k[0], k[1]))
        order = ["on-policy", *ESTIMATORS]
        for env_id, age, name in sorted(groups, key=lambda k: (k[0], k[1], order.index(k[2]))):
            picked = [r for r in rows if (r["env"], r["age"], r["estimator"]) == (env_id, age, name)]
            mean = {key: float(np.mean([r[key] for r in picked])) for key in ("bias2", "var", "cos", "ess", "trunc")}
            print(
                f"| {env_id} | {age} | {name} | {np.sqrt(max(mean['bias2'], 0.0)):.2f} | {mean['var']:.2f} "
                f"| {mean['cos']:+.2f} | {mean['ess']:.2f} | {mean['trunc']:.2f} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", default="all", choices=["learning", "gradients", "memory", "tables", "all"])
    parser.add_argument("--envs", nargs="+", default=list(ENVS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--budget", type=int, default=None, help="env steps per learning run (default: per env)")
    parser.add_argument("--ages", type=int, nargs="+", default=[1, 4, 16, 64], help="data ages (updates) probed")
    parser.add_argument("--probe-episodes", type=int, default=160, help="episodes per age in the gradient probe")
    parser.add_argument("--chunk", type=int, default=8, help="episodes per estimate in the gradient probe")
    parser.add_argument("--reference-episodes", type=int, default=640, help="on-policy episodes of the reference")
    parser.add_argument("--grid", default="main", choices=["main", "confirm"], help="the full grid or CONFIRM")
    parser.add_argument("--settings", default=None, help="JSON dict of named settings to run instead of the grid")
    parser.add_argument("--lrs", type=float, nargs="+", default=None, help="only these learning rates of the grid")
    parser.add_argument("--tag", default="", help="suffix of the result files")
    parser.add_argument("--quick", action="store_true", help="CartPole, one seed, two settings, 10k steps")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    th.set_num_threads(args.threads)
    th.distributions.Distribution.set_default_validate_args(False)  # speed only: the samples are valid

    if args.settings:
        grid = json.loads(args.settings)
    elif args.grid == "confirm":
        grid = CONFIRM
    else:
        grid = learning_grid(args.lrs)
    if args.quick:
        args.envs, args.seeds, args.budget = ["CartPole-v1"], [0], 10_000
        grid = {k: grid[k] for k in list(grid)[:2]}
        args.ages, args.probe_episodes, args.reference_episodes = [1, 8], 32, 64
    RESULTS.mkdir(parents=True, exist_ok=True)
    suffix = ("_quick" if args.quick else "") + (f"_{args.tag}" if args.tag else "")
    if args.part == "tables":
        tables()
        return
    if args.part in ("memory", "all"):
        rows = memory()
        (RESULTS / "offpolicy_defaults_memory.json").write_text(json.dumps(rows, indent=1))
    if args.part in ("gradients", "all"):
        rows = gradients(args.envs, args.seeds, args.ages, args.probe_episodes, args.chunk, args.reference_episodes)
        (RESULTS / f"offpolicy_defaults_gradients{suffix}.json").write_text(json.dumps(rows, indent=1))
    if args.part in ("learning", "all"):
        rows = learning(args.envs, args.seeds, grid, args.budget)
        (RESULTS / f"offpolicy_defaults_learning{suffix}.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
