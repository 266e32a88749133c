"""The directory authorities of a peapod network (docs/protocol.md, section 3b).

A provider descriptor's network section names the network's authorities
(base58 ed25519 keys) and a threshold; a requester that trusts some
authorities refuses a descriptor naming others (refuse_other_authorities).
"""

from dataclasses import dataclass
from typing import List, Optional, Sequence, Union

from ._codec import b58decode_key, b58encode
from .address import KEY_SIZE
from .errors import AuthoritiesMismatchError, DescriptorError

#: The most authorities a network may name.
MAX_AUTHORITIES = 64

_P = 2**255 - 19
_D = -121665 * pow(121666, _P - 2, _P) % _P


@dataclass(frozen=True)
class Authorities:
    """Directory authorities' base58 keys, each once, and the threshold (0: a majority)."""

    keys: List[str]
    threshold: int = 0

    @property
    def needed(self) -> int:
        """The signatures of distinct authorities a topology needs."""
        return self.threshold or len(self.keys) // 2 + 1


def _valid_point(key: bytes) -> bool:
    """Whether key decodes to a point of edwards25519, as Go's edwards25519 decodes
    (non-canonical encodings of valid points pass)."""
    y = int.from_bytes(key, "little") & ((1 << 255) - 1)
    yy = y * y % _P
    xx = (yy - 1) * pow(_D * yy + 1, _P - 2, _P) % _P
    return xx == 0 or pow(xx, (_P - 1) // 2, _P) == 1


def check_authorities(keys: Sequence[Union[str, bytes]], threshold: int = 0) -> Authorities:
    """Check authorities as Go's directory.ParseTrust does and return them.

    One to MAX_AUTHORITIES distinct valid ed25519 keys (base58, or 32 bytes)
    and a threshold from a majority of them to all of them (0: a majority).
    Raises DescriptorError("malformed") naming what is wrong.
    """
    def bad(why):
        raise DescriptorError("malformed", f"directory authorities: {why}")

    n = len(keys)
    if n == 0:
        bad("no authority keys")
    if n > MAX_AUTHORITIES:
        bad(f"{n} authority keys, at most {MAX_AUTHORITIES} allowed")
    texts: List[str] = []
    for i, k in enumerate(keys, 1):
        if isinstance(k, (bytes, bytearray)):
            if len(k) != KEY_SIZE:
                bad(f"authority key {i} is {len(k)} bytes, want {KEY_SIZE}")
            raw = bytes(k)
        else:
            try:
                raw = b58decode_key(k, KEY_SIZE)
            except ValueError as e:
                bad(f"authority key {i} ({k[:50]!r}) is not a 32-byte base58 key: {e}")
        if not _valid_point(raw):
            bad(f"authority key {i} is not a valid ed25519 public key")
        text = b58encode(raw)
        if text in texts:
            bad(f"authority key {text} is listed twice")
        texts.append(text)
    if type(threshold) is not int or (threshold != 0 and not n // 2 + 1 <= threshold <= n):
        bad(f"threshold {threshold} is out of range {n // 2 + 1}..{n} (a majority of {n} authorities to all of them)")
    return Authorities(texts, threshold)


def refuse_other_authorities(provider: str, trusted: Authorities, published: Optional[Authorities]) -> None:
    """Raise AuthoritiesMismatchError when published (a descriptor's network) names
    other keys than trusted, in any order, or a threshold below trusted's.

    A network that names none passes: only the mixnet client's own
    authorities then check its topology.
    """
    if published is None:
        return
    want, got = sorted(trusted.keys), sorted(published.keys)
    if want == got and published.needed >= trusted.needed:
        return
    raise AuthoritiesMismatchError(provider, want, trusted.needed, got, published.needed)
