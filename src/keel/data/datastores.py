"""Datastores: named places data lives — an Azure Blob container, an S3 bucket, a folder.

Created from Azure ML's datastore YAML (``type: azure_blob``) or Keel's own
``type: local`` and ``type: s3``. ``workspaceblobstore`` always exists and is the
workspace's artifact storage. Access goes through fsspec (adlfs for Azure, s3fs
for S3); credentials are sealed with the workspace key (:mod:`keel.data.secrets`)
and never printed, logged or put in an error.

An Azure ``endpoint`` that is a host with a port (Azurite, ``127.0.0.1:10000``)
addresses the account path-style, as the storage emulator expects.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, insert, select

from keel.clock import now_ms
from keel.data import secrets
from keel.errors import Conflict, InvalidInput, NotFound, PermissionDenied, Unavailable
from keel.store.schema import data_assets, datastores
from keel.tracking.validation import text_values
from keel.workspace import Workspace

if TYPE_CHECKING:
    from keel.data.datastore_specs import DatastoreSpec

WORKSPACE_DATASTORE = "workspaceblobstore"
WORKSPACE_DATASTORES = (WORKSPACE_DATASTORE, "workspaceartifactstore")


@dataclass(frozen=True)
class Datastore:
    name: str
    type: str
    settings: dict[str, Any]
    description: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    credentials: str | None = field(default=None, repr=False)
    created_at: int = 0

    def describe(self) -> dict[str, Any]:
        """A JSON-ready form for ``show``: settings, and credentials masked."""
        return {
            "name": self.name,
            "type": self.type,
            "description": self.description,
            "tags": self.tags,
            **self.settings,
            "credentials": secrets.masked(self.credentials),
        }


def create_datastore(
    workspace: Workspace, spec: DatastoreSpec, *, base: Path | None = None, verify: bool = False
) -> Datastore:
    """Record a datastore; its credentials are sealed before they reach the database.

    With ``verify``, the datastore is opened and its root listed first, so a wrong key
    or a missing container is reported now and nothing is recorded.
    """
    if spec.name in WORKSPACE_DATASTORES:
        raise Conflict(f"{spec.name} is the workspace's own datastore and cannot be replaced")
    if _exists(workspace, spec.name):
        raise _duplicate(spec.name)
    candidate = Datastore(
        name=spec.name,
        type=spec.type,
        settings=_settings(spec, base),
        description=spec.description,
        tags=text_values(spec.tags),
        credentials=_sealed(workspace, spec),
    )
    if verify:
        check_access(workspace, candidate)
    from sqlalchemy.exc import IntegrityError

    try:
        with workspace.store.write() as conn:
            conn.execute(insert(datastores).values(**_row(candidate)))
    except IntegrityError:
        raise _duplicate(spec.name) from None
    return get_datastore(workspace, spec.name)


def _row(datastore: Datastore) -> dict[str, Any]:
    now = now_ms()
    return {
        "name": datastore.name,
        "type": datastore.type,
        "description": datastore.description,
        "tags": json.dumps(datastore.tags),
        "settings": json.dumps(datastore.settings),
        "credentials": datastore.credentials,
        "created_at": now,
        "updated_at": now,
    }


def _duplicate(name: str) -> Conflict:
    return Conflict(f"a datastore named {name!r} already exists", hint="delete it first")


def _exists(workspace: Workspace, name: str) -> bool:
    with workspace.store.read() as conn:
        return conn.execute(select(datastores.c.id).where(datastores.c.name == name)).first() is not None


def _settings(spec: DatastoreSpec, base: Path | None) -> dict[str, Any]:
    settings = spec.model_dump(
        mode="json", exclude={"schema_", "name", "description", "tags", "type", "credentials"}
    )
    if spec.type == "local":
        folder = ((base or Path.cwd()) / Path(spec.path).expanduser()).resolve()
        if not folder.is_dir():
            raise InvalidInput(f"datastore {spec.name!r}: no folder at {folder}")
        settings["path"] = str(folder)
    return settings


def _sealed(workspace: Workspace, spec: DatastoreSpec) -> str | None:
    credentials = getattr(spec, "credentials", None)
    if credentials is None:
        return None
    values = {k: v for k, v in credentials.model_dump().items() if v is not None}
    return secrets.seal(values, secrets.workspace_key(workspace.config.root))


def check_access(workspace: Workspace, datastore: Datastore) -> None:
    """List the datastore's root: wrong credentials or a missing container fail here, clearly."""
    fs, root = open_filesystem(workspace, datastore)
    try:
        with storage_errors(datastore.name):
            fs.ls(root, detail=False)
    except NotFound:
        where = {"azure_blob": "container", "s3": "bucket"}.get(datastore.type, "folder")
        raise NotFound(f"datastore {datastore.name!r}: its {where} {root!r} does not exist") from None


