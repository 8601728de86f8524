"""
Register ``reinforce`` and ``offpolicy_pg`` in rl-zoo3's tables.

rl-zoo3 looks algorithms up by name in ``rl_zoo3.utils.ALGOS`` (train, enjoy, record_video) and
their Optuna search spaces in ``rl_zoo3.hyperparams_opt.HYPERPARAMS_SAMPLER`` /
``HYPERPARAMS_CONVERTER``.  Its modules import these dicts by reference, so adding entries to them
before its entry points run is enough; nothing of rl-zoo3 is patched or copied.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from typing import Any

from sb3_reinforce.zoo.dependencies import require_rl_zoo3
from sb3_reinforce.zoo.samplers import (
    convert_offpolicy_pg_params,
    convert_reinforce_params,
    sample_offpolicy_pg_params,
    sample_reinforce_params,
)

#: rl-zoo3 name -> (class name importable from ``sb3_reinforce``, sampler, converter).
ZOO_ALGOS: dict[str, tuple[str, Callable[..., dict[str, Any]], Callable[[dict[str, Any]], dict[str, Any]]]] = {
    "reinforce": ("REINFORCE", sample_reinforce_params, convert_reinforce_params),
    "offpolicy_pg": ("OffPolicyPG", sample_offpolicy_pg_params, convert_offpolicy_pg_params),
}


def _algorithm_class(class_name: str) -> type | None:
    package = importlib.import_module("sb3_reinforce")
    return getattr(package, class_name, None)


def register() -> list[str]:
    """
    Add this package's algorithms to rl-zoo3's registry and sampler tables (idempotent).

    An algorithm whose class cannot be imported from ``sb3_reinforce`` is skipped with a warning.

    :return: The names registered.
    :raises ZooDependencyError: If rl-zoo3 is not installed.
    """
    require_rl_zoo3()
    from rl_zoo3.hyperparams_opt import HYPERPARAMS_CONVERTER, HYPERPARAMS_SAMPLER
    from rl_zoo3.utils import ALGOS

    registered = []
    for name, (class_name, sampler, converter) in ZOO_ALGOS.items():
        algorithm_class = _algorithm_class(class_name)
        if algorithm_class is None:
            warnings.warn(
                f"sb3_reinforce.{class_name} is not available: '{name}' is not registered in rl-zoo3", stacklevel=2
            )
            continue
        ALGOS[name] = algorithm_class  # type: ignore[assignment]
        HYPERPARAMS_SAMPLER[name] = sampler
        HYPERPARAMS_CONVERTER[name] = converter  # type: ignore[assignment]
        registered.append(name)
    return registered
