"""Keel's error tree: every failure a user can cause or meet is one of these.

    KeelError                  base; a message for people, an optional hint
     ├── InvalidInput          400  the caller sent something malformed
     ├── NotFound              404  a named thing does not exist
     ├── Conflict              409  it exists already, or its state forbids the change
     ├── Unauthenticated       401  credentials missing or wrong
     ├── PermissionDenied      403  credentials fine, action not allowed
     ├── Unavailable           503  a backing service (database, store) cannot be reached
     └── InternalError         500  a bug in Keel; the message says what was being done

Each class carries a stable ``code`` (used in JSON bodies and by clients), an HTTP
status, and the MLflow error code that the MLflow-compatible API reports. The CLI
prints ``error: <message>`` (and the hint) on one line and exits non-zero; the HTTP
layers render :func:`error_body`. Nothing here ever includes a secret: callers pass
messages that are safe to show.
"""

from __future__ import annotations

from typing import Any, ClassVar


class KeelError(Exception):
    """Base of every error Keel raises on purpose."""

    code: ClassVar[str] = "keel_error"
    http_status: ClassVar[int] = 500
    mlflow_code: ClassVar[str] = "INTERNAL_ERROR"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class InvalidInput(KeelError):
    """Raised when a value, file, filter or request body is malformed."""

    code = "invalid_input"
    http_status = 400
    mlflow_code = "INVALID_PARAMETER_VALUE"


class NotFound(KeelError):
    """Raised when a job, experiment, artifact or other named thing does not exist."""

    code = "not_found"
    http_status = 404
    mlflow_code = "RESOURCE_DOES_NOT_EXIST"


class Conflict(KeelError):
    """Raised when a name is taken, or a change contradicts what is already recorded."""

    code = "conflict"
    http_status = 409
    mlflow_code = "RESOURCE_ALREADY_EXISTS"


class Unauthenticated(KeelError):
    """Raised when credentials are missing or do not match."""

    code = "unauthenticated"
    http_status = 401
    mlflow_code = "UNAUTHENTICATED"


class PermissionDenied(KeelError):
    """Raised when the caller is known but the action is not allowed."""

    code = "permission_denied"
    http_status = 403
    mlflow_code = "PERMISSION_DENIED"


class Unavailable(KeelError):
    """Raised when the metadata database or artifact store cannot be reached."""

    code = "unavailable"
    http_status = 503
    mlflow_code = "TEMPORARILY_UNAVAILABLE"


class InternalError(KeelError):
    """Raised when Keel itself is at fault; the message says what it was doing."""

    code = "internal_error"
    http_status = 500
    mlflow_code = "INTERNAL_ERROR"


def error_body(error: KeelError) -> dict[str, Any]:
    """The one JSON shape for errors on Keel's own HTTP API."""
    body: dict[str, Any] = {"code": error.code, "message": error.message}
    if error.hint:
        body["hint"] = error.hint
    return {"error": body}
