"""Error bodies in each route's own dialect, so every client reads them the way it expects.

/score (Azure ML)        {"error": {"code": …, "message": …}}   Keel's shape
/invocations (MLflow)    {"error_code": "BAD_REQUEST", "message": …}
/v2/… (Open Inference)   {"error": "…"}                          the protocol's shape
"""

from __future__ import annotations

import orjson

from keel.endpoints.online import frames

_MLFLOW_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    404: "RESOURCE_DOES_NOT_EXIST",
    429: "TOO_MANY_REQUESTS",
}


def error_document(kind: int, status: int, code: str, message: str) -> bytes:
    """The JSON body for an error answered on a route of ``kind`` (a frames request kind)."""
    if kind == frames.INFER:
        return orjson.dumps({"error": message})
    if kind == frames.INVOCATIONS:
        return orjson.dumps({"error_code": _MLFLOW_CODES.get(status, "INTERNAL_ERROR"), "message": message})
    return orjson.dumps({"error": {"code": code, "message": message}})
