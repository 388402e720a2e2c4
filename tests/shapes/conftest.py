"""Shapes tests run on one torch thread (CI has 2 cores shared with other test processes)."""

from __future__ import annotations

import torch

torch.set_num_threads(1)
