"""Where the files shipped with the package live (fixtures/, installed as pytest_k8sdns.fixture_files)."""

from __future__ import annotations

import importlib.resources
from pathlib import Path


def fixture_path(*parts: str) -> Path:
    """A file shipped in the package's fixtures/ folder."""
    return Path(str(importlib.resources.files("pytest_k8sdns.fixture_files").joinpath(*parts)))
