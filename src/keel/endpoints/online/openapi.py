"""The gateway's OpenAPI 3 description, built for the endpoints it serves at the moment.

Clients and API testers (schemathesis) read it from ``/openapi.json``. Endpoint
names are listed as the path parameter's values, so a generated request reaches a
real endpoint; request bodies describe the three dialects the routes accept.
"""

from __future__ import annotations

from typing import Any

import orjson

from keel import __version__

_ERROR = {"description": "what was wrong", "content": {"application/json": {"schema": {"type": "object"}}}}
_ERRORS = {
    "400": {**_ERROR, "description": "the body is malformed; the message says what was expected"},
    "401": {**_ERROR, "description": "missing or wrong credentials"},
    "404": {**_ERROR, "description": "no such endpoint or deployment, or no traffic to route"},
    "405": {"description": "wrong method"},
    "408": {**_ERROR, "description": "the deployment did not answer within request_timeout_ms"},
    "413": {**_ERROR, "description": "the body is too large"},
    "429": {**_ERROR, "description": "the deployment is at its concurrency limit"},
    "500": {**_ERROR, "description": "the scoring script or model failed on this request"},
    "502": {**_ERROR, "description": "the worker stopped while answering"},
    "503": {**_ERROR, "description": "the deployment is starting or failed"},
}
_TABLE = {
    "oneOf": [
        {
            "type": "object",
            "required": ["data"],
            "properties": {
                "columns": {"type": "array", "items": {"type": "string"}},
                "index": {"type": "array"},
                "data": {"type": "array", "items": {"type": "array"}},
            },
        },
        {"type": "array", "items": {"type": "object"}},
        {"type": "array", "items": {"type": "array"}},
        {"type": "object", "additionalProperties": {"type": "array"}},
    ]
}
_TENSOR = {
    "type": "object",
    "required": ["name", "shape", "datatype"],
    "properties": {
        "name": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "datatype": {"type": "string", "enum": ["BOOL", "INT32", "INT64", "FP32", "FP64", "BYTES"]},
        "data": {"type": "array"},
        "parameters": {"type": "object"},
    },
}


def document(endpoints: list[str]) -> bytes:
    """The description, as JSON."""
    name = {
        "name": "endpoint",
        "in": "path",
        "required": True,
        "schema": {"type": "string", **({"enum": endpoints} if endpoints else {})},
    }
    version = {"name": "deployment", "in": "path", "required": True, "schema": {"type": "string"}}
    spec: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {"title": "Keel online endpoints", "version": __version__},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
        "paths": {
            "/endpoints/{endpoint}/score": {"post": _post(name, _azure(), "Azure ML scoring")},
            "/endpoints/{endpoint}/invocations": {
                "post": _post(name, _mlflow(), "MLflow scoring server shapes")
            },
            "/v2/models/{endpoint}/infer": {
                "post": _post(name, _infer(), "Open Inference Protocol inference")
            },
            "/v2/models/{endpoint}/versions/{deployment}/infer": {
                "post": {
                    **_post(name, _infer(), "inference on one deployment"),
                    "parameters": [name, version],
                }
            },
            "/v2/models/{endpoint}": {"get": _get([name], "model metadata")},
            "/v2/models/{endpoint}/ready": {"get": _get([name], "model readiness")},
            "/v2/health/live": {"get": {**_get([], "the gateway is up"), "security": []}},
            "/v2/health/ready": {"get": {**_get([], "every deployment is serving"), "security": []}},
        },
    }
    return orjson.dumps(spec)


def _post(name: dict[str, Any], body: dict[str, Any], summary: str) -> dict[str, Any]:
    return {
        "summary": summary,
        "parameters": [name],
        "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
        "responses": {
            "200": {"description": "predictions", "content": {"application/json": {"schema": {}}}},
            **_ERRORS,
        },
    }


def _get(parameters: list[dict[str, Any]], summary: str) -> dict[str, Any]:
    ok = {"description": summary, "content": {"application/json": {"schema": {"type": "object"}}}}
    return {"summary": summary, "parameters": parameters, "responses": {"200": ok, **_ERRORS}}


def _azure() -> dict[str, Any]:
    return {"type": "object", "required": ["input_data"], "properties": {"input_data": _TABLE}}


def _mlflow() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "dataframe_split": _TABLE["oneOf"][0],
            "dataframe_records": {"type": "array", "items": {"type": "object"}},
            "instances": {"type": "array"},
            "inputs": {},
            "params": {"type": "object"},
        },
    }


def _infer() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "inputs": {"type": "array", "items": _TENSOR, "minItems": 1},
            "outputs": {
                "type": "array",
                "items": {"type": "object", "properties": {"name": {"type": "string"}}},
            },
            "parameters": {"type": "object"},
        },
    }
