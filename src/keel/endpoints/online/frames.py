"""The gateway ↔ worker wire format: length-prefixed frames over one socket pair per worker.

Every frame is a 9-byte head (payload length, request id, kind) and a payload.
HTTP ends at the gateway; a worker reads frames, so no request pays for a second
HTTP parse, and many requests share one connection in flight (the request id
pairs each answer with its question).

    gateway → worker   SCORE | INVOCATIONS | INFER    request head + body
                       PING                           empty (readiness and liveness probes)
    worker → gateway   RESPONSE                       response head + body
                       READY | FAILED | PONG          JSON
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

HEAD = struct.Struct("!IIB")
# Request payload head: content type, correlation id length, OIP JSON header length (or NO_HEADER).
REQUEST_HEAD = struct.Struct("!BBI")
# Response payload head: HTTP status, content type, rows scored together (batch size), header length.
RESPONSE_HEAD = struct.Struct("!HBHI")
NO_HEADER = 0xFFFFFFFF
MAX_FRAME = 256 * 1024 * 1024

SCORE = 1
INVOCATIONS = 2
INFER = 3
PING = 9
RESPONSE = 20
READY = 21
FAILED = 22
PONG = 23

JSON = 0
TEXT = 1
CSV = 2
OCTET = 3  # an OIP binary-tensor body: a JSON header of ``header_length`` bytes, then raw tensors
CONTENT_TYPES = {
    JSON: b"application/json",
    TEXT: b"text/plain; charset=utf-8",
    CSV: b"text/csv",
    OCTET: b"application/octet-stream",
}


def content_code(content_type: bytes | None) -> int:
    """The frame code for a request's Content-Type (JSON unless it says CSV)."""
    if content_type and b"csv" in content_type.lower():
        return CSV
    return JSON


def frame(kind: int, request_id: int, payload: bytes) -> bytes:
    return HEAD.pack(len(payload), request_id, kind) + payload


def request_payload(
    content: int, correlation_id: bytes, body: bytes, header_length: int = NO_HEADER
) -> bytes:
    return REQUEST_HEAD.pack(content, len(correlation_id), header_length) + correlation_id + body


@dataclass(frozen=True)
class Request:
    """A request as a worker sees it."""

    kind: int
    request_id: int
    content: int
    correlation_id: str
    header_length: int
    body: bytes


def parse_request(kind: int, request_id: int, payload: bytes) -> Request:
    content, id_length, header_length = REQUEST_HEAD.unpack_from(payload)
    start = REQUEST_HEAD.size
    correlation = payload[start : start + id_length].decode("ascii", "replace")
    body = payload[start + id_length :]
    return Request(kind, request_id, content, correlation, header_length, body)


def response_payload(
    status: int, content: int, body: bytes, *, batch: int = 1, header_length: int = 0
) -> bytes:
    return RESPONSE_HEAD.pack(status, content, min(batch, 0xFFFF), header_length) + body


class FrameBuffer:
    """Bytes in, whole frames out (for the blocking worker side)."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def frames(self) -> list[tuple[int, int, bytes]]:
        found = []
        buffer = self._buffer
        offset = 0
        while len(buffer) - offset >= HEAD.size:
            length, request_id, kind = HEAD.unpack_from(buffer, offset)
            if length > MAX_FRAME:
                raise ValueError(f"frame of {length} bytes is larger than {MAX_FRAME}")
            end = offset + HEAD.size + length
            if len(buffer) < end:
                break
            found.append((kind, request_id, bytes(buffer[offset + HEAD.size : end])))
            offset = end
        if offset:
            del buffer[:offset]
        return found
