"""Policies of REINFORCE: SB3's actor-critic policies, under the names SB3 users know.

The value head is used only by ``baseline="value"``; with any other baseline it is built but
never trained.
"""

from stable_baselines3.common.policies import ActorCriticCnnPolicy, ActorCriticPolicy, MultiInputActorCriticPolicy

from sb3_reinforce.common.maskable_policies import MaskableCnnPolicy, MaskableMlpPolicy, MaskableMultiInputPolicy

MlpPolicy = ActorCriticPolicy
CnnPolicy = ActorCriticCnnPolicy
MultiInputPolicy = MultiInputActorCriticPolicy

__all__ = [
    "CnnPolicy",
    "MaskableCnnPolicy",
    "MaskableMlpPolicy",
    "MaskableMultiInputPolicy",
    "MlpPolicy",
    "MultiInputPolicy",
]
