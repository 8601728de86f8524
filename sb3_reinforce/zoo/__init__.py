"""
rl-zoo3 integration: ``reinforce`` and ``offpolicy_pg`` as first-class rl-zoo3 algorithms.

- ``python -m sb3_reinforce.zoo train --algo reinforce --env CartPole-v1`` (or the console script
  ``sb3-reinforce-zoo``) runs rl-zoo3's own ``train`` with both algorithms registered; ``enjoy``,
  ``record_video``, ``plot_train``, ``plot_from_file`` and ``all_plots`` likewise (:mod:`.cli`).
- :func:`register` adds them to rl-zoo3's ``ALGOS`` and Optuna sampler tables, for use of
  rl-zoo3's ``ExperimentManager`` from Python (:mod:`.registry`, :mod:`.samplers`).
- :func:`hyperparams_file` gives the hyperparameter file shipped with the package (:mod:`.hyperparams`).

rl-zoo3 is optional (``pip install "sb3-reinforce[zoo]"``): importing this package does not import
it, and the functions that need it raise :class:`ZooDependencyError` with that hint when it is missing.
See ``docs/zoo.md``.
"""

from __future__ import annotations

from collections.abc import Sequence

from sb3_reinforce.zoo.dependencies import ZooDependencyError
from sb3_reinforce.zoo.hyperparams import HYPERPARAMS_DIR, MissingHyperparametersError, hyperparams_file

__all__ = [
    "HYPERPARAMS_DIR",
    "MissingHyperparametersError",
    "ZooDependencyError",
    "hyperparams_file",
    "main",
    "register",
]


def register() -> list[str]:
    """
    Register ``reinforce`` and ``offpolicy_pg`` in rl-zoo3 (see :func:`sb3_reinforce.zoo.registry.register`).

    :return: The names registered.
    :raises ZooDependencyError: If rl-zoo3 is not installed.
    """
    from sb3_reinforce.zoo.registry import register as _register

    return _register()


def main(argv: Sequence[str] | None = None) -> None:
    """
    Run a command of ``sb3-reinforce-zoo`` (see :func:`sb3_reinforce.zoo.cli.main`).

    :param argv: ``[COMMAND, *options]``, e.g. ``["train", "--algo", "reinforce", "--env", "CartPole-v1"]``;
        ``sys.argv[1:]`` when None.
    """
    from sb3_reinforce.zoo.cli import main as _main

    _main(argv)
