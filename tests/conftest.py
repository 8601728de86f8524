"""Test-wide settings: one torch thread (the CI machine has 2 cores and tests are small)."""

import torch as th

th.set_num_threads(1)
