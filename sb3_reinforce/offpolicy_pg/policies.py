"""Policies of OffPolicyPG: the same classes as REINFORCE's, under the names SB3 users know.

The value head is used only by ``baseline="value"``; with any other baseline it is built but never
trained.  When the env exposes ``action_masks()`` the model uses the ``Maskable*`` counterparts
instead (docs/masking.md); the ``*LstmPolicy`` names are sb3-contrib's recurrent policies
(docs/recurrent.md).
"""

from sb3_reinforce.reinforce.policies import (
    CnnLstmPolicy,
    CnnPolicy,
    MaskableCnnPolicy,
    MaskableMlpPolicy,
    MaskableMultiInputPolicy,
    MlpLstmPolicy,
    MlpPolicy,
    MultiInputLstmPolicy,
    MultiInputPolicy,
)

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
