"""UI test fixtures; the artifact writer lives in smpp_ui_testdata (importable by the test modules)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# pytest runs with --import-mode=importlib: make this folder's helper module importable
sys.path.insert(0, str(Path(__file__).parent))

from smpp_ui_testdata import write_artifacts  # noqa: E402


@pytest.fixture
def artifacts(settings):
    return write_artifacts(settings)
