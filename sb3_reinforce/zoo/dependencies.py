"""The optional dependency of the zoo integration: rl-zoo3 (``pip install sb3-reinforce[zoo]``)."""

from __future__ import annotations

import importlib.util

INSTALL_HINT = 'pip install "sb3-reinforce[zoo]"'


class ZooDependencyError(ImportError):
    """rl-zoo3 (or one of its own dependencies) is not installed."""


def require_rl_zoo3() -> None:
    """
    Raise a :class:`ZooDependencyError` that says how to install rl-zoo3 if it cannot be imported.

    Only ``find_spec`` is used when it is absent: checking never imports rl-zoo3 itself.
    """
    if importlib.util.find_spec("rl_zoo3") is None:
        raise ZooDependencyError(
            "The rl-zoo3 integration of sb3-reinforce needs rl-zoo3, which is not installed. "
            f"Install the `zoo` extra: {INSTALL_HINT}"
        )
    try:
        import rl_zoo3  # noqa: F401
    except ImportError as error:  # rl-zoo3 is there but one of its dependencies is not
        raise ZooDependencyError(
            f"rl-zoo3 is installed but cannot be imported ({error}). Reinstall the `zoo` extra: {INSTALL_HINT}"
        ) from error
