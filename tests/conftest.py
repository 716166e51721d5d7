"""Shared test settings: one torch thread, so that a busy 2-core machine (CI) gives stable timings."""

import torch

torch.set_num_threads(1)
