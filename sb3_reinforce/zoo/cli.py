"""
``sb3-reinforce-zoo`` / ``python -m sb3_reinforce.zoo``: rl-zoo3's own scripts with this package's algorithms.

Usage: ``sb3-reinforce-zoo COMMAND [rl-zoo3 options]`` where COMMAND is one of ``train``, ``enjoy``,
``record_video``, ``plot_train``, ``plot_from_file``, ``all_plots``.  Each command registers
``reinforce`` and ``offpolicy_pg`` in rl-zoo3 (:func:`sb3_reinforce.zoo.registry.register`), then
runs rl-zoo3's entry point of the same name with the remaining arguments untouched, so every
rl-zoo3 option works and ``--algo ppo`` / ``--algo a2c`` run exactly as with ``python -m rl_zoo3.train``.

The only additions, for ``train``: when ``--algo`` is one of this package's algorithms and no
``-conf/--conf-file`` is given, the hyperparameter file shipped with the package is used; an
unknown algorithm, a missing hyperparameter entry, or ``--trial-id`` without ``--storage`` and
``--study-name`` is reported before anything is built; and ``--trial-id 0`` trains with trial 0 of
the study, which rl-zoo3 alone skips (it tests ``if self.trial_id``) in favour of the file's values.
"""

from __future__ import annotations

import argparse
import runpy
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

from sb3_reinforce.zoo.dependencies import ZooDependencyError, require_rl_zoo3
from sb3_reinforce.zoo.hyperparams import MissingHyperparametersError, check_entry, hyperparams_file
from sb3_reinforce.zoo.registry import ZOO_ALGOS, register
from sb3_reinforce.zoo.storage import is_database_url, prepare_database

PROG = "sb3-reinforce-zoo"
COMMANDS = ("train", "enjoy", "record_video", "plot_train", "plot_from_file", "all_plots")
# Commands that take an --algo, checked against the registry before rl-zoo3 runs.
ALGO_COMMANDS = ("train", "enjoy", "record_video")

USAGE = f"""usage: {PROG} COMMAND [options]

Run rl-zoo3's scripts with the algorithms of sb3-reinforce ({", ".join(ZOO_ALGOS)}) registered
next to rl-zoo3's own (ppo, a2c, dqn, ...).

commands: {", ".join(COMMANDS)}
options: those of the rl-zoo3 script of the same name (`{PROG} COMMAND --help`).

example: {PROG} train --algo reinforce --env CartPole-v1 --seed 0 -f logs
"""


class UnknownAlgorithmError(ValueError):
    """``--algo`` names no algorithm of rl-zoo3 or of this package."""


class MissingStudyError(ValueError):
    """``--trial-id`` without the ``--storage`` and ``--study-name`` of the study to load it from."""


def _int_if_possible(value: str) -> int | str:
    """An ``int`` option's value, or the text unchanged: a bad value is for rl-zoo3's parser to report."""
    try:
        return int(value)
    except ValueError:
        return value