def get_datastore(workspace: Workspace, name: str) -> Datastore:
    if name in WORKSPACE_DATASTORES:
        return _workspace_datastore(workspace, name)
    with workspace.store.read() as conn:
        row = conn.execute(select(datastores).where(datastores.c.name == name)).first()
    if row is None:
        known = ", ".join(d.name for d in list_datastores(workspace))
        raise NotFound(f"no datastore named {name!r}", hint=f"datastores: {known}")
    return _datastore(row)


def list_datastores(workspace: Workspace) -> list[Datastore]:
    with workspace.store.read() as conn:
        rows = conn.execute(select(datastores).order_by(datastores.c.name)).all()
    return [_workspace_datastore(workspace, WORKSPACE_DATASTORE), *(_datastore(row) for row in rows)]


def delete_datastore(workspace: Workspace, name: str) -> None:
    """Forget a datastore (its data stays where it is); refused while data assets use it."""
    if name in WORKSPACE_DATASTORES:
        raise Conflict(f"{name} is the workspace's own datastore and cannot be deleted")
    get_datastore(workspace, name)
    prefix = f"azureml://datastores/{name}/"
    with workspace.store.write() as conn:
        used = conn.execute(
            select(data_assets.c.name, data_assets.c.version)
            .where(data_assets.c.path.startswith(prefix))
            .limit(3)
        ).all()
        if used:
            names = ", ".join(f"{row.name}:{row.version}" for row in used)
            raise Conflict(f"datastore {name!r} holds data assets ({names}); archive or move them first")
        conn.execute(delete(datastores).where(datastores.c.name == name))


def _workspace_datastore(workspace: Workspace, name: str) -> Datastore:
    return Datastore(name=name, type="workspace", settings={"url": workspace.config.artifacts_url})


def _datastore(row: Any) -> Datastore:
    return Datastore(
        name=row.name,
        type=row.type,
        settings=json.loads(row.settings),
        description=row.description,
        tags=json.loads(row.tags) if row.tags else {},
        credentials=row.credentials,
        created_at=row.created_at,
    )


# -- access --------------------------------------------------------------------------------


def open_filesystem(workspace: Workspace, datastore: Datastore) -> tuple[Any, str]:
    """An fsspec filesystem for the datastore and the path of its root inside it."""
    settings = datastore.settings
    if datastore.type == "local":
        from keel.data.locations import LOCAL_FILES

        return LOCAL_FILES, settings["path"]
    import fsspec

    if datastore.type == "workspace":
        return fsspec.core.url_to_fs(settings["url"])  # type: ignore[no-any-return]
    credentials = secrets.unseal(datastore.credentials, secrets.workspace_key(workspace.config.root))
    if datastore.type == "azure_blob":
        return _blob_filesystem(settings, credentials), settings["container_name"]
    if datastore.type == "s3":
        root = settings["bucket"] + ("/" + settings["prefix"].strip("/") if settings.get("prefix") else "")
        return _s3_filesystem(settings, credentials), root
    raise InvalidInput(f"datastore {datastore.name!r} has an unknown type {datastore.type!r}")


