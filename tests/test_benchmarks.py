"""The benchmark scripts run end to end on tiny configurations, and their bookkeeping is right.

No timing is asserted: the figures the scripts measure are reported in docs/benchmarks.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmarks import gradient_quality, sample_efficiency, throughput


# --- sample efficiency ---------------------------------------------------------------------------
def result(returns: list[float], threshold: float = 10.0, stop_after: int = 3) -> sample_efficiency.RunResult:
    steps = [100 * (i + 1) for i in range(len(returns))]
    return sample_efficiency.RunResult(
        "E", "reinforce", 0, 1000, threshold, steps=steps, returns=returns, stop_after=stop_after
    )


def test_reached_and_stayed() -> None:
    run = result([1, 12, 3, 11, 15, 10])
    assert run.reached == 200  # first at or above 10
    assert run.stayed == 400  # from 400 on, every evaluation is >= 10, 3 of them
    assert run.final_return == 10
    assert result([1, 12, 3, 11, 15, 10], stop_after=4).stayed is None  # the final streak is too short
    assert result([1, 2, 30]).stayed is None  # got there only at the last evaluation
    never = result([1, 2, 3])
    assert never.reached is None and never.stayed is None
    lost = result([12, 13, 2])
    assert lost.reached == 100 and lost.stayed is None


def test_summary_medians_count_unsolved_runs_as_slowest() -> None:
    runs = [result([1, 12, 12], 10.0, 2), result([12, 12, 12], 10.0, 2), result([1, 1, 1], 10.0, 2)]
    for seed, run in enumerate(runs):
        run.seed = seed
    (row,) = sample_efficiency.summarize(runs)
    assert row["reached"] == [200, 100, None] and row["n_reached"] == 2
    assert row["median_reached"] == 200  # median of (100, 200, inf)
    runs[0].returns = [1, 1, 1]
    (row,) = sample_efficiency.summarize(runs)
    assert row["median_reached"] is None  # only 1 of 3 seeds got there
    assert "– (1/3)" in sample_efficiency.markdown_table([row])


@pytest.mark.parametrize("algo", ["reinforce", "offpolicy_pg", "a2c"])
def test_run_one_through_rl_zoo3_hyperparameters(algo: str) -> None:
    setting = sample_efficiency.EnvSetting(threshold=1e9, budget=800, eval_freq=400, eval_episodes=2)
    run = sample_efficiency.run_one("CartPole-v1", algo, 0, setting)
    assert run.steps == sorted(run.steps) and run.steps[-1] >= 800
    assert len(run.returns) == len(run.steps) >= 3 and all(r >= 8 for r in run.returns)  # CartPole: >= 8 steps
    assert run.n_envs == (8 if algo == "a2c" else 1)  # rl-zoo3's a2c.yml uses 8 envs on CartPole-v1
    assert run.reached is None and run.wall_s > 0


@pytest.mark.parametrize("algo", ["reinforce", "ppo"])
def test_runs_record_both_policies_and_training_diagnostics(algo: str) -> None:
    setting = sample_efficiency.EnvSetting(threshold=1e9, budget=3_000, eval_freq=1_000, eval_episodes=2)
    run = sample_efficiency.run_one("CartPole-v1", algo, 0, setting)
    assert len(run.stochastic_returns) == len(run.returns) == len(run.diagnostics) >= 4
    assert all(r >= 8 for r in run.stochastic_returns)
    steps = [d["optimizer_steps"] for d in run.diagnostics]
    assert steps == sorted(steps) and steps[0] == 0 and steps[-1] > 0
    later = run.diagnostics[-1]
    assert 0 < later["entropy"] <= np.log(2) + 1e-6 and later["ep_len_mean"] >= 8
    if algo == "reinforce":  # the grad norm is ours; PPO takes 10 epochs of minibatch steps per rollout
        assert later["grad_norm"] > 0 and later["clipped"] == 0.0  # REINFORCE's default: no clipping
        assert np.isnan(later["approx_kl"]) and np.isnan(later["gradient_steps"])  # one step, nothing to limit
    else:
        assert steps[-1] > 50 and np.isnan(later["clipped"])  # SB3 does not log the gradient norm
        assert later["approx_kl"] > 0
    table = sample_efficiency.diagnostics_table([run], fractions=(0.5, 1.0))
    assert f"| CartPole-v1 | {algo} | 1 500 |" in table and f"| CartPole-v1 | {algo} | 3 000 |" in table


def test_final_evaluation_plays_the_trained_model_each_way() -> None:
    setting = sample_efficiency.EnvSetting(threshold=1e9, budget=600, eval_freq=300, eval_episodes=1, final_episodes=3)
    run = sample_efficiency.run_one("CartPole-v1", "reinforce", 0, setting)
    assert len(run.final_episode_returns) == len(run.final_stochastic_episode_returns) == 3
    assert all(r >= 8 for r in run.final_episode_returns + run.final_stochastic_episode_returns)
    assert run.final_eval_return == pytest.approx(np.mean(run.final_episode_returns))
    other = result([1.0, 2.0])
    other.seed = 1
    assert np.isnan(other.final_eval_return)  # no final evaluation asked for
    rows = sample_efficiency.summarize([run, other])
    assert rows[0]["final_episodes"] == 3
    assert rows[0]["final_eval_returns"][0] == run.final_eval_return
    no_final = sample_efficiency.summarize([other])
    assert no_final[0]["final_episodes"] == 0 and "| – |" in sample_efficiency.markdown_table(no_final)
    alone = sample_efficiency.summarize([run])
    table = sample_efficiency.markdown_table(alone)
    assert f"| 3: {run.final_eval_return:.1f} / {run.final_eval_stochastic_return:.1f} |" in table
    assert sample_efficiency.env_setting("LunarLander-v3").final_episodes == 100
    assert sample_efficiency.env_setting("LunarLander-v3", final_episodes=0).final_episodes == 0


def test_diagnostics_record_how_many_gradient_steps_target_kl_left() -> None:
    setting = sample_efficiency.EnvSetting(threshold=1e9, budget=3_000, eval_freq=1_000, eval_episodes=2)
    hyperparams = {"gradient_steps": 8, "target_kl": 0.001, "learning_rate": 0.01}
    run = sample_efficiency.run_one("CartPole-v1", "offpolicy_pg", 0, setting, hyperparams=hyperparams)
    later = run.diagnostics[-1]
    assert 1 <= later["gradient_steps"] < 8 and later["approx_kl"] > 0


@pytest.mark.parametrize("algo", ["reinforce", "ppo_lstm"])
def test_run_one_partially_observable_env_with_lstm(algo: str) -> None:
    """CartPoleNoVel-v1 (rl-zoo3's, registered in the worker) with our LSTM entry and RecurrentPPO's, side by side."""
    setting = sample_efficiency.EnvSetting(threshold=1e9, budget=600, eval_freq=300, eval_episodes=1)
    run = sample_efficiency.run_one("CartPoleNoVel-v1", algo, 0, setting)
    assert run.steps[-1] >= 600 and len(run.returns) >= 3 and all(r >= 8 for r in run.returns)


def test_run_stops_once_it_stayed_solved() -> None:
    setting = sample_efficiency.EnvSetting(threshold=0.0, budget=100_000, eval_freq=200, eval_episodes=1)
    run = sample_efficiency.run_one("CartPole-v1", "reinforce", 0, setting, stop_after=3)
    assert len(run.steps) == 3 and run.reached == run.stayed == run.steps[0]
    assert run.steps[-1] < 1_000


def test_run_one_hyperparams_replace_file_entries() -> None:
    setting = sample_efficiency.EnvSetting(threshold=1e9, budget=400, eval_freq=400, eval_episodes=1)
    run = sample_efficiency.run_one("CartPole-v1", "reinforce", 0, setting, hyperparams={"n_envs": 2})
    assert run.n_envs == 2  # reinforce.yml's CartPole-v1 entry has the default of 1


def test_main_writes_runs_table_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--envs", "CartPole-v1", "--algos", "reinforce", "ppo", "--seeds", "0", "--budget", "600"]
    args += ["--eval-freq", "300", "--eval-episodes", "1", "--results-dir", str(tmp_path), "--tag", "_t"]
    sample_efficiency.main(args)
    runs = sample_efficiency.load_runs(tmp_path / "sample_efficiency_t.jsonl")
    assert sorted(r.algo for r in runs) == ["ppo", "reinforce"]
    summary = json.loads((tmp_path / "sample_efficiency_t.json").read_text())
    assert [row["algo"] for row in summary] == ["reinforce", "ppo"]
    assert (tmp_path / "sample_efficiency_t_CartPole-v1.png").stat().st_size > 10_000
    assert "| CartPole-v1 | reinforce |" in capsys.readouterr().out
    sample_efficiency.main(args)  # resumes: nothing left to run
    assert len(sample_efficiency.load_runs(tmp_path / "sample_efficiency_t.jsonl")) == 2


# --- throughput ----------------------------------------------------------------------------------
def test_throughput_measures_every_entry(tmp_path: Path) -> None:
    throughput.main(
        [
            *("--entries", "env", "rollout", "reinforce", "a2c"),
            *("--n-envs", "2", "--steps", "200", "--repeats", "2", "--warmup", "0"),
            *("--results-dir", str(tmp_path), "--tag", "_t"),
        ]
    )
    saved = json.loads((tmp_path / "throughput_t.json").read_text())
    rows = {row["entry"]: row for row in saved["rows"]}
    assert set(rows) == {"env", "rollout", "reinforce", "a2c"}
    assert all(len(row["rates"]) == 2 and row["median"] > 0 for row in rows.values())
    assert rows["a2c"]["ratio_to_reference"] == pytest.approx(1.0)
    assert rows["env"]["ratio_to_reference"] == pytest.approx(rows["env"]["median"] / rows["a2c"]["median"])


def test_throughput_of_the_lstm_entries(tmp_path: Path) -> None:
    """Our classes and RecurrentPPO with the same ``MlpLstmPolicy``, on request."""
    entries = ["reinforce_lstm", "offpolicy_pg_lstm", "ppo_lstm"]
    assert not set(entries) & set(throughput.ENTRIES)  # not in the default run
    model = throughput.build_learner("offpolicy_pg_lstm", 2, 0, 0)
    assert type(model).__name__ == "OffPolicyPG" and model.recurrent
    args = ["--entries", *entries, "--n-envs", "2", "--steps", "100", "--repeats", "1", "--warmup", "0"]
    throughput.main([*args, "--results-dir", str(tmp_path), "--tag", "_t"])
    rows = json.loads((tmp_path / "throughput_t.json").read_text())["rows"]
    assert [row["entry"] for row in rows] == entries and all(row["median"] > 0 for row in rows)


def test_throughput_masked_task(tmp_path: Path) -> None:
    throughput.main(
        [
            *("--masked", "--entries", "env", "reinforce", "offpolicy_pg"),
            *("--n-envs", "2", "--steps", "200", "--repeats", "1", "--warmup", "0"),
            *("--results-dir", str(tmp_path), "--tag", "_m"),
        ]
    )
    rows = {row["entry"]: row for row in json.loads((tmp_path / "throughput_m.json").read_text())["rows"]}
    assert set(rows) == {"env", "reinforce", "offpolicy_pg"}  # MaskablePPO's default rollout is too long for a test
    assert all(row["median"] > 0 for row in rows.values())


@pytest.mark.parametrize("algo", ["reinforce", "ppo_mask"])
def test_masked_task_runs_with_mask_aware_evaluation(algo: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Taxi-v4 through rl-zoo3 (InfoActionMasker from the entry), MaskablePPO from this folder's file."""
    calls: list[bool] = []
    evaluate = sample_efficiency.evaluate_masked_policy

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(True)
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(sample_efficiency, "evaluate_masked_policy", spy)
    setting = sample_efficiency.EnvSetting(threshold=1e9, budget=400, eval_freq=400, eval_episodes=1)
    small = {"n_steps": 16, "batch_size": 64, "n_epochs": 1} if algo == "ppo_mask" else None  # a short test
    run = sample_efficiency.run_one("Taxi-v4", algo, 0, setting, hyperparams=small)
    assert run.n_envs == 8 and len(run.returns) >= 2 and calls


def test_score_timing_tiny_run(tmp_path: Path) -> None:
    throughput.main(["--scores", "--score-steps", "20", "--repeats", "1", "--results-dir", str(tmp_path)])
    (row,) = json.loads((tmp_path / "throughput_scores.json").read_text())["rows"]
    assert row["steps"] == 20 and row["chunked_s"] > 0 and row["whole_graph_s"] > 0


def test_guard_cost_tiny_run(tmp_path: Path) -> None:
    throughput.main(["--guard", "--guard-steps", "2", "--repeats", "1", "--results-dir", str(tmp_path)])
    saved = json.loads((tmp_path / "throughput_guard.json").read_text())
    assert set(saved["ms"]) == {"update", "step", "guarded_step", "previous_guard_copies"}
    assert all(value > 0 for value in saved["ms"].values())
    assert saved["ms"]["update"] > saved["ms"]["step"]  # the update includes a step


# --- gradient quality ----------------------------------------------------------------------------
def test_figures_recover_known_bias_and_spread() -> None:
    rng = np.random.default_rng(0)
    exact = np.array([3.0, 4.0])  # norm 5
    samples = exact + np.array([0.5, 0.0]) + rng.normal(0.0, 1.0, size=(20_000, 2))
    figures = gradient_quality.figures(samples, exact)
    assert figures["rel_bias"] == pytest.approx(0.1, abs=0.005)
    assert figures["rel_se"] == pytest.approx(np.sqrt(2) / 5, rel=0.02)
    assert figures["rel_rmse"] == pytest.approx(np.sqrt(2 + 0.25) / 5, rel=0.02)
    assert figures["noise"] == pytest.approx(np.sqrt(2 / 20_000) / 5, rel=0.02)


def test_gradient_quality_tiny_run(tmp_path: Path) -> None:
    rows = gradient_quality.run(
        ["baselines", "offpolicy"], draws=4, n_episodes=3, estimators=[("per_decision", None)], distances=[0.35]
    )
    names = [row.estimator for row in rows]
    assert names == [
        *(
            f"{returns}, baseline={b}"
            for returns in ("reward-to-go", "whole return")
            for b in gradient_quality.BASELINES
        ),
        "per_decision c=None",
        "no weights",
    ]
    assert all(row.draws == 4 and np.isfinite(row.rel_se) and row.rel_se > 0 for row in rows)
    gradient_quality.plot(rows, tmp_path / "g.png")
    assert (tmp_path / "g.png").stat().st_size > 10_000
    assert "| reward-to-go, baseline=mean | 0.0 |" in gradient_quality.markdown_tables(rows)
