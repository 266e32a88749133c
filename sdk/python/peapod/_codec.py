"""Byte and text codecs, strict where the Go code is strict."""

import base64
import binascii
import json
import re

ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_INDEX = {c: i for i, c in enumerate(ALPHABET)}


def b58encode(b: bytes) -> str:
    n = int.from_bytes(b, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = ALPHABET[r] + out
    zeros = len(b) - len(b.lstrip(b"\0"))
    return "1" * zeros + out


def b58decode_key(s: str, size: int) -> bytes:
    """Decode a key of exactly ``size`` bytes in canonical base58; ValueError otherwise."""
    if not s:
        raise ValueError("empty")
    if len(s) > size * 138 // 100 + 1:
        raise ValueError(f"too long for a {size}-byte key")
    n = 0
    for c in s:
        if c not in _INDEX:
            raise ValueError(f"invalid base58 character {c!r}")
        n = n * 58 + _INDEX[c]
    zeros = len(s) - len(s.lstrip("1"))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    out = b"\0" * zeros + body
    if len(out) != size:
        raise ValueError(f"decodes to {len(out)} bytes, want {size}")
    if b58encode(out) != s:
        raise ValueError("not in canonical base58 form")
    return out


def b64encode(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def b64decode_canonical(s: str):
    """Decode canonical padded standard base64, or return None."""
    if not isinstance(s, str) or not s.isascii():
        return None
    try:
        b = base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError):
        return None
    return b if b64encode(b) == s else None


class DuplicateMember(ValueError):
    pass


class _Object(dict):
    """A JSON object; ``duplicates`` is True when a member appeared twice."""

    duplicates = False


def _refuse_constant(name):
    raise ValueError(f"{name} is not JSON")


def _fix_surrogates(s: str) -> str:
    # Go's decoder turns lone surrogates from \u escapes into U+FFFD.
    return s.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def parse_json(text: str, duplicates: str):
    """Read exactly one JSON value. duplicates is "refuse" (a member twice
    anywhere is an error) or "note" (the object's ``duplicates`` is set)."""

    def hook(pairs):
        obj = _Object()
        for k, v in pairs:
            if k in obj:
                if duplicates == "refuse":
                    raise DuplicateMember(f"member {k[:40]!r} appears twice")
                obj.duplicates = True
            obj[k] = _fix_surrogates(v) if isinstance(v, str) else v
        return obj

    try:
        return json.loads(text, object_pairs_hook=hook, parse_constant=_refuse_constant)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def is_one(v) -> bool:
    """Whether v is the JSON number written 1 (not 1.0, not true)."""
    return type(v) is int and v == 1


_CONTROL = re.compile("[\u0000-\u001f\u007f-\u009f]")
_SERVICE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_CODE = re.compile(r"[a-z][a-z0-9_]{0,31}")


def valid_id(s) -> bool:
    """1 to 64 code points of valid text, none a control character."""
    if not isinstance(s, str) or not 1 <= len(s) <= 64 or _CONTROL.search(s):
        return False
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def valid_service(s) -> bool:
    return isinstance(s, str) and _SERVICE.fullmatch(s) is not None


def valid_code(s) -> bool:
    return isinstance(s, str) and _CODE.fullmatch(s) is not None


_P = 2**255 - 19
_D = -121665 * pow(121666, _P - 2, _P) % _P


def is_point(b: bytes) -> bool:
    """Whether b encodes a point of edwards25519, as Go's SetBytes accepts
    it: y may be non-canonical; x must exist."""
    if len(b) != 32:
        return False
    y = (int.from_bytes(b, "little") & ((1 << 255) - 1)) % _P
    u = (y * y - 1) % _P
    v = (_D * y * y + 1) % _P
    xx = u * pow(v, _P - 2, _P) % _P
    return xx == 0 or pow(xx, (_P - 1) // 2, _P) == 1
