"""Shared fixtures for the Qwen3 kernel-side tests (config, weights, golden, oracle)."""

from __future__ import annotations

import pytest
from pldsl.kernels.qwen3.config import preset  # noqa: E402
from pldsl.kernels.qwen3.weights import random_weights  # noqa: E402


@pytest.fixture(scope="session")
def tiny_cfg():
    return preset("tiny")


@pytest.fixture(scope="session")
def tiny_weights(tiny_cfg):
    """Seeded random weights for the ``tiny`` preset (treat as read-only)."""
    return random_weights(tiny_cfg, seed=1234, max_seq=256)
