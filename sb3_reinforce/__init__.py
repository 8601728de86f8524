"""sb3-reinforce: REINFORCE and off-policy policy gradient for Stable-Baselines3."""

import os

from sb3_reinforce.offpolicy_pg import OffPolicyPG
from sb3_reinforce.reinforce import REINFORCE

with open(os.path.join(os.path.dirname(__file__), "version.txt")) as file_handler:
    __version__ = file_handler.read().strip()

__all__ = ["REINFORCE", "OffPolicyPG", "__version__"]
