"""The parameters ``(W, b)`` of the tabular softmax policy (``action_net`` of an ``MlpPolicy`` with no
hidden layer, see :mod:`benchmarks.tabular_mdp`): read them, load them, and swap them around an update.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.callbacks import BaseCallback


def action_net_vector(model: Any) -> np.ndarray:
    """``(W, b)`` of the tabular policy (``W`` row-major, then ``b``), float64."""
    net = model.policy.action_net
    return np.concatenate([net.weight.detach().double().numpy().ravel(), net.bias.detach().double().numpy()])


def set_action_net(model: Any, weight: np.ndarray, bias: np.ndarray) -> None:
    """Load ``(W, b)`` into the tabular policy's ``action_net``."""
    with th.no_grad():
        model.policy.action_net.weight.copy_(th.as_tensor(weight, dtype=th.float32))
        model.policy.action_net.bias.copy_(th.as_tensor(bias, dtype=th.float32))


class SwapParameters(BaseCallback):
    """Load the behaviour parameters when a rollout starts and the target parameters when it ends."""

    def __init__(self, behaviour: tuple[np.ndarray, np.ndarray], target: tuple[np.ndarray, np.ndarray]):
        super().__init__()
        self.behaviour = behaviour
        self.target = target

    def _on_rollout_start(self) -> None:
        set_action_net(self.model, *self.behaviour)

    def _on_rollout_end(self) -> None:
        set_action_net(self.model, *self.target)

    def _on_step(self) -> bool:
        return True
