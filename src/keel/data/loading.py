"""``keel.data.load``: any table Keel can name, as a ``pyarrow.Table``.

    keel.data.load("azureml:flights:1").to_pandas()
    keel.data.load("azureml:flights@latest")
    keel.data.load("./data/monthly")                          # a CSV, Parquet or JSON lines folder
    keel.data.load("./flights_table")                         # an MLTable folder
    keel.data.load("azureml://datastores/raw/paths/2024/")    # a path in a datastore
    keel.data.load("s3://bucket/flights.parquet")             # an fsspec URL

Plain files read as the MLTable they imply (:func:`keel.data.mltable.read_table`).
A workspace is needed only for ``azureml:`` references; without one, the workspace
is found as the CLI finds it (``KEEL_WORKSPACE``, which every job sets, then
``keel.yaml``, then ``./.keel``).

The module is ``loading``, not ``load``, so that no submodule can shadow the
function ``keel.data`` exports under that name.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from keel.data.locations import Location, resolve_location
from keel.data.mltable import read_table
from keel.data.tabular import find_tabular
from keel.errors import InvalidInput
from keel.workspace import Workspace

WorkspaceLike = Workspace | str | os.PathLike[str] | None


def load(reference: str | os.PathLike[str], *, workspace: WorkspaceLike = None) -> Any:
    """The table ``reference`` names, as a ``pyarrow.Table``."""
    text = os.fspath(reference)
    with _workspace(workspace, needed=text.startswith("azureml:")) as opened:
        location = locate(text, opened)
        table = find_tabular(location)
        if table is None:
            raise InvalidInput(
                f"{location.uri} is not tabular data",
                hint="give an MLTable folder, or CSV, Parquet or JSON lines files",
            )
        return read_table(table, workspace=opened)


def locate(reference: str, workspace: Workspace | None) -> Location:
    """Where ``reference`` (a data asset, datastore URI, URL or local path) points."""
    if reference.startswith("azureml:"):
        if workspace is None:
            raise InvalidInput(f"{reference} names data in a workspace: give the workspace")
        if reference.startswith("azureml://"):
            return resolve_location(workspace, reference)
        from keel.data.assets import resolve_asset

        return resolve_asset(workspace, reference).location(workspace)
    # Local paths and fsspec URLs need no workspace; the resolver touches it only for datastores.
    return resolve_location(workspace or Workspace.open(), reference)


@contextlib.contextmanager
def _workspace(given: WorkspaceLike, *, needed: bool) -> Iterator[Workspace | None]:
    """The workspace to use: the one given, or (only when needed) the default, closed after."""
    if isinstance(given, Workspace):
        yield given
        return
    if given is None and not needed:
        yield None
        return
    opened = Workspace.open(given)
    try:
        yield opened
    finally:
        opened.close()
