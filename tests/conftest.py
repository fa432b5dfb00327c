"""Shared fixtures of the CPU tests."""
from __future__ import annotations

import logging
from typing import Iterator

import pytest


def _quiet(name: str) -> Iterator[None]:
    log = logging.getLogger(name)
    old = log.level
    log.setLevel(logging.ERROR)
    yield
    log.setLevel(old)


@pytest.fixture(scope="module")
def quiet_transformers() -> Iterator[None]:
    """Tiny test vocabularies make transformers warn about bos/eos ids outside the vocabulary."""
    yield from _quiet("transformers")


@pytest.fixture(scope="module")
def quiet_accelerate() -> Iterator[None]:
    """accelerate logs "Device 0 is not available, available devices are []" on a machine without GPUs."""
    yield from _quiet("accelerate.utils.modeling")
