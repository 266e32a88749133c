"""The provider request protocol (docs/provider.md, section 2)."""

import json
from dataclasses import dataclass
from typing import Optional

from ._codec import b64decode_canonical, b64encode, is_one, parse_json, valid_code, valid_id, valid_service


def encode_request(id: str, service: str, data: bytes) -> bytes:
    """The UTF-8 JSON of one request; ValueError for an invalid id or service name."""
    if not valid_id(id):
        raise ValueError("peapod: invalid request id")
    if not valid_service(service):
        raise ValueError(f"peapod: invalid service name {service[:80]!r}")
    return json.dumps({"v": 1, "id": id, "service": service, "data": b64encode(data)},
                      separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@dataclass(frozen=True)
class Reply:
    """A provider's answer: ``data`` for a success (``ok``), ``code`` and ``message`` for a failure."""

    id: str
    ok: bool
    data: Optional[bytes] = None
    code: str = ""
    message: str = ""


class ReplyError(ValueError):
    """A message that is not a valid reply."""


def parse_reply(body: bytes) -> Reply:
    """Read one reply as strictly as the Go requester; ReplyError otherwise."""

    def fail(why):
        raise ReplyError(f"peapod: reply: {why}")

    try:
        obj = parse_json(body.decode("utf-8"), "note")
    except UnicodeDecodeError:
        fail("not valid UTF-8")
    except ValueError as e:
        fail(f"not JSON: {e}")
    if not isinstance(obj, dict):
        fail("not a JSON object")
    if obj.duplicates:
        fail("a member appears twice")
    if not is_one(obj.get("v")):
        fail('"v" is not 1')
    id = obj.get("id")
    if not isinstance(id, str):
        fail('"id" missing or not a string')
    if id != "" and not valid_id(id):
        fail('invalid "id"')
    status, data, error = obj.get("status"), obj.get("data"), obj.get("error")
    if status == "ok":
        if "error" in obj:
            fail('"error" in a success')
        if not isinstance(data, str):
            fail('"data" missing or not a string')
        raw = b64decode_canonical(data)
        if raw is None:
            fail('"data" is not canonical padded base64')
        return Reply(id, True, data=raw)
    if status == "error":
        if "data" in obj:
            fail('"data" in a failure')
        if not isinstance(error, dict):
            fail('"error" missing or not an object')
        if error.duplicates:
            fail('a member of "error" appears twice')
        code, message = error.get("code"), error.get("message")
        if not valid_code(code):
            fail('invalid error "code"')
        if not isinstance(message, str):
            fail('error "message" missing or not a string')
        return Reply(id, False, code=code, message=message)
    fail('"status" missing or unknown')
