"""Artifact storage over fsspec, and the one safe resolver for user-supplied paths."""

from __future__ import annotations

from keel.artifacts.paths import UnsafePath, contain, safe_relative_path
from keel.artifacts.store import ArtifactEntry, ArtifactStore

__all__ = ["ArtifactEntry", "ArtifactStore", "UnsafePath", "contain", "safe_relative_path"]
