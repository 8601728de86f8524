"""A callback shared by the defaults studies: when the mean training return first reaches a threshold."""

from __future__ import annotations

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback


class StopWhenSolved(BaseCallback):
    """
    Record when the mean return of the last ``window`` training episodes first reaches ``threshold``.

    Training stops there unless ``keep_going`` is set (to measure the final return at the full budget).
    Episode returns are read from the ``Monitor`` entries of the step infos.

    :param threshold: Mean return that counts as solved.
    :param window: Number of most recent training episodes averaged.
    :param keep_going: Do not stop training once solved.
    """

    def __init__(self, threshold: float, window: int = 20, keep_going: bool = False):
        super().__init__()
        self.threshold, self.window, self.keep_going = threshold, window, keep_going
        self.returns: list[float] = []
        self.solved_at: int | None = None

    def _on_step(self) -> bool:
        for info in self.locals["infos"]:
            if "episode" in info:
                self.returns.append(info["episode"]["r"])
        solved = len(self.returns) >= self.window and np.mean(self.returns[-self.window :]) >= self.threshold
        if solved and self.solved_at is None:
            self.solved_at = self.num_timesteps
        return self.keep_going or self.solved_at is None
