"""Pieces shared by REINFORCE and OffPolicyPG: episode storage, returns, baselines and losses."""
