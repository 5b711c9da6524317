"""The MLflow REST wire format: request fields in, JSON out, and the one error shape.

MLflow clients send protobuf messages as JSON: proto field names, int64 as numbers
or strings, NaN and the infinities as the strings "NaN", "Infinity", "-Infinity"; on
GET the same fields come as query parameters. Every failure is answered as
``{"error_code": ..., "message": ...}`` with the HTTP status MLflow gives that code,
because the client decides what happened from the code (a missing experiment is how
``set_experiment`` learns to create one). Nothing else about a failure leaves the
server: unexpected exceptions are logged here and answered with a short message.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from keel.errors import InternalError, InvalidInput, KeelError, NotFound

if TYPE_CHECKING:
    from keel.server.mlflow.context import Context

JSON = dict[str, Any]
Handler = Callable[["Context", "Fields"], JSON]
Endpoint = Callable[[Request], Awaitable[Response]]

_log = logging.getLogger("keel.server.mlflow")
_JSON_TYPE = "application/json"
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_SPECIAL_DOUBLES = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
# MLflow answers these codes with other statuses than Keel's own API does.
_MLFLOW_STATUS = {
    "INVALID_PARAMETER_VALUE": 400,
    "BAD_REQUEST": 400,
    "RESOURCE_ALREADY_EXISTS": 400,
    "RESOURCE_DOES_NOT_EXIST": 404,
    "ENDPOINT_NOT_FOUND": 404,
}


class BadRequest(InvalidInput):
    """Raised when a request body is not a JSON object at all."""

    code = "bad_request"
    mlflow_code = "BAD_REQUEST"


class EndpointNotFound(NotFound):
    """Raised for a path (or method) the MLflow API does not have."""

    code = "endpoint_not_found"
    mlflow_code = "ENDPOINT_NOT_FOUND"


# -- responses ---------------------------------------------------------------------------


def error_body(error: KeelError) -> JSON:
    """The one JSON shape of an error on the MLflow API."""
    message = f"{error.message} ({error.hint})" if error.hint else error.message
    return {"error_code": error.mlflow_code, "message": message}


def error_response(error: KeelError) -> Response:
    status = _MLFLOW_STATUS.get(error.mlflow_code, error.http_status)
    return Response(orjson.dumps(error_body(error)), status_code=status, media_type=_JSON_TYPE)


def json_response(data: JSON) -> Response:
    return Response(orjson.dumps(data), media_type=_JSON_TYPE)


def endpoint(handler: Handler, context: Context) -> Endpoint:
    """An ASGI endpoint that reads the fields, runs ``handler`` in a worker thread, answers.

    Handlers do synchronous database work; the thread keeps a slow transaction (a
    SQLite writer waiting on another process's lock) from stalling every request.
    """

    async def respond(request: Request) -> Response:
        try:
            fields = await read_fields(request)
            result = await run_in_threadpool(handler, context, fields)
        except KeelError as error:
            return error_response(error)
        except ClientDisconnect:
            return Response(status_code=400)  # nobody is listening for an answer
        except Exception:
            return unexpected(request)
        return json_response(result)

    return respond


def unexpected(request: Request) -> Response:
    """Log the exception being handled and answer 500 without any of its details."""
    _log.exception("unexpected error in %s %s", request.method, request.url.path)
    what = f"{request.method} {request.url.path}"
    return error_response(InternalError(f"Keel failed to handle {what}; see the server log"))


# -- requests ----------------------------------------------------------------------------


async def read_fields(request: Request) -> Fields:
    """The request's fields: query parameters on GET, else the JSON body; path params win."""
    if request.method in ("GET", "HEAD"):
        data: dict[str, Any] = {}
        for key, value in request.query_params.multi_items():
            if key in data:
                previous = data[key]
                data[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
            else:
                data[key] = value
    else:
        body = await request.body()
        data = parse_json_object(body) if body.strip() else {}
    if request.path_params:
        data.update(request.path_params)
    return Fields(data)


def parse_json_object(body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        try:  # bare NaN / Infinity literals: not JSON, but Python clients send them
            data = json.loads(body)
        except (ValueError, RecursionError):
            raise BadRequest("the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadRequest(f"the request body must be a JSON object, not {type(data).__name__}")
    return data


class Fields:
    """A request message's fields, each read with the type MLflow's protocol declares.

    Errors name the field (``metrics[3].value``) so a client sees what to fix.
    """

    __slots__ = ("_data", "_where")

    def __init__(self, data: Mapping[str, Any], where: str = "") -> None:
        self._data = data
        self._where = where

    def name(self, field: str) -> str:
        return f"{self._where}.{field}" if self._where else field

    def raw(self, field: str) -> Any:
        return self._data.get(field)

    def has(self, field: str) -> bool:
        return self._data.get(field) is not None

    def text(self, field: str) -> str:
        value = self.optional_text(field)
        if value is None:
            raise InvalidInput(f"missing value for required parameter {self.name(field)!r}")
        return value

    def optional_text(self, field: str) -> str | None:
        value = self._data.get(field)
        if value is None or isinstance(value, str):
            return value
        raise InvalidInput(f"{self.name(field)} must be a string, got {_shown(value)}")

    def int64(self, field: str) -> int | None:
        value = self._data.get(field)
        return None if value is None else to_int64(value, self.name(field))

    def double(self, field: str) -> float:
        value = self._data.get(field)
        if value is None:
            raise InvalidInput(f"missing value for required parameter {self.name(field)!r}")
        return to_double(value, self.name(field))

    def boolean(self, field: str, *, default: bool = False) -> bool:
        value = self._data.get(field)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise InvalidInput(f"{self.name(field)} must be true or false, got {_shown(value)}")

    def texts(self, field: str) -> list[str]:
        """A repeated string field (one query parameter may stand for a list of one)."""
        value = self._data.get(field)
        items = [] if value is None else [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise InvalidInput(f"{self.name(field)} must be a list of strings, got {_shown(value)}")
        return items

    def messages(self, field: str) -> list[Fields]:
        """A repeated message field, each item readable as Fields."""
        value = self._data.get(field)
        if value is None:
            return []
        if not isinstance(value, list):
            raise InvalidInput(f"{self.name(field)} must be a list, got {_shown(value)}")
        found = []
        for index, item in enumerate(value):
            if not isinstance(item, dict):
                raise InvalidInput(f"{self.name(field)}[{index}] must be an object")
            found.append(Fields(item, f"{self.name(field)}[{index}]"))
        return found

    def message(self, field: str) -> Fields:
        value = self._data.get(field)
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise InvalidInput(f"{self.name(field)} must be an object, got {_shown(value)}")
        return Fields(value, self.name(field))

    def pairs(self, field: str) -> dict[str, str]:
        """A repeated {key, value} field (tags, params) as a mapping; later keys win."""
        found: dict[str, str] = {}
        for item in self.messages(field):
            found[item.text("key")] = item.text("value")
        return found


def to_double(value: Any, name: str) -> float:
    """A protobuf double from JSON: a number, or a string such as "NaN" or "1.5"."""
    kind = type(value)
    if kind is float:
        return float(value)
    if kind is int:
        return float(value)
    if kind is str:
        special = _SPECIAL_DOUBLES.get(value)
        if special is not None:
            return special
        try:
            return float(value)
        except ValueError:
            pass
    raise InvalidInput(f"{name} must be a number, got {_shown(value)}")


def to_int64(value: Any, name: str) -> int:
    """A protobuf int64 from JSON: a whole number, or a string holding one."""
    kind = type(value)
    number: int | None = None
    if kind is int:
        number = value
    elif kind is str:
        try:
            number = int(value)
        except ValueError:
            number = None
    elif kind is float and value.is_integer():
        number = int(value)
    if number is None or not _INT64_MIN <= number <= _INT64_MAX:
        raise InvalidInput(f"{name} must be a 64-bit integer, got {_shown(value)}")
    return number


def _shown(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}{'…' if len(text) > 60 else ''}"


_VIEW_TYPES = {
    "ACTIVE_ONLY": "active",
    "DELETED_ONLY": "deleted",
    "ALL": "all",
    "1": "active",
    "2": "deleted",
    "3": "all",
}


def view_type(fields: Fields, field: str) -> str:
    """MLflow's ViewType (by name or number) as Keel's view: active, deleted or all."""
    value = fields.raw(field)
    if value is None:
        return "active"
    view = _VIEW_TYPES.get(str(value).upper())
    if view is None or isinstance(value, bool):
        raise InvalidInput(
            f"{fields.name(field)} must be ACTIVE_ONLY, DELETED_ONLY or ALL, got {_shown(value)}"
        )
    return view


def run_id(fields: Fields) -> str:
    """The run a request is about: ``run_id``, or ``run_uuid`` from older clients."""
    value = fields.optional_text("run_id") or fields.optional_text("run_uuid")
    if not value:
        raise InvalidInput("missing value for required parameter 'run_id'")
    return value
