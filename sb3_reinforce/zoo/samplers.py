"""
Optuna search spaces of ``reinforce`` and ``offpolicy_pg`` for ``train --optimize``.

Each ``sample_*_params`` has the signature of rl-zoo3's samplers (``HYPERPARAMS_SAMPLER``): it
draws raw values from the trial and returns constructor keyword arguments through the matching
``convert_*_params`` (``HYPERPARAMS_CONVERTER``), which rl-zoo3 also applies to a stored trial's
``params`` when training with ``--storage URL --study-name NAME --trial-id ID``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import nn

if TYPE_CHECKING:
    import optuna

NET_ARCH = {
    "tiny": {"pi": [32], "vf": [32]},
    "small": {"pi": [64, 64], "vf": [64, 64]},
    "medium": {"pi": [256, 256], "vf": [256, 256]},
}

ACTIVATION_FN: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU}


def _convert_common(sampled_params: dict[str, Any]) -> dict[str, Any]:
    """Map the raw values shared by both algorithms to constructor arguments."""
    hyperparams = dict(sampled_params)
    if "vf_batch_size" in hyperparams and not hyperparams["vf_batch_size"]:  # 0 stands for the whole batch
        hyperparams["vf_batch_size"] = None
    if "one_minus_gamma" in hyperparams:
        hyperparams["gamma"] = 1.0 - hyperparams.pop("one_minus_gamma")
    for name in ("n_episodes", "batch_episodes", "gradient_steps"):
        if f"{name}_pow" in hyperparams:
            hyperparams[name] = 2 ** hyperparams.pop(f"{name}_pow")
    policy_kwargs: dict[str, Any] = {}
    if "net_arch" in hyperparams:
        policy_kwargs["net_arch"] = NET_ARCH[hyperparams.pop("net_arch")]
    if "activation_fn" in hyperparams:
        policy_kwargs["activation_fn"] = ACTIVATION_FN[hyperparams.pop("activation_fn")]
    if "log_std_init" in hyperparams:
        policy_kwargs["log_std_init"] = hyperparams.pop("log_std_init")
    if policy_kwargs:
        hyperparams["policy_kwargs"] = policy_kwargs
    return hyperparams


#: The variance-optimal baselines the REINFORCE sampler chooses from, as ``baseline="optimal_<variant>"``.
OPTIMAL_VARIANTS = ("constant", "time", "coordinate")


def convert_reinforce_params(sampled_params: dict[str, Any]) -> dict[str, Any]:
    """
    Turn the raw values of a ``reinforce`` trial into ``REINFORCE`` keyword arguments.

    ``vf_batch_size`` is stored with ``0`` for "the whole batch": it becomes None.  ``optimal_variant``
    (``"constant"``, ``"time"`` or ``"coordinate"``) names the optimal baseline: ``baseline`` becomes
    ``"optimal_<variant>"``.

    :param sampled_params: ``trial.params`` of a trial sampled by :func:`sample_reinforce_params`.
    :return: Keyword arguments (``gamma``, ``n_episodes``, ``policy_kwargs``, ...).
    """
    hyperparams = _convert_common(sampled_params)
    variant = hyperparams.pop("optimal_variant", None)
    if variant is not None:
        hyperparams["baseline"] = f"optimal_{variant}"
    return hyperparams


def convert_offpolicy_pg_params(sampled_params: dict[str, Any]) -> dict[str, Any]:
    """
    Turn the raw values of an ``offpolicy_pg`` trial into ``OffPolicyPG`` keyword arguments.

    ``truncation`` is stored as a float with ``0`` for "no truncation" (Optuna categories must
    be of one type): it becomes None; so do a ``target_kl`` of ``0`` ("no limit") and a
    ``vf_batch_size`` of ``0`` ("the whole batch").  With a value fit (``vf_epochs > 0``),
    ``vf_coef`` is 0, which OffPolicyPG requires then.

    :param sampled_params: ``trial.params`` of a trial sampled by :func:`sample_offpolicy_pg_params`.
    :return: Keyword arguments.
    """
    hyperparams = _convert_common(sampled_params)
    for name in ("truncation", "target_kl"):
        if name in hyperparams and not hyperparams[name]:
            hyperparams[name] = None
    if hyperparams.get("vf_epochs", 0) > 0:  # OffPolicyPG's fit trains the value head alone (it requires vf_coef=0)
        hyperparams["vf_coef"] = 0.0
    return hyperparams


def _sample_common(trial: optuna.Trial, n_actions: int) -> dict[str, Any]:
    sampled = {
        "learning_rate": trial.suggest_float("learning_rate", 1e-4, 5e-2, log=True),
        "one_minus_gamma": trial.suggest_float("one_minus_gamma", 1e-4, 0.05, log=True),
        "normalize_advantage": trial.suggest_categorical("normalize_advantage", [False, True]),
        "ent_coef": trial.suggest_float("ent_coef", 1e-8, 0.01, log=True),
        "max_grad_norm": trial.suggest_float("max_grad_norm", 0.3, 10.0, log=True),
        "net_arch": trial.suggest_categorical("net_arch", list(NET_ARCH)),
        "activation_fn": trial.suggest_categorical("activation_fn", list(ACTIVATION_FN)),
    }
    if n_actions > 0:  # rl-zoo3 passes the action dimension for Box actions only: the Gaussian's options
        sampled["log_std_init"] = trial.suggest_float("log_std_init", -4.0, 1.0)
        sampled["use_sde"] = trial.suggest_categorical("use_sde", [False, True])
        if sampled["use_sde"]:
            sampled["sde_sample_freq"] = trial.suggest_categorical("sde_sample_freq", [-1, 4, 8, 16, 64])
    return sampled


def _sample_value_fit(trial: optuna.Trial, search_vf_coef: bool) -> dict[str, Any]:
    """
    The value baseline's fit (it exists only with ``baseline="value"``): epochs, minibatch size, learning rate.

    :param trial: The Optuna trial.
    :param search_vf_coef: With a fit, also search whether the value head learns from the loss's
        ``vf_coef`` term too (0.5) or from the fit alone (0).
    :return: The raw values.
    """
    sampled: dict[str, Any] = {"vf_epochs": trial.suggest_categorical("vf_epochs", [0, 5, 10, 20, 30])}
    if sampled["vf_epochs"] > 0:
        sampled["vf_batch_size"] = trial.suggest_categorical("vf_batch_size", [0, 64, 256])
        sampled["vf_learning_rate"] = trial.suggest_float("vf_learning_rate", 1e-4, 1e-2, log=True)
        if search_vf_coef:
            sampled["vf_coef"] = trial.suggest_categorical("vf_coef", [0.0, 0.5])
    return sampled


def sample_reinforce_params(
    trial: optuna.Trial, n_actions: int, n_envs: int, additional_args: dict[str, Any]
) -> dict[str, Any]:
    """
    Sample ``REINFORCE`` hyperparameters (rl-zoo3 sampler signature).

    Searched: learning rate, episodes per update (2 to 32), discount, baseline (with ``"optimal"``,
    which of ``"optimal_constant"``, ``"optimal_time"``, ``"optimal_coordinate"``, as the trial
    parameter ``optimal_variant``; with the value baseline, the epochs, minibatch size and learning
    rate of its fit, ``vf_epochs`` 0 to 30, and with a fit ``vf_coef`` 0 or 0.5),
    advantage normalisation, entropy coefficient, gradient clipping, network size and activation.
    Reward-to-go stays on (it only lowers the variance).  With ``Box`` actions (``n_actions > 0``)
    also the initial log standard deviation and gSDE (``use_sde``, ``sde_sample_freq``).

    :param trial: The Optuna trial.
    :param n_actions: Action dimension, which rl-zoo3 sets for ``Box`` actions only (0 otherwise).
    :param n_envs: Number of training envs (unused: a batch is whole episodes, whatever ``n_envs``).
    :param additional_args: rl-zoo3's extra arguments (unused).
    :return: ``REINFORCE`` keyword arguments.
    """
    sampled = {
        "n_episodes_pow": trial.suggest_int("n_episodes_pow", 1, 5),
        "baseline": trial.suggest_categorical("baseline", ["none", "mean", "optimal", "value"]),
        **_sample_common(trial, n_actions),
    }
    if sampled["baseline"] == "optimal":  # which variance-optimal baseline (docs/maths.md §5.4)
        sampled["optimal_variant"] = trial.suggest_categorical("optimal_variant", list(OPTIMAL_VARIANTS))
    if sampled["baseline"] == "value":
        sampled.update(_sample_value_fit(trial, search_vf_coef=True))
    trial.set_user_attr("gamma", 1.0 - sampled["one_minus_gamma"])
    trial.set_user_attr("n_episodes", 2 ** sampled["n_episodes_pow"])
    return convert_reinforce_params(sampled)


def sample_offpolicy_pg_params(
    trial: optuna.Trial, n_actions: int, n_envs: int, additional_args: dict[str, Any]
) -> dict[str, Any]:
    """
    Sample ``OffPolicyPG`` hyperparameters (rl-zoo3 sampler signature).

    Searched: the common ones of :func:`sample_reinforce_params` (baseline among ``none``,
    ``mean``, ``value``), new episodes per rollout (2 to 16), episodes per gradient step (4 to
    64), gradient steps per rollout (1 to 16) and, with more than one, ``target_kl`` (``0`` stands
    for no limit), buffer capacity, importance weights and their truncation (``0`` stands for none);
    with the value baseline its fit (``vf_coef`` then 0) and with ``Box`` actions the Gaussian's
    options, as :func:`sample_reinforce_params`.

    :param trial: The Optuna trial.
    :param n_actions: Action dimension, which rl-zoo3 sets for ``Box`` actions only (0 otherwise).
    :param n_envs: Number of training envs (unused).
    :param additional_args: rl-zoo3's extra arguments (unused).
    :return: ``OffPolicyPG`` keyword arguments.
    """
    sampled = {
        "n_episodes_pow": trial.suggest_int("n_episodes_pow", 1, 4),
        "batch_episodes_pow": trial.suggest_int("batch_episodes_pow", 2, 6),
        "gradient_steps_pow": trial.suggest_int("gradient_steps_pow", 0, 4),
        "buffer_size": trial.suggest_categorical("buffer_size", [5_000, 20_000, 100_000]),
        "importance_weights": trial.suggest_categorical("importance_weights", ["per_decision", "per_step"]),
        "truncation": trial.suggest_categorical("truncation", [0.0, 1.0, 2.0, 10.0]),
        "baseline": trial.suggest_categorical("baseline", ["none", "mean", "value"]),
        **_sample_common(trial, n_actions),
    }
    if sampled["gradient_steps_pow"] > 0:  # the limit stops a rollout's gradient steps early
        sampled["target_kl"] = trial.suggest_categorical("target_kl", [0.0, 0.01, 0.03, 0.1])
    if sampled["baseline"] == "value":
        sampled.update(_sample_value_fit(trial, search_vf_coef=False))
    trial.set_user_attr("gamma", 1.0 - sampled["one_minus_gamma"])
    return convert_offpolicy_pg_params(sampled)