def blob_account_url(settings: Mapping[str, Any]) -> str:
    endpoint, account = settings["endpoint"], settings["account_name"]
    host = endpoint.split(":", 1)[0]
    if ":" in endpoint or host == "localhost" or _is_address(host):
        return f"{settings['protocol']}://{endpoint}/{account}"  # the emulator's path-style address
    return f"{settings['protocol']}://{account}.blob.{endpoint}"


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _blob_filesystem(settings: Mapping[str, Any], credentials: Mapping[str, str]) -> Any:
    """adlfs over a connection string, which works for Azure and for the emulator alike."""
    try:
        from adlfs import AzureBlobFileSystem
    except ImportError:
        raise Unavailable("Azure Blob datastores need adlfs", hint="pip install 'keelml[azure]'") from None
    url = blob_account_url(settings)
    if credentials.get("account_key"):
        connection = (
            f"DefaultEndpointsProtocol={settings['protocol']};AccountName={settings['account_name']};"
            f"AccountKey={credentials['account_key']};BlobEndpoint={url};"
        )
    elif credentials.get("sas_token"):
        connection = f"BlobEndpoint={url};SharedAccessSignature={credentials['sas_token'].lstrip('?')}"
    else:
        return AzureBlobFileSystem(
            account_name=settings["account_name"], account_host=url.split("://", 1)[1], anon=True
        )
    return AzureBlobFileSystem(connection_string=connection, skip_instance_cache=True)


def _s3_filesystem(settings: Mapping[str, Any], credentials: Mapping[str, str]) -> Any:
    try:
        from s3fs import S3FileSystem
    except ImportError:
        raise Unavailable("S3 datastores need s3fs", hint="pip install 'keelml[s3]'") from None
    client: dict[str, Any] = {}
    if settings.get("endpoint_url"):
        client["endpoint_url"] = settings["endpoint_url"]
    if settings.get("region"):
        client["region_name"] = settings["region"]
    return S3FileSystem(
        key=credentials.get("access_key_id"),
        secret=credentials.get("secret_access_key"),
        anon=not credentials,
        client_kwargs=client,
        skip_instance_cache=True,
    )


@contextlib.contextmanager
def storage_errors(datastore: str) -> Iterator[None]:
    """Storage libraries' failures as Keel errors that name the datastore and no secret."""
    try:
        yield
    except FileNotFoundError as exc:
        raise NotFound(f"datastore {datastore!r}: nothing at {_path_of(exc)}") from None
    except PermissionError:
        raise PermissionDenied(f"datastore {datastore!r}: permission denied") from None
    except Exception as exc:
        if _is_auth_failure(exc):
            raise PermissionDenied(
                f"datastore {datastore!r}: authentication failed (its credentials were refused)",
                hint="check the account key, SAS token or access keys given at `keel datastore create`",
            ) from None
        if _is_unreachable(exc):
            raise Unavailable(f"datastore {datastore!r}: the storage service cannot be reached") from None
        raise


def _path_of(exc: FileNotFoundError) -> str:
    return str(exc.filename or (exc.args[0] if exc.args else "that path"))


def _is_auth_failure(exc: BaseException) -> bool:
    status = getattr(exc, "status_code", None) or getattr(getattr(exc, "response", None), "status_code", None)
    code = str(getattr(exc, "error_code", "") or "")
    name = type(exc).__name__
    text = str(exc)[:500]
    return (
        name == "ClientAuthenticationError"
        or status in (401, 403)
        or code in ("AuthenticationFailed", "AuthorizationFailure")
        or any(
            word in text for word in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AuthenticationFailed")
        )
    )


def _is_unreachable(exc: BaseException) -> bool:
    return type(exc).__name__ in ("ServiceRequestError", "EndpointConnectionError", "ClientConnectorError")
