"""Nym's native-client WebSocket API in binary frames (docs/protocol.md, section 6)."""

import struct
from dataclasses import dataclass
from typing import Optional, Union

from .address import ADDRESS_SIZE, Address, address_from_bytes

SENDER_TAG_SIZE = 16
_KINDS = {0x01, 0x02, 0x03, 0x04, 0x80, 0x81, 0x82, 0x83, 0xFF}


def encode_send_anonymous(recipient: bytes, reply_surbs: int, connection_id: int, data: bytes) -> bytes:
    """0x01 ‖ reply_surbs u32 ‖ recipient[96] ‖ connection_id u64 ‖ length u64 ‖ data."""
    if len(recipient) != ADDRESS_SIZE:
        raise ValueError("recipient must be 96 bytes")
    return b"\x01" + struct.pack(">I", reply_surbs) + recipient + struct.pack(">QQ", connection_id, len(data)) + data


def encode_self_address() -> bytes:
    return b"\x03"


@dataclass(frozen=True)
class Received:
    sender_tag: Optional[bytes]
    data: bytes


@dataclass(frozen=True)
class SelfAddress:
    address: Address


@dataclass(frozen=True)
class ClientError:
    kind: int
    message: str


@dataclass(frozen=True)
class LaneQueueLength:
    lane: int
    queue_length: int


Response = Union[Received, SelfAddress, ClientError, LaneQueueLength]


class FrameError(ValueError):
    """A response frame that is not one of Nym's."""


def parse_response(b: bytes) -> Response:
    """Read one binary response frame, strictly: exact lengths, nothing after."""

    def fail(why):
        raise FrameError(f"peapod: response frame: {why}")

    def data(at):
        if len(b) < at + 8:
            fail("too short")
        (n,) = struct.unpack_from(">Q", b, at)
        if n != len(b) - at - 8:
            fail(f"length {n} does not match the {len(b) - at - 8} bytes that follow")
        return bytes(b[at + 8:])

    if not b:
        fail("empty")
    tag = b[0]
    if tag == 0x00:
        if len(b) < 2:
            fail("too short")
        if b[1] not in _KINDS:
            fail(f"unknown error kind {b[1]}")
        msg = data(2)
        try:
            return ClientError(b[1], msg.decode("utf-8"))
        except UnicodeDecodeError:
            fail("error message is not UTF-8")
    if tag == 0x01:
        if len(b) < 2:
            fail("too short")
        if b[1] == 0:
            return Received(None, data(2))
        if b[1] != 1:
            fail(f"invalid sender tag flag {b[1]}")
        if len(b) < 2 + SENDER_TAG_SIZE:
            fail("too short")
        return Received(bytes(b[2:2 + SENDER_TAG_SIZE]), data(2 + SENDER_TAG_SIZE))
    if tag == 0x02:
        if len(b) != 1 + ADDRESS_SIZE:
            fail(f"self address is {len(b)} bytes, want {1 + ADDRESS_SIZE}")
        try:
            return SelfAddress(address_from_bytes(bytes(b[1:])))
        except ValueError as e:
            fail(str(e))
    if tag == 0x03:
        if len(b) != 17:
            fail(f"lane queue length is {len(b)} bytes, want 17")
        return LaneQueueLength(*struct.unpack_from(">QQ", b, 1))
    fail(f"unknown response tag {tag}")
