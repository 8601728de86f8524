from sb3_reinforce.offpolicy_pg.offpolicy_pg import OffPolicyPG
from sb3_reinforce.offpolicy_pg.policies import CnnPolicy, MlpPolicy, MultiInputPolicy

__all__ = ["CnnPolicy", "MlpPolicy", "MultiInputPolicy", "OffPolicyPG"]
