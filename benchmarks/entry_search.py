"""Choose an rl-zoo3 hyperparameter entry: train named candidates side by side and rank them.

A candidate file (JSON, kept in ``benchmarks/candidates/``) maps a name to the hyperparameters that
replace those of the algorithm's entry for the env (as rl-zoo3's ``-params`` does; ``policy_kwargs``
and ``normalize`` are given as rl-zoo3 strings or booleans).  Every candidate is trained on every
seed with :func:`benchmarks.sample_efficiency.run_one` (rl-zoo3's ``ExperimentManager``, the same
deterministic evaluation as the sample-efficiency benchmark) and scored by the mean return of its
last ``--last`` evaluations, averaged over seeds: what the entry gives at the end of its budget,
less noisy than the final evaluation alone.

Usage (from the repository root)::

    python -m benchmarks.entry_search --env Pendulum-v1 --algo reinforce \\
        --candidates benchmarks/candidates/pendulum_reinforce.json --budget 1000000 --eval-freq 100000 \\
        --seeds 0 1 --workers 2
    python -m benchmarks.entry_search --env Pendulum-v1 --algo reinforce \\
        --candidates benchmarks/candidates/pendulum_reinforce.json --report

Runs are appended to ``benchmarks/results/entry_search_<candidate file name>.jsonl`` as they finish;
a (candidate, seed) already there is not repeated.  The report prints the ranking as a markdown table.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmarks.sample_efficiency import ALGOS, ENVS, RESULTS, STOP_AFTER, RunResult, env_setting, run_one


def load_candidates(path: Path) -> dict[str, dict[str, Any]]:
    """
    Read a candidate file and check its shape.

    :param path: JSON object ``{name: {hyperparameter: value}}``.
    :return: The candidates, in file order.
    """
    candidates = json.loads(path.read_text())
    if not isinstance(candidates, dict) or not all(isinstance(v, dict) for v in candidates.values()):
        raise ValueError(f"{path}: expected a JSON object mapping candidate names to hyperparameter objects")
    return candidates


def tail_score(run: RunResult, last: int) -> float:
    """
    Mean return of the run's last ``last`` evaluations.

    :param run: A finished run.
    :param last: How many evaluations to average (fewer if the run has fewer).
    :return: The mean.
    """
    return float(statistics.fmean(run.returns[-last:]))


def rank(records: Sequence[dict[str, Any]], last: int) -> list[dict[str, Any]]:
    """
    Score every candidate: the mean over its seeds of :func:`tail_score`, best first.

    :param records: Lines of the results file (``candidate``, ``hyperparams`` and the run's fields).
    :param last: Evaluations averaged per run.
    :return: One row per candidate: name, hyperparameters, per-seed scores and final returns, score.
    """
    rows: dict[str, dict[str, Any]] = {}
    for record in sorted(records, key=lambda r: r["run"]["seed"]):
        run = RunResult(**record["run"])
        row = rows.setdefault(
            record["candidate"],
            dict(candidate=record["candidate"], hyperparams=record["hyperparams"], seeds=[], scores=[], finals=[]),
        )
        row["seeds"].append(run.seed)
        row["scores"].append(tail_score(run, last))
        row["finals"].append(run.final_return)
    for row in rows.values():
        row["score"] = float(statistics.fmean(row["scores"]))
    return sorted(rows.values(), key=lambda row: -row["score"])


def markdown_ranking(rows: Sequence[dict[str, Any]], last: int) -> str:
    """
    The ranking as a markdown table.

    :param rows: Rows from :func:`rank`.
    :param last: Evaluations averaged per run (for the header).
    :return: Markdown text.
    """
    lines = [
        f"| candidate | score (mean of last {last} evaluations, mean over seeds) | per seed | final per seed "
        "| hyperparameters |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        per_seed = ", ".join(f"{s}: {v:.1f}" for s, v in zip(row["seeds"], row["scores"]))
        finals = ", ".join(f"{v:.1f}" for v in row["finals"])
        lines.append(
            f"| {row['candidate']} | {row['score']:.1f} | {per_seed} | {finals} | `{json.dumps(row['hyperparams'])}` |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    """
    Command-line entry point (see the module docstring).

    :param argv: Arguments (default: ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", required=True, choices=list(ENVS))
    parser.add_argument("--algo", required=True, choices=list(ALGOS))
    parser.add_argument("--candidates", type=Path, required=True, help="JSON file of named candidates")
    parser.add_argument("--only", nargs="+", default=None, help="train only these candidates of the file")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--workers", type=int, default=1, help="runs in parallel (one process and torch thread each)")
    parser.add_argument("--budget", type=int, default=None, help="env steps per run (default: the env's)")
    parser.add_argument("--eval-freq", type=int, default=None, help="env steps between evaluations")
    parser.add_argument("--eval-episodes", type=int, default=None, help="deterministic episodes per evaluation")
    parser.add_argument("--last", type=int, default=3, help="evaluations averaged into a run's score")
    parser.add_argument("--results-dir", type=Path, default=RESULTS, help="folder of the result files")
    parser.add_argument("--report", action="store_true", help="only print the ranking of the results so far")
    args = parser.parse_args(argv)

    candidates = load_candidates(args.candidates)
    unknown = sorted(set(args.only or []) - set(candidates))
    if unknown:
        parser.error(f"--only: {unknown} not in {args.candidates} (it has {list(candidates)})")
    args.results_dir.mkdir(parents=True, exist_ok=True)
    runs_path = args.results_dir / f"entry_search_{args.candidates.stem}.jsonl"
    records = [json.loads(line) for line in runs_path.read_text().splitlines()] if runs_path.exists() else []
    if not args.report:
        setting = env_setting(args.env, args.budget, args.eval_freq, args.eval_episodes)
        done = {(r["candidate"], r["run"]["seed"]) for r in records}
        jobs = [(n, s) for n in (args.only or candidates) for s in args.seeds if (n, s) not in done]
        print(f"{len(jobs)} runs to do ({len(done)} already in {runs_path})", flush=True)
        with ProcessPoolExecutor(max_workers=args.workers) as pool:
            futures = {
                pool.submit(run_one, args.env, args.algo, seed, setting, STOP_AFTER, candidates[name]): (name, seed)
                for name, seed in jobs
            }
            for future in as_completed(futures):
                name, seed = futures[future]
                result = future.result()
                record = dict(candidate=name, hyperparams=candidates[name], run=asdict(result))
                records.append(record)
                with runs_path.open("a") as file:
                    file.write(json.dumps(record) + "\n")
                curve = ", ".join(f"{r:.0f}" for r in result.returns)
                print(f"{name} seed {seed}: {result.wall_s:.0f} s, evaluations [{curve}]", flush=True)
    print(markdown_ranking(rank([r for r in records if r["candidate"] in candidates], args.last), args.last))


if __name__ == "__main__":
    main()
