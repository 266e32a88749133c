"""The provider's signed descriptor (docs/provider.md, section 3)."""

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import List, Optional, Union

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ._codec import b58decode_key, b58encode, b64decode_canonical, is_one, parse_json, valid_service
from .address import KEY_SIZE, Address, parse_address
from .authorities import check_authorities
from .errors import DescriptorError

WELL_KNOWN_PATH = "/.well-known/peapod.json"
SIGNATURE_CONTEXT = b"peapod-provider-descriptor-v1\n"
MAX_DESCRIPTOR_SIZE = 256 * 1024
MAX_LIFETIME = timedelta(days=31)
DEFAULT_MAX_SKEW = timedelta(minutes=5)
#: The largest limit a descriptor may publish: 2^53-1.
MAX_LIMIT = 2**53 - 1
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")


@dataclass(frozen=True)
class Service:
    name: str
    description: str


@dataclass(frozen=True)
class Network:
    """``type`` is "peapod" (with ``directory``) or "nym".

    ``authorities`` are the base58 ed25519 keys of a peapod network's
    directory authorities, its trust roots (docs/protocol.md, section 3b),
    and ``threshold`` the signatures a topology needs (0: a majority);
    ``authorities`` is empty when the network names none (its topology is
    not signed) and for Nym.
    """

    type: str
    directory: Optional[str] = None
    authorities: List[str] = field(default_factory=list)
    threshold: int = 0


@dataclass(frozen=True)
class Descriptor:
    """A verified descriptor."""

    address: Address
    services: List[Service]
    network: Network
    key: bytes
    key_text: str
    issued_at: datetime
    expires_at: datetime
    #: The key is the address's own identity key: only the holder of the address could have signed.
    self_certifying: bool
    #: The provider's limits ("max_request_size", "max_reply_size", "request_timeout_ms"),
    #: or {} when its descriptor does not publish them.
    limits: dict = field(default_factory=dict)


def decode_key(key: Union[str, bytes]) -> bytes:
    """A base58 ed25519 public key as the provider prints it (or its 32 bytes)."""
    if isinstance(key, (bytes, bytearray)):
        if len(key) != KEY_SIZE:
            raise DescriptorError("malformed", f"a key is {KEY_SIZE} bytes, not {len(key)}")
        return bytes(key)
    try:
        return b58decode_key(key, KEY_SIZE)
    except ValueError as e:
        raise DescriptorError("malformed", f"key {key[:60]!r}: {e}") from None


