"""Nym-style client addresses: base58(identity).base58(encryption)@base58(gateway)."""

from dataclasses import dataclass

from ._codec import b58decode_key, b58encode, is_point

KEY_SIZE = 32
ADDRESS_SIZE = 3 * KEY_SIZE


@dataclass(frozen=True)
class Address:
    """A mixnet client address: ``text`` is Nym's form, ``raw`` the 96 bytes the WebSocket API carries."""

    text: str
    raw: bytes

    @property
    def identity(self) -> bytes:
        return self.raw[:KEY_SIZE]

    @property
    def gateway(self) -> bytes:
        return self.raw[2 * KEY_SIZE:]

    def __str__(self) -> str:
        return self.text


def parse_address(s: str) -> Address:
    """Read Nym's text form; ValueError says what is wrong."""
    client, sep, gateway = s.partition("@")
    if not sep:
        raise ValueError("address: missing '@' between the client keys and the gateway")
    if "@" in gateway:
        raise ValueError("address: more than one '@'")
    identity, sep, encryption = client.partition(".")
    if not sep:
        raise ValueError("address: missing '.' between the identity and the encryption key")
    if "." in encryption:
        raise ValueError("address: more than one '.' before the '@'")
    parts = []
    for name, text in (("identity", identity), ("encryption key", encryption), ("gateway", gateway)):
        try:
            parts.append(b58decode_key(text, KEY_SIZE))
        except ValueError as e:
            raise ValueError(f"address: {name}: {e}") from None
    return address_from_bytes(b"".join(parts))


def address_from_bytes(b: bytes) -> Address:
    """Read the 96-byte binary form; ValueError says what is wrong."""
    if len(b) != ADDRESS_SIZE:
        raise ValueError(f"address: binary form is {len(b)} bytes, want {ADDRESS_SIZE}")
    if not is_point(b[:KEY_SIZE]):
        raise ValueError("address: identity: not a valid ed25519 public key")
    if not is_point(b[2 * KEY_SIZE:]):
        raise ValueError("address: gateway: not a valid ed25519 public key")
    text = f"{b58encode(b[:KEY_SIZE])}.{b58encode(b[KEY_SIZE:2 * KEY_SIZE])}@{b58encode(b[2 * KEY_SIZE:])}"
    return Address(text, bytes(b))