def _pre_parse(args: Sequence[str]) -> argparse.Namespace:
    """Read the few options the wrapper looks at, leaving everything to rl-zoo3's own parser."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--algo", default="ppo")  # rl-zoo3's default
    parser.add_argument("--env", default="CartPole-v1")  # rl-zoo3's default
    parser.add_argument("-conf", "--conf-file", default=None)
    parser.add_argument("--gym-packages", nargs="+", default=[])
    parser.add_argument("-optimize", "--optimize-hyperparameters", action="store_true")
    parser.add_argument("--storage", default=None)
    parser.add_argument("--study-name", default=None)
    parser.add_argument("--trial-id", type=_int_if_possible, default=None)
    parser.add_argument("-h", "--help", action="store_true")
    known, _ = parser.parse_known_args(list(args))
    return known


def _check_algo(algo: str) -> None:
    from rl_zoo3.utils import ALGOS

    if algo not in ALGOS:
        raise UnknownAlgorithmError(
            f"Unknown algorithm '{algo}'. Known algorithms: {', '.join(sorted(ALGOS))} "
            f"({', '.join(ZOO_ALGOS)} come from sb3-reinforce, the others from rl-zoo3)."
        )


def _rl_zoo3_default_config(algo: str) -> Path:
    """The file rl-zoo3 reads for ``algo`` when no ``--conf-file`` is given (its own lookup)."""
    import rl_zoo3.exp_manager

    package = Path(rl_zoo3.exp_manager.__file__).parent
    root = package if (package / "hyperparams").is_dir() else package.parent
    return root / "hyperparams" / f"{algo}.yml"


def _env_is_registered(env_id: str, gym_packages: Sequence[str]) -> bool:
    import importlib

    import gymnasium as gym
    import rl_zoo3.import_envs  # noqa: F401  (registers rl-zoo3's extra envs, as its train does)

    for module in gym_packages:
        importlib.import_module(module)
    return env_id in gym.envs.registry


def _check_trial_id(known: argparse.Namespace) -> None:
    # rl-zoo3 loads a trial only when it has all three, and otherwise silently trains with the entry's values.
    if known.trial_id is not None and (known.storage is None or known.study_name is None):
        raise MissingStudyError(
            f"--trial-id {known.trial_id} needs --storage and --study-name (the Optuna study to load the trial "
            "from); without them rl-zoo3 would ignore it and train with the hyperparameter file's values."
        )


class _TrialNumber(int):
    """A trial number that is true even when it is 0 (see :func:`_trial_zero_loaded`)."""

    def __bool__(self) -> bool:
        return True


@contextmanager
def _trial_zero_loaded() -> Iterator[None]:
    """
    Make rl-zoo3's ``train`` load trial 0 for ``--trial-id 0``.

    rl-zoo3's ``ExperimentManager.read_hyperparameters`` loads the stored trial only
    ``if self.storage and self.study_name and self.trial_id``: trial 0 is false, so it is skipped and
    the hyperparameter file's values are trained.  For the duration of the command, ``rl_zoo3.train``
    builds a subclass that stores the trial number 0 as an ``int`` that is true; rl-zoo3's own code
    then loads it (``study.trials[0]``, converted by the algorithm's ``HYPERPARAMS_CONVERTER``).
    """
    import rl_zoo3.train
    from rl_zoo3.exp_manager import ExperimentManager

    class _ExperimentManager(ExperimentManager):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            if self.trial_id == 0:
                self.trial_id = _TrialNumber(0)

    saved = rl_zoo3.train.ExperimentManager
    rl_zoo3.train.ExperimentManager = _ExperimentManager  # type: ignore[misc]
    try:
        yield
    finally:
        rl_zoo3.train.ExperimentManager = saved  # type: ignore[misc]


def _train_args(args: list[str]) -> list[str]:
    """Check ``--algo``, ``--trial-id`` and the hyperparameter entry; point ``--conf-file`` at our YAML for ours."""
    known = _pre_parse(args)
    if known.help:
        return args
    _check_algo(known.algo)
    _check_trial_id(known)
    config = known.conf_file
    if config is None and known.algo in ZOO_ALGOS:
        config = str(hyperparams_file(known.algo))
        args = [*args, "--conf-file", config]
    elif config is None:
        config = str(_rl_zoo3_default_config(known.algo))
    # Python files and packages are rl-zoo3's to read; an unknown env is rl-zoo3's to report.
    if config.endswith((".yml", ".yaml")) and _env_is_registered(known.env, known.gym_packages):
        check_entry(known.algo, known.env, config)
    if known.storage is not None and is_database_url(known.storage):
        prepare_database(known.storage)  # several workers may start at once on an empty database
    return args


@contextmanager
def _argv(argv: list[str]) -> Iterator[None]:
    saved = sys.argv
    sys.argv = argv
    try:
        yield
    finally:
        sys.argv = saved


def _entry_point(command: str) -> Callable[[], object]:
    if command == "train":
        from rl_zoo3.train import train

        return train
    if command == "enjoy":
        from rl_zoo3.enjoy import enjoy

        return enjoy
    if command == "record_video":
        # rl-zoo3's record_video is a script (its code runs under `if __name__ == "__main__"`).
        return lambda: runpy.run_module("rl_zoo3.record_video", run_name="__main__", alter_sys=False)
    from rl_zoo3 import plots

    return getattr(plots, command)  # type: ignore[no-any-return]


def run(argv: Sequence[str] | None = None) -> None:
    """
    Run one command (see the module docstring); errors are raised, not printed.

    :param argv: ``[COMMAND, *options]``; ``sys.argv[1:]`` when None.
    :raises ZooDependencyError: If rl-zoo3 is not installed.
    :raises UnknownAlgorithmError: If ``--algo`` is unknown.
    :raises MissingHyperparametersError: If the hyperparameter file or its entry for ``--env`` is missing.
    :raises MissingStudyError: If ``train`` has ``--trial-id`` without ``--storage`` and ``--study-name``.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return
    command, options = args[0], args[1:]
    if command not in COMMANDS:
        raise SystemExit(f"{PROG}: error: unknown command '{command}' (choose from {', '.join(COMMANDS)})")
    require_rl_zoo3()
    register()
    trial_zero: AbstractContextManager[None] = nullcontext()
    if command == "train":
        options = _train_args(options)
        if _pre_parse(options).trial_id == 0:
            trial_zero = _trial_zero_loaded()
    elif command in ALGO_COMMANDS and not _pre_parse(options).help:
        _check_algo(_pre_parse(options).algo)
    with _argv([f"{PROG} {command}", *options]), trial_zero:
        _entry_point(command)()


def main(argv: Sequence[str] | None = None) -> None:
    """
    Console entry point: like :func:`run`, with the wrapper's own errors printed as one line (exit code 2).

    :param argv: ``[COMMAND, *options]``; ``sys.argv[1:]`` when None.
    """
    try:
        run(argv)
    except (ZooDependencyError, UnknownAlgorithmError, MissingHyperparametersError, MissingStudyError) as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
