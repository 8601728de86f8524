"""Where the hyperparameter files of ``reinforce`` and ``offpolicy_pg`` live, and checking an entry exists.

The YAML files are kept once, in the top-level ``hyperparams/`` folder of the repository (rl-zoo3's
layout, also usable as ``-conf hyperparams/reinforce.yml``).  Building the wheel maps that folder
into the package (``package-dir`` in ``pyproject.toml``), so an installed wheel has them as
``sb3_reinforce/zoo/hyperparams/<algo>.yml``.  :data:`HYPERPARAMS_DIR` is that folder when it
exists (installed wheel), else ``hyperparams/`` next to the ``sb3_reinforce/`` source folder (a clone
or source archive, with the editable install ``pip install -e .`` of ``make install``).
``tests/test_zoo.py`` checks both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

_PACKAGE_DIR = Path(__file__).resolve().parent
#: In an installed wheel: ``sb3_reinforce/zoo/hyperparams/`` (the build puts ``hyperparams/`` there).
_INSTALLED_DIR = _PACKAGE_DIR / "hyperparams"
#: In a clone or source archive: ``hyperparams/`` at its top, next to ``sb3_reinforce/``.
_SOURCE_DIR = _PACKAGE_DIR.parent.parent / "hyperparams"

#: Folder of the hyperparameter files: the packaged one in an installed wheel, else the source tree's.
HYPERPARAMS_DIR = _INSTALLED_DIR if _INSTALLED_DIR.is_dir() else _SOURCE_DIR


class MissingHyperparametersError(ValueError):
    """No hyperparameter file, or no entry for the environment in it."""


def hyperparams_file(algo: str) -> Path:
    """
    Path of the hyperparameter file shipped for one of this package's algorithms.

    :param algo: ``"reinforce"`` or ``"offpolicy_pg"``.
    :return: ``HYPERPARAMS_DIR / "<algo>.yml"``: ``sb3_reinforce/zoo/hyperparams/<algo>.yml`` in an
        installed wheel, ``hyperparams/<algo>.yml`` in a clone (it may not exist for an unknown name).
    """
    return HYPERPARAMS_DIR / f"{algo}.yml"


def load_hyperparams_file(path: str | Path) -> dict[str, Any]:
    """
    Read an rl-zoo3 hyperparameter YAML file (a mapping from env id to the entry of that env).

    :param path: The ``.yml`` file.
    :return: The mapping (empty for an empty file).
    :raises MissingHyperparametersError: If the file does not exist or is not a mapping.
    """
    import yaml  # PyYAML comes with rl-zoo3 (the `zoo` extra), not with the core package

    path = Path(path)
    if not path.is_file():
        raise MissingHyperparametersError(f"Hyperparameter file not found: {path}")
    with path.open() as file:
        content = yaml.safe_load(file) or {}
    if not isinstance(content, dict):
        raise MissingHyperparametersError(f"{path} is not an rl-zoo3 hyperparameter file (expected env ids as keys)")
    return content


def check_entry(algo: str, env_id: str, path: str | Path) -> None:
    """
    Fail early, and say what is missing and where it looked, if rl-zoo3 would find no entry for ``env_id``.

    Follows rl-zoo3's lookup: the env id, else an ``atari`` entry (left to rl-zoo3 to judge), else ``default``.

    :param algo: Algorithm name (for the message).
    :param env_id: Gymnasium env id.
    :param path: The YAML file rl-zoo3 will read.
    :raises MissingHyperparametersError: If the file is missing or has no entry for ``env_id``.
    """
    entries = load_hyperparams_file(path)
    if env_id in entries or "default" in entries or "atari" in entries:
        return
    available = ", ".join(sorted(map(str, entries))) or "none"
    raise MissingHyperparametersError(
        f"No hyperparameters for algo '{algo}' on env '{env_id}' in {path} (entries there: {available}). "
        f"Add an entry '{env_id}:' to that file, or pass your own file with -conf/--conf-file."
    )
