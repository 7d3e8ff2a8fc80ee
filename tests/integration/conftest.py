"""Fixtures shared by the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import SampleProject


@pytest.fixture
def project(tmp_path: Path) -> Iterator[SampleProject]:
    """A sample-app project in a temporary folder; everything it started is stopped after."""
    p = SampleProject(tmp_path / "app")
    try:
        yield p
    finally:
        p.clean_up()
