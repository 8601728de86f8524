"""
rl-zoo3 integration (``sb3_reinforce.zoo``): registry, CLI, hyperparameter files, samplers, shared Optuna storage.

The end-to-end tests run rl-zoo3's real scripts on CartPole-v1 for a few thousand steps; the ones
whose name ends in ``_slow`` take several seconds each (deselect them with ``-k "not slow"``).  The
PostgreSQL test starts a throwaway server on 127.0.0.1 (binaries from ``.ci/run``'s
``apt-get install postgresql``); it is skipped, saying so, only where these binaries are absent.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("rl_zoo3", reason="rl-zoo3 is not installed (pip install 'sb3-reinforce[zoo]')")

import optuna
import yaml
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from sb3_reinforce.zoo import (
    HYPERPARAMS_DIR,
    MissingHyperparametersError,
    ZooDependencyError,
    cli,
    dependencies,
    hyperparams_file,
)
from sb3_reinforce.zoo.registry import ZOO_ALGOS, register

ROOT = Path(__file__).resolve().parent.parent
ALGOS = list(ZOO_ALGOS)
ENV = "CartPole-v1"
# Few threads and no progress output: the CI machine has 2 cores.
SUBPROCESS_ENV = {**os.environ, "MPLBACKEND": "Agg", "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
# Small and fast settings for the CLI runs (the YAML entries themselves are tested for building).
FAST_PARAMS = {"reinforce": ["n_episodes:4"], "offpolicy_pg": ["n_episodes:2", "batch_episodes:4", "gradient_steps:1"]}


def zoo(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """Run ``python -m sb3_reinforce.zoo ARGS`` in a fresh interpreter (the real CLI)."""
    return subprocess.run(
        [sys.executable, "-m", "sb3_reinforce.zoo", *args],
        capture_output=True,
        text=True,
        env=SUBPROCESS_ENV,
        cwd=ROOT,
        timeout=timeout,
        check=False,
    )


def assert_ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, (
        f"exit {result.returncode}\nstdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
    )


# --- optional dependency, registry, hyperparameter files --------------------------------------


def test_import_sb3_reinforce_does_not_import_rl_zoo3() -> None:
    code = "import sys, sb3_reinforce, sb3_reinforce.zoo; assert 'rl_zoo3' not in sys.modules, 'rl_zoo3 imported'"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_missing_rl_zoo3_gives_install_hint(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_find_spec = dependencies.importlib.util.find_spec
    monkeypatch.setattr(
        dependencies.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "rl_zoo3" else real_find_spec(name, *a),
    )
    with pytest.raises(ZooDependencyError, match=r"sb3-reinforce\[zoo\]"):
        dependencies.require_rl_zoo3()
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "--algo", "reinforce"])
    assert exit_info.value.code == 2
    assert "needs rl-zoo3" in capsys.readouterr().err


def test_register_adds_algorithms_and_samplers() -> None:
    from rl_zoo3.hyperparams_opt import HYPERPARAMS_CONVERTER, HYPERPARAMS_SAMPLER
    from rl_zoo3.utils import ALGOS as RL_ZOO3_ALGOS

    import sb3_reinforce

    assert register() == ALGOS
    assert register() == ALGOS  # idempotent
    assert RL_ZOO3_ALGOS["reinforce"] is sb3_reinforce.REINFORCE
    assert RL_ZOO3_ALGOS["offpolicy_pg"] is sb3_reinforce.OffPolicyPG
    assert {"ppo", "a2c"} <= set(RL_ZOO3_ALGOS)
    for algo in ALGOS:
        assert algo in HYPERPARAMS_SAMPLER and algo in HYPERPARAMS_CONVERTER


def pip_run(*args: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pip", *args], capture_output=True, text=True, check=False, timeout=240
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def resolve_in_fresh_interpreter(cwd: Path, env: dict[str, str]) -> tuple[Path, Path]:
    """``sb3_reinforce.__file__`` and ``hyperparams_file("reinforce")`` as a fresh interpreter sees them."""
    code = (
        "import sb3_reinforce; from sb3_reinforce.zoo import hyperparams_file; "
        "print(sb3_reinforce.__file__); print(hyperparams_file('reinforce'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120, cwd=cwd, env=env
    )
    assert result.returncode == 0, result.stderr
    package, hyperparams = result.stdout.split()
    return Path(package), Path(hyperparams)


def test_clone_reads_the_one_copy_of_the_hyperparams(tmp_path: Path) -> None:
    """From a clone (editable install, or the source on the path), the files are ``hyperparams/*.yml``: no copy."""
    import sb3_reinforce

    if Path(sb3_reinforce.__file__).resolve().parent != ROOT / "sb3_reinforce":
        pytest.skip(f"sb3_reinforce is imported from {sb3_reinforce.__file__}, not from this source tree")
    assert HYPERPARAMS_DIR == ROOT / "hyperparams"
    for algo in ALGOS:
        assert hyperparams_file(algo) == ROOT / "hyperparams" / f"{algo}.yml" and hyperparams_file(algo).is_file()
    assert not list((ROOT / "sb3_reinforce").rglob("*.yml")), "the YAML files belong in hyperparams/ only"
    # A fresh interpreter outside the clone: found through the installation (make install: pip install -e).
    package, found = resolve_in_fresh_interpreter(tmp_path, SUBPROCESS_ENV)
    assert package == ROOT / "sb3_reinforce" / "__init__.py"
    assert found == ROOT / "hyperparams" / "reinforce.yml"


def test_wheel_ships_hyperparams_slow(tmp_path: Path) -> None:
    """The wheel has ``hyperparams/*.yml`` as ``sb3_reinforce/zoo/hyperparams/``; installed, it reads them there."""
    pip_run("wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT))
    (wheel,) = tmp_path.glob("sb3_reinforce-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        source = {path.name: path.read_bytes() for path in (ROOT / "hyperparams").glob("*.yml")}
        packaged = {name.rsplit("/", 1)[1]: archive.read(name) for name in names if name.endswith(".yml")}
        assert set(source) == {f"{algo}.yml" for algo in ALGOS}
        assert {f"sb3_reinforce/zoo/hyperparams/{name}" for name in source} <= names
        assert packaged == source  # the same files, byte for byte, and no others
        # The explicit package list of pyproject.toml (needed for the mapping) leaves no module out.
        modules = {path.relative_to(ROOT).as_posix() for path in (ROOT / "sb3_reinforce").rglob("*.py")}
        assert modules <= names, f"not in the wheel: {sorted(modules - names)}; add the package to pyproject.toml"
        assert all(name.startswith(("sb3_reinforce/", "sb3_reinforce-")) for name in names)
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        assert "sb3-reinforce-zoo = sb3_reinforce.zoo.cli:main" in archive.read(entry_points).decode()
    # Installed from the wheel (ahead of the clone on the path), the package and the wrapper read the installed files.
    site = tmp_path / "site"
    pip_run("install", "-q", "--no-deps", "--target", str(site), str(wheel))
    installed = site / "sb3_reinforce" / "zoo" / "hyperparams" / "reinforce.yml"
    env = {**SUBPROCESS_ENV, "PYTHONPATH": str(site)}
    assert resolve_in_fresh_interpreter(tmp_path, env) == (site / "sb3_reinforce" / "__init__.py", installed)
    assert installed.read_bytes() == (ROOT / "hyperparams" / "reinforce.yml").read_bytes()
    result = subprocess.run(
        [sys.executable, "-m", "sb3_reinforce.zoo", "train", "--algo", "reinforce", "--env", "MountainCar-v0"],
        capture_output=True,
        text=True,
        check=False,
        timeout=240,
        cwd=tmp_path,
        env=env,
    )
    assert result.returncode == 2
    assert f"in {installed} (entries there:" in result.stderr


ENTRIES = [(algo, env) for algo in ALGOS for env in yaml.safe_load(hyperparams_file(algo).read_text())]


def test_required_entries_exist() -> None:
    for algo in ALGOS:
        for env in ("CartPole-v1", "Acrobot-v1", "LunarLander-v3", "Pendulum-v1"):
            assert (algo, env) in ENTRIES


@pytest.mark.parametrize(("algo", "env_id"), ENTRIES)
def test_yaml_entry_builds_model(algo: str, env_id: str, tmp_path: Path) -> None:
    """Each entry goes through rl-zoo3's own preprocessing (ExperimentManager) and builds a model that acts."""
    import argparse

    from rl_zoo3.exp_manager import ExperimentManager

    register()
    manager = ExperimentManager(
        argparse.Namespace(),
        algo,
        env_id,
        str(tmp_path),
        n_timesteps=-1,
        eval_freq=-1,
        seed=0,
        verbose=0,
        device="cpu",
        config=str(hyperparams_file(algo)),
    )
    model, saved = manager.setup_experiment()  # type: ignore[misc]
    assert type(model).__name__ == ZOO_ALGOS[algo][0]
    assert manager.n_timesteps >= 1e4 and saved["policy"] in ("MlpPolicy", "MlpLstmPolicy")
    if saved["policy"] == "MlpLstmPolicy":  # the entries of partially observable envs (docs/recurrent.md)
        assert env_id.endswith("NoVel-v1") and model.recurrent
    env = model.get_env()
    assert env is not None
    action, _ = model.predict(env.reset())  # type: ignore[arg-type]
    assert env.action_space.contains(action[0])
    env.close()


# --- clear errors -------------------------------------------------------------------------------


def test_unknown_algorithm_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "--algo", "reinforc", "--env", ENV])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Unknown algorithm 'reinforc'" in err
    assert "reinforce" in err and "offpolicy_pg" in err and "ppo" in err


@pytest.mark.parametrize("algo", ALGOS)
def test_missing_entry_is_a_clear_error(algo: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "--algo", algo, "--env", "MountainCar-v0"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"No hyperparameters for algo '{algo}' on env 'MountainCar-v0'" in err
    assert str(hyperparams_file(algo)) in err and "CartPole-v1" in err


def test_missing_conf_file_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.yml"
    with pytest.raises(MissingHyperparametersError, match=r"nowhere\.yml"):
        cli.run(["train", "--algo", "reinforce", "--env", ENV, "-conf", str(missing)])


def test_conf_file_defaults() -> None:
    register()
    args = cli._train_args(["--algo", "reinforce", "--env", ENV])
    assert args[-2:] == ["--conf-file", str(hyperparams_file("reinforce"))]
    own = str(hyperparams_file("offpolicy_pg"))
    assert cli._train_args(["--algo", "reinforce", "-conf", own]) == ["--algo", "reinforce", "-conf", own]
    assert cli._train_args(["--algo", "ppo", "--env", ENV]) == ["--algo", "ppo", "--env", ENV]  # rl-zoo3's own


# --- samplers -------------------------------------------------------------------------------------


@pytest.mark.parametrize("algo", ALGOS)
def test_sampler_builds_models_and_converter_round_trips(algo: str) -> None:
    import sb3_reinforce

    _, sampler, converter = ZOO_ALGOS[algo]
    algorithm_class = getattr(sb3_reinforce, ZOO_ALGOS[algo][0])
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    sampled = []
    for _ in range(48):
        trial = study.ask()
        kwargs = sampler(trial, 0, 1, {})
        assert converter(trial.params) == kwargs  # what --trial-id loads is what was trained
        assert 0 < kwargs["gamma"] < 1
        algorithm_class("MlpPolicy", ENV, device="cpu", **kwargs)
        study.tell(trial, 0.0)
        sampled.append(kwargs)
    # the value fit is searched by both, and only with the value baseline
    fits = [k for k in sampled if k.get("vf_epochs", 0) > 0]
    assert fits and all(k["baseline"] == "value" for k in fits)
    assert {k["vf_batch_size"] is None for k in fits} == {True, False}
    assert {k["vf_coef"] for k in fits} == ({0.0, 0.5} if algo == "reinforce" else {0.0})  # OffPolicyPG: fit alone
    assert not any("vf_coef" in k for k in sampled if k.get("vf_epochs", 0) == 0)
    if algo == "offpolicy_pg":  # target_kl is searched, as None or a limit, and only with several gradient steps
        limits = [k for k in sampled if "target_kl" in k]
        assert limits and all(k["gradient_steps"] > 1 for k in limits)
        assert {k["target_kl"] is None for k in limits} == {True, False}
    assert not any("use_sde" in k for k in sampled)  # Discrete actions: no Gaussian options


@pytest.mark.parametrize("algo", ALGOS)
def test_sampler_searches_gsde_for_box_actions(algo: str) -> None:
    """rl-zoo3 passes n_actions > 0 for Box actions only: then gSDE and the initial log std are searched."""
    import sb3_reinforce

    _, sampler, converter = ZOO_ALGOS[algo]
    algorithm_class = getattr(sb3_reinforce, ZOO_ALGOS[algo][0])
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    sampled = []
    for _ in range(12):
        trial = study.ask()
        kwargs = sampler(trial, 1, 1, {})
        assert converter(trial.params) == kwargs
        algorithm_class("MlpPolicy", "Pendulum-v1", device="cpu", **kwargs)
        study.tell(trial, 0.0)
        sampled.append(kwargs)
    assert {k["use_sde"] for k in sampled} == {True, False}
    assert all(("sde_sample_freq" in k) == k["use_sde"] for k in sampled)
    assert all(-4.0 <= k["policy_kwargs"]["log_std_init"] <= 1.0 for k in sampled)


# --- end to end through the CLI -------------------------------------------------------------------


def run_dirs(log_folder: Path, algo: str) -> list[Path]:
    return sorted((log_folder / algo).glob(f"{ENV}_*"))


@pytest.mark.parametrize("algo", ALGOS)
def test_cli_train_enjoy_continue_slow(algo: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    logs = tmp_path / "logs"
    common = ["--algo", algo, "--env", ENV, "-f", str(logs), "--num-threads", "1"]
    # A fresh interpreter, rl-zoo3's options: eval, checkpoints, tensorboard, -params, subproc envs.
    result = zoo(
        "train", *common, "-n", "2000", "--seed", "1", "--eval-freq", "1000", "--eval-episodes", "2",
        "--save-freq", "1000", "-tb", str(tmp_path / "tb"), "--vec-env", "subproc",
        "-params", *FAST_PARAMS[algo], "n_envs:2",
    )  # fmt: skip
    assert_ok(result)
    assert f"Loading hyperparameters from: {hyperparams_file(algo)}" in result.stdout
    (run,) = run_dirs(logs, algo)
    model_path = run / f"{ENV}.zip"
    assert model_path.is_file()
    config = yaml.load((run / ENV / "config.yml").read_text(), Loader=yaml.UnsafeLoader)  # as rl-zoo3 reads it
    assert dict(config)["n_envs"] == 2 and "n_episodes" in dict(config)
    assert (run / ENV / "args.yml").is_file()
    assert (run / "evaluations.npz").is_file() and (run / "best_model.zip").is_file()
    assert glob.glob(str(run / "rl_model_*_steps.zip"))
    assert any((tmp_path / "tb").rglob("events.out.tfevents.*"))

    # enjoy loads and runs it (in-process: same code path, no second interpreter start).
    cli.run(["enjoy", "--algo", algo, "--env", ENV, "-f", str(logs), "--no-render", "-n", "300", "--verbose", "0"])

    # -i continues training from the saved model into a new run folder.
    capsys.readouterr()
    cli.run(["train", *common, "-n", "600", "-i", str(model_path), "--eval-freq", "-1", "--verbose", "0", "--progress"])
    assert "Loading pretrained agent" in capsys.readouterr().out
    runs = run_dirs(logs, algo)
    assert len(runs) == 2 and (runs[1] / f"{ENV}.zip").is_file()

    import sb3_reinforce

    algorithm_class = getattr(sb3_reinforce, ZOO_ALGOS[algo][0])
    first = algorithm_class.load(model_path, device="cpu")
    continued = algorithm_class.load(runs[1] / f"{ENV}.zip", device="cpu")
    # rl-zoo3 counts the continued run's steps from 0 (learn() without reset_num_timesteps=False).
    assert continued.num_timesteps >= 600
    assert continued.seed != first.seed or continued.num_timesteps != first.num_timesteps


def test_cli_save_replay_buffer_and_continue_with_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """rl-zoo3's --save-replay-buffer saves OffPolicyPG's episode buffer; -i loads it back (as for SAC/TD3)."""
    import sb3_reinforce

    logs = tmp_path / "logs"
    common = ["--algo", "offpolicy_pg", "--env", ENV, "-f", str(logs), "--num-threads", "1", "--verbose", "0"]
    cli.run(["train", *common, "-n", "1500", "--seed", "2", "--eval-freq", "-1", "--save-replay-buffer"])
    (run,) = run_dirs(logs, "offpolicy_pg")
    buffer_path = run / "replay_buffer.pkl"
    assert buffer_path.is_file()
    model = sb3_reinforce.OffPolicyPG.load(run / f"{ENV}.zip", device="cpu")
    model.load_replay_buffer(buffer_path)
    assert model.replay_buffer is not None and model.replay_buffer.n_episodes >= 4
    saved_steps = model.replay_buffer.size()

    capsys.readouterr()
    cli.run(["train", *common, "-n", "300", "-i", str(run / f"{ENV}.zip"), "--eval-freq", "-1"])
    assert "Loading replay buffer" in capsys.readouterr().out
    assert saved_steps > 0


def test_cli_plots_and_video_slow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """plot_train, all_plots and record_video run on the agents trained through the wrapper (console script)."""
    monkeypatch.setenv("MPLBACKEND", "Agg")
    logs = tmp_path / "logs"
    script = shutil.which("sb3-reinforce-zoo", path=str(Path(sys.executable).parent)) or "sb3-reinforce-zoo"
    for algo in ALGOS:
        args = ["train", "--algo", algo, "--env", ENV, "-f", str(logs), "-n", "1500", "--seed", "0",
                "--eval-freq", "500", "--eval-episodes", "2", "--num-threads", "1", "--verbose", "0",
                "-params", *FAST_PARAMS[algo]]  # fmt: skip
        if algo == "reinforce":  # the console script, in a fresh interpreter
            result = subprocess.run(
                [script, *args], capture_output=True, text=True, env=SUBPROCESS_ENV, timeout=240, check=False
            )
            assert_ok(result)
        else:
            cli.run(args)
    cli.run(["plot_train", "-a", "reinforce", "-e", ENV, "-f", str(logs)])
    output = tmp_path / "all_plots"
    cli.run(["all_plots", "-a", *ALGOS, "-e", ENV, "-f", str(logs), "--no-display", "-o", str(output)])
    assert output.with_suffix(".pkl").is_file()
    pytest.importorskip("pygame", reason="record_video renders with pygame (gymnasium[classic-control])")
    video = tmp_path / "videos"
    cli.run(["record_video", "--algo", "offpolicy_pg", "--env", ENV, "-f", str(logs), "-n", "50", "-o", str(video)])
    assert list(video.rglob("*.mp4"))


@pytest.mark.parametrize("algo", ["ppo", "a2c"])
def test_cli_rl_zoo3_algorithms_still_work(algo: str, tmp_path: Path) -> None:
    """The comparison: the same command with ``--algo ppo`` / ``--algo a2c`` runs rl-zoo3's own entries."""
    cli.run(["train", "--algo", algo, "--env", ENV, "-f", str(tmp_path), "-n", "512", "--eval-freq", "-1",
             "--verbose", "0", "--num-threads", "1"])  # fmt: skip
    (run,) = run_dirs(tmp_path, algo)
    assert (run / f"{ENV}.zip").is_file()


# --- hyperparameter optimisation ------------------------------------------------------------------


def optimize_args(algo: str, log_folder: Path, seed: int, n_trials: int = 2) -> list[str]:
    return [
        "train", "--algo", algo, "--env", ENV, "-f", str(log_folder), "--seed", str(seed),
        "-optimize", "--n-trials", str(n_trials), "-n", "1000", "--n-evaluations", "1", "--eval-episodes", "2",
        "--sampler", "random", "--pruner", "none", "--no-optim-plots", "--num-threads", "1", "--verbose", "0",
    ]  # fmt: skip


@pytest.mark.parametrize("algo", ALGOS)
def test_optimize_two_trials_slow(algo: str, tmp_path: Path) -> None:
    storage = tmp_path / "study.log"  # Optuna journal file storage
    cli.run([*optimize_args(algo, tmp_path, seed=0), "--storage", str(storage), "--study-name", f"{algo}-study"])
    study = optuna.load_study(
        study_name=f"{algo}-study",
        storage=optuna.storages.JournalStorage(JournalFileBackend(str(storage))),
    )
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    assert all(t.value is not None for t in study.trials)
    assert list((tmp_path / algo).glob(f"report_{ENV}_2-trials-1000-random-none_*.csv"))


def stored_study(algo: str, storage: Path, study_name: str, n_trials: int = 2) -> optuna.Study:
    """A journal-file study of ``n_trials`` finished trials drawn by the algorithm's sampler (as ``-optimize``)."""
    study = optuna.create_study(
        study_name=study_name,
        storage=optuna.storages.JournalStorage(JournalFileBackend(str(storage))),
        sampler=optuna.samplers.RandomSampler(seed=0),
        direction="maximize",
    )
    sampler = ZOO_ALGOS[algo][1]
    for _ in range(n_trials):
        trial = study.ask()
        sampler(trial, 0, 1, {})
        study.tell(trial, 0.0)
    return study


@pytest.mark.parametrize("trial_id", [0, 1])
def test_train_with_stored_trial(trial_id: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--trial-id N`` trains with trial N's values, trial 0 included (rl-zoo3 alone skips 0: ``if trial_id``)."""
    import rl_zoo3.train
    from rl_zoo3.exp_manager import ExperimentManager

    storage = tmp_path / "study.log"
    study = stored_study("reinforce", storage, "stored")
    expected = ZOO_ALGOS["reinforce"][2](study.trials[trial_id].params)
    entry = yaml.safe_load(hyperparams_file("reinforce").read_text())[ENV]
    assert expected["gamma"] != entry["gamma"] and expected["learning_rate"] != entry["learning_rate"]
    logs = tmp_path / "logs"
    capsys.readouterr()
    cli.run(["train", "--algo", "reinforce", "--env", ENV, "-f", str(logs), "-n", "300", "--eval-freq", "-1",
             "--verbose", "0", "--num-threads", "1", "--storage", str(storage), "--study-name", "stored",
             "--trial-id", str(trial_id)])  # fmt: skip
    assert "Loading from Optuna study" in capsys.readouterr().out
    assert rl_zoo3.train.ExperimentManager is ExperimentManager  # rl-zoo3 as it was
    (run,) = run_dirs(logs, "reinforce")
    config = dict(yaml.load((run / ENV / "config.yml").read_text(), Loader=yaml.UnsafeLoader))
    assert {key: config[key] for key in expected} == expected
    assert config["n_timesteps"] == entry["n_timesteps"]  # what the trial does not set comes from the entry


def test_trial_id_without_study_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for missing in (["--study-name", "stored"], ["--storage", str(tmp_path / "study.log")], []):
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["train", "--algo", "reinforce", "--env", ENV, "-f", str(tmp_path), "--trial-id", "0", *missing])
        assert exit_info.value.code == 2
        assert "--trial-id 0 needs --storage and --study-name" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # nothing built


def run_workers(algo: str, storage: str, study_name: str, tmp_path: Path, n_workers: int = 2) -> None:
    """Start ``n_workers`` CLI processes at once on the same ``--storage``/``--study-name``; all must succeed."""
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sb3_reinforce.zoo",
                *optimize_args(algo, tmp_path / f"worker{index}", seed=index + 1),
                "--storage",
                storage,
                "--study-name",
                study_name,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=SUBPROCESS_ENV,
            cwd=ROOT,
        )
        for index in range(n_workers)
    ]
    outputs = [process.communicate(timeout=240)[0] for process in processes]
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output[-4000:]


def assert_trials_recorded_once(study: optuna.Study, expected: int) -> None:
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == expected
    assert sorted(t.number for t in trials) == list(range(expected))
    assert len({t._trial_id for t in trials}) == expected
    assert all(t.state == TrialState.COMPLETE and t.value is not None for t in trials)


def test_two_workers_share_a_journal_file_study_slow(tmp_path: Path) -> None:
    storage = str(tmp_path / "shared" / "study.log")
    run_workers("offpolicy_pg", storage, "shared-journal", tmp_path)
    backend = JournalFileBackend(storage)
    study = optuna.load_study(study_name="shared-journal", storage=optuna.storages.JournalStorage(backend))
    assert_trials_recorded_once(study, expected=4)


# --- PostgreSQL --------------------------------------------------------------------------------


def postgres_bin_dir() -> Path | None:
    """Folder of initdb/pg_ctl: Debian's /usr/lib/postgresql/<version>/bin, else the PATH."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True)
    for folder in candidates:
        if (Path(folder) / "initdb").is_file() and (Path(folder) / "pg_ctl").is_file():
            return Path(folder)
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).parent
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL server on 127.0.0.1 (trust auth), with an empty database ``optuna``."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        pytest.skip(
            "PostgreSQL server binaries (initdb, pg_ctl) not found; .ci/run installs them (apt-get install postgresql)"
        )
    psycopg2 = pytest.importorskip("psycopg2", reason="psycopg2-binary (the `zoo` extra) is needed to reach PostgreSQL")
    # The server refuses to run as root: as root, run it as the `postgres` user the Debian package creates.
    user = "postgres" if os.geteuid() == 0 else None
    # Under /tmp (not pytest's 0700 tmp_path), so that the postgres user can reach it.
    base = Path(tempfile.mkdtemp(prefix="sb3-reinforce-pg-"))
    base.chmod(0o755)
    if user is not None:
        shutil.chown(base, user=user)
    data, port = base / "data", free_port()

    def as_server_user(*command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(bin_dir / command[0]), *command[1:]],
            user=user,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )

    result = as_server_user("initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
    assert result.returncode == 0, result.stderr
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"
    result = as_server_user("pg_ctl", "-D", str(data), "-l", str(base / "server.log"), "-o", options, "-w", "start")
    assert result.returncode == 0, result.stdout + result.stderr + (base / "server.log").read_text()
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                connection = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres")
                break
            except psycopg2.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("CREATE DATABASE optuna")
        connection.close()
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/optuna"
    finally:
        as_server_user("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)


def test_prepare_database_tolerates_simultaneous_workers(postgres_url: str) -> None:
    """Workers starting at once on an empty database all get Optuna's schema (no duplicate-type error)."""
    import threading

    import psycopg2

    from sb3_reinforce.zoo.storage import is_database_url, prepare_database

    admin = postgres_url.rsplit("/", 1)[0].replace("postgresql+psycopg2://", "postgresql://") + "/postgres"
    connection = psycopg2.connect(admin)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute("CREATE DATABASE simultaneous")
    connection.close()
    url = postgres_url.rsplit("/", 1)[0] + "/simultaneous"
    assert is_database_url(url) and not is_database_url("logs/study.log")
    errors: list[BaseException] = []

    def worker(seed: int) -> None:
        try:
            prepare_database(url, seed=seed)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    optuna.create_study(storage=url, study_name="after", direction="maximize")


def test_two_workers_share_a_postgresql_study_slow(postgres_url: str, tmp_path: Path) -> None:
    run_workers("reinforce", postgres_url, "shared-postgres", tmp_path)
    study = optuna.load_study(study_name="shared-postgres", storage=postgres_url)
    assert_trials_recorded_once(study, expected=4)
    # Each worker's report lists the study as it stood when that worker finished: the last one sees all 4.
    reports = [
        len(Path(path).read_text().strip().splitlines()) - 1
        for path in glob.glob(str(tmp_path / "worker*" / "reinforce" / "*.csv"))
    ]
    assert len(reports) == 2 and max(reports) == 4