def verify_descriptor(doc: Union[bytes, str], *, now: Optional[datetime] = None,
                      max_skew: timedelta = DEFAULT_MAX_SKEW,
                      pinned_key: Union[str, bytes, None] = None) -> Descriptor:
    """Check a descriptor document as the Go requester does and return its content.

    Every failure is a DescriptorError; every signature failure has the one
    code ``signature``.
    """
    raw = doc.encode("utf-8") if isinstance(doc, str) else bytes(doc)

    def malformed(why):
        raise DescriptorError("malformed", f"descriptor: {why}")

    def bad_signature():
        raise DescriptorError("signature", "descriptor: invalid signature")

    if len(raw) > MAX_DESCRIPTOR_SIZE:
        malformed(f"{len(raw)} bytes, more than {MAX_DESCRIPTOR_SIZE}")
    document = _parse_strict(raw, "document", malformed)
    if not is_one(document.get("v")):
        malformed("document: unsupported or missing version")
    payload = document.get("payload")
    payload = b64decode_canonical(payload) if isinstance(payload, str) else None
    if payload is None:
        malformed('document: "payload" missing or not canonical padded base64')
    sig = document.get("signature")
    sig = b64decode_canonical(sig) if isinstance(sig, str) else None
    if sig is None or len(sig) != 64:
        bad_signature()

    p = _parse_strict(payload, "payload", malformed)
    if not is_one(p.get("v")):
        malformed("payload: unsupported or missing version")

    def string(obj, name, where="payload"):
        v = obj.get(name)
        if not isinstance(v, str):
            malformed(f'{where}: "{name}" missing or not a string')
        return v

    try:
        address = parse_address(string(p, "address"))
    except ValueError as e:
        malformed(f'payload: "address": {e}')
    try:
        key = b58decode_key(string(p, "key"), KEY_SIZE)
    except ValueError as e:
        malformed(f'payload: "key": {e}')
    issued_at = _parse_time(string(p, "issued_at"), malformed)
    expires_at = _parse_time(string(p, "expires_at"), malformed)
    net = p.get("network")
    if not isinstance(net, dict):
        malformed('payload: "network" missing or not an object')
    net_type = string(net, "type", "network")
    directory = string(net, "directory", "network") if "directory" in net else None
    authorities = net.get("authorities", [])
    if "authorities" in net and (not isinstance(authorities, list) or not authorities
                                 or not all(isinstance(k, str) for k in authorities)):
        malformed('network: "authorities" is not a non-empty array of strings')
    threshold = net.get("threshold", 0)
    # json reads only plain digits as int, so 2.0, 2e0, "2" and true are refused here.
    if "threshold" in net and (type(threshold) is not int or not 1 <= threshold <= 999_999_999):
        malformed('network: "threshold" is not a whole number above 0')
    limits = {}
    if "limits" in p:
        raw_limits = p["limits"]
        if not isinstance(raw_limits, dict):
            malformed('payload: "limits" is not an object')
        for name in ("max_request_size", "max_reply_size", "request_timeout_ms"):
            v = raw_limits.get(name)
            # A whole number 1 to 2^53-1 (what every JSON reader holds exactly); json reads
            # only plain digits as int, so 1.0, 1e3 and true are refused here.
            if type(v) is not int or not 1 <= v <= MAX_LIMIT:
                malformed(f'payload: "limits": "{name}" is not a whole number from 1 to {MAX_LIMIT}')
            limits[name] = v
    services_raw = p.get("services")
    if not isinstance(services_raw, list):
        malformed('payload: "services" missing or not an array')
    services, seen = [], set()
    for item in services_raw:
        if not isinstance(item, dict):
            malformed('payload: "services": not an object')
        s = Service(string(item, "name", "services"), string(item, "description", "services"))
        if not valid_service(s.name):
            malformed(f"invalid service name {s.name[:80]!r}")
        if s.name in seen:
            malformed(f"service {s.name!r} listed twice")
        seen.add(s.name)
        services.append(s)
    if expires_at <= issued_at:
        malformed("expires before it is issued")
    if expires_at - issued_at > MAX_LIFETIME:
        malformed("valid for more than 31 days")
    if net_type == "peapod":
        if not directory:
            malformed("a peapod network needs a directory URL")
    elif net_type == "nym":
        if directory:
            malformed("a Nym network has no directory URL")
    else:
        malformed(f"unknown network type {net_type[:20]!r}")
    if net_type != "peapod" and (authorities or threshold):
        malformed("only a peapod network has directory authorities")
    if threshold and not authorities:
        malformed("a network threshold without authorities")
    if authorities:
        check_authorities(authorities, threshold)

    if pinned_key is not None and decode_key(pinned_key) != key:
        raise DescriptorError("key_mismatch", "descriptor: signed by another key than the pinned one")
    try:
        Ed25519PublicKey.from_public_bytes(key).verify(sig, SIGNATURE_CONTEXT + payload)
    except Exception:  # InvalidSignature, or a key OpenSSL refuses
        bad_signature()

    now = now or datetime.now(timezone.utc)
    if issued_at > now + max_skew:
        raise DescriptorError("not_yet_valid", f"descriptor: issued in the future ({_format(issued_at)})")
    if expires_at <= now - max_skew:
        raise DescriptorError("expired", f"descriptor: expired at {_format(expires_at)}")
    return Descriptor(address=address, services=services, network=Network(net_type, directory, list(authorities), threshold), key=key,
                      key_text=b58encode(key), issued_at=issued_at, expires_at=expires_at,
                      self_certifying=key == address.identity, limits=limits)


def _parse_strict(b: bytes, what, malformed) -> dict:
    try:
        v = parse_json(b.decode("utf-8"), "refuse")
    except UnicodeDecodeError:
        malformed(f"{what}: not valid UTF-8")
    except ValueError as e:
        malformed(f"{what}: {e}")
    if not isinstance(v, dict):
        malformed(f"{what}: not a JSON object")
    return v


def _parse_time(s: str, malformed) -> datetime:
    try:
        if not _TIME.fullmatch(s):
            raise ValueError
        t = datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        malformed(f"time {s[:40]!r} is not of the form YYYY-MM-DDTHH:MM:SSZ")
    return t


def _format(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")
