"""The ``mlflow-artifacts`` proxy: run and model files in and out of the workspace store.

MLflow clients upload and download through the server when a run's artifact URI
is ``mlflow-artifacts:/...``, as Keel renders every run kept under its root. Every
path a client sends goes through :func:`keel.artifacts.safe_relative_path` (and, on
local roots, the store's symlink check) before it touches storage. Bodies stream in
both directions: an upload is written in 1 MiB slices to a temporary file that
becomes the artifact only when the request completes; a download is sent in slices.
"""

from __future__ import annotations

import mimetypes
from collections.abc import AsyncIterator, Iterator
from pathlib import PurePosixPath
from typing import IO

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from keel.artifacts import ArtifactEntry, ArtifactStore, safe_relative_path
from keel.errors import InvalidInput, KeelError, NotFound, PermissionDenied
from keel.server.mlflow import render
from keel.server.mlflow.context import Context
from keel.server.mlflow.protocol import (
    JSON,
    Endpoint,
    Fields,
    Handler,
    endpoint,
    error_response,
    json_response,
    run_id,
    unexpected,
)
from keel.tracking.jobs import get_job

CHUNK_BYTES = 1024 * 1024


def proxy_routes(prefix: str, context: Context) -> list[BaseRoute]:
    """The proxy's routes under ``prefix`` (``/api/2.0/mlflow-artifacts``)."""
    root = f"{prefix}/artifacts"
    return [
        Route(root, endpoint(list_artifacts, context), methods=["GET"]),
        Route(f"{root}/{{path:path}}", _upload_endpoint(context), methods=["PUT"]),
        Route(f"{root}/{{path:path}}", _download_endpoint(context), methods=["GET"]),
        Route(f"{root}/{{path:path}}", endpoint(delete_artifact, context), methods=["DELETE"]),
    ]


def list_artifacts(context: Context, fields: Fields) -> JSON:
    """Files and folders directly under ``path`` (names only, as MLflow lists them)."""
    folder = safe_relative_path(fields.optional_text("path") or "", allow_empty=True)
    return {"files": [_file_info(entry, "") for entry in context.artifacts.list_entries(folder)]}


def delete_artifact(context: Context, fields: Fields) -> JSON:
    context.artifacts.delete(writable_path(fields.text("path")))
    return {}


# Keel's own areas of the artifact root: the content store (data, model and output
# snapshots) and the data manifests. Their files are immutable and referenced by hash;
# a client of the proxy may read them but never write or delete them.
MANAGED_AREAS = ("cas", "data")


def writable_path(path: str) -> str:
    """``path`` made safe, refused when it lies in an area Keel manages itself."""
    relative = safe_relative_path(path)
    if relative.split("/", 1)[0] in MANAGED_AREAS:
        raise PermissionDenied(
            f"cannot change {relative!r} through the artifact proxy: Keel manages that area itself",
            hint="log artifacts under a run's artifact location",
        )
    return relative


def list_run_artifacts(context: Context, fields: Fields) -> JSON:
    """A run's artifacts under ``path``, for ``/mlflow/artifacts/list``.

    Only runs whose artifacts live under the workspace root are listed here; a run
    with its own artifact URL is read by the client from that URL directly.
    """
    job = get_job(context.store, run_id(fields))
    inner = safe_relative_path(fields.optional_text("path") or "", allow_empty=True)
    answer: JSON = {"root_uri": render.artifact_uri(job.artifact_location), "files": []}
    if render.artifact_uri(job.artifact_location).startswith("mlflow-artifacts:"):
        root = safe_relative_path(job.artifact_location)
        entries = context.artifacts.list_entries(f"{root}/{inner}" if inner else root)
        answer["files"] = [_file_info(entry, inner) for entry in entries]
    return answer


def _file_info(entry: ArtifactEntry, folder: str) -> JSON:
    name = entry.path.rsplit("/", 1)[-1]
    info: JSON = {"path": f"{folder}/{name}" if folder else name, "is_dir": entry.is_dir}
    if entry.size is not None:
        info["file_size"] = entry.size
    return info


def _upload_endpoint(context: Context) -> Endpoint:
    async def upload(request: Request) -> Response:
        try:
            relative = writable_path(request.path_params["path"])
            await receive(context.artifacts, relative, request.stream())
        except KeelError as error:
            return error_response(error)
        except (FileExistsError, IsADirectoryError, NotADirectoryError):
            clash = f"cannot write artifact {relative!r}: a file and a folder would share a path"
            return error_response(InvalidInput(clash))
        except ClientDisconnect:
            return Response(status_code=400)
        except Exception:
            return unexpected(request)
        return json_response({})

    return upload


async def receive(store: ArtifactStore, relative: str, chunks: AsyncIterator[bytes]) -> None:
    """Stream ``chunks`` into the artifact at ``relative``, which appears only when all arrived."""
    writing = store.open_write(relative)
    handle: IO[bytes] = await run_in_threadpool(writing.__enter__)
    try:
        pending = bytearray()
        async for chunk in chunks:
            pending += chunk
            if len(pending) >= CHUNK_BYTES:
                await run_in_threadpool(handle.write, bytes(pending))
                pending.clear()
        if pending:
            await run_in_threadpool(handle.write, bytes(pending))
    except BaseException as error:
        writing.__exit__(type(error), error, error.__traceback__)  # drops the temporary file
        raise
    await run_in_threadpool(writing.__exit__, None, None, None)


def _download_endpoint(context: Context) -> Endpoint:
    async def download(request: Request) -> Response:
        try:
            relative = safe_relative_path(request.path_params["path"])
            return await send(context.artifacts, relative)
        except KeelError as error:
            return error_response(error)
        except Exception:
            return unexpected(request)

    return download


async def send(store: ArtifactStore, relative: str) -> Response:
    """A response streaming the artifact at ``relative``."""
    name = PurePosixPath(relative).name
    media_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if store.is_local:
        path = store.local_path(relative)
        if not path.is_file():
            raise NotFound(f"no artifact at {relative!r}")
        return FileResponse(path, media_type=media_type, filename=name)
    reading = store.open_read(relative)
    handle: IO[bytes] = await run_in_threadpool(reading.__enter__)

    def slices() -> Iterator[bytes]:
        try:
            while block := handle.read(CHUNK_BYTES):
                yield block
        finally:
            reading.__exit__(None, None, None)

    return StreamingResponse(slices(), media_type=media_type)


ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/artifacts/list", list_run_artifacts),
]
