"""Policies of OffPolicyPG: SB3's actor-critic policies, under the names SB3 users know.

They are the same classes as REINFORCE's.  The value head is used only by ``baseline="value"``;
with any other baseline it is built but never trained.  When the env exposes ``action_masks()``
the model uses the ``Maskable*`` counterparts instead (docs/masking.md).
"""

from sb3_contrib.common.recurrent.policies import (
    RecurrentActorCriticCnnPolicy,
    RecurrentActorCriticPolicy,
    RecurrentMultiInputActorCriticPolicy,
)
from stable_baselines3.common.policies import ActorCriticCnnPolicy, ActorCriticPolicy, MultiInputActorCriticPolicy

from sb3_reinforce.common.maskable_policies import MaskableCnnPolicy, MaskableMlpPolicy, MaskableMultiInputPolicy

MlpPolicy = ActorCriticPolicy
CnnPolicy = ActorCriticCnnPolicy
MultiInputPolicy = MultiInputActorCriticPolicy
# Recurrent (LSTM) policies: sb3-contrib's, as RecurrentPPO names them (docs/recurrent.md).
MlpLstmPolicy = RecurrentActorCriticPolicy
CnnLstmPolicy = RecurrentActorCriticCnnPolicy
MultiInputLstmPolicy = RecurrentMultiInputActorCriticPolicy

__all__ = [
    "CnnLstmPolicy",
    "CnnPolicy",
    "MaskableCnnPolicy",
    "MaskableMlpPolicy",
    "MaskableMultiInputPolicy",
    "MlpLstmPolicy",
    "MlpPolicy",
    "MultiInputLstmPolicy",
    "MultiInputPolicy",
]
