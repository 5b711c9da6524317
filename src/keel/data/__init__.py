"""Data: datastores, versioned data assets, verified copies and transforms.

The names below are loaded on first use, so ``import keel.data`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "DataAsset": "keel.data.assets",
    "resolve_asset": "keel.data.assets",
    "create_asset": "keel.data.sdk",
    "get_asset": "keel.data.sdk",
    "list_assets": "keel.data.sdk",
    "archive_asset": "keel.data.sdk",
    "restore_asset": "keel.data.sdk",
    "download_asset": "keel.data.sdk",
    "load": "keel.data.loading",
}

__all__ = [
    "DataAsset",
    "archive_asset",
    "create_asset",
    "download_asset",
    "get_asset",
    "list_assets",
    "load",
    "resolve_asset",
    "restore_asset",
]

if TYPE_CHECKING:
    from keel.data.assets import DataAsset, resolve_asset
    from keel.data.loading import load
    from keel.data.sdk import (
        archive_asset,
        create_asset,
        download_asset,
        get_asset,
        list_assets,
        restore_asset,
    )


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'keel.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
