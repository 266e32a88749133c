"""discover: fetch and verify a provider's descriptor."""

import asyncio
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Optional, Sequence, Union
from urllib.parse import urlsplit

from .authorities import Authorities, check_authorities, refuse_other_authorities
from .descriptor import MAX_DESCRIPTOR_SIZE, WELL_KNOWN_PATH, Descriptor, verify_descriptor
from .errors import DescriptorError
from .trust import provider_id

log = logging.getLogger("peapod")

FETCH_TIMEOUT = 10.0


@dataclass(frozen=True)
class Provider:
    """A discovered provider: its verified descriptor and how it was trusted.

    ``trust`` is "pinned" (the caller's key), "remembered" (a trust store's
    key from an earlier use), "first_use" (now remembered) or "none".
    """

    url: str
    descriptor: Descriptor
    trust: str

    def __getattr__(self, name):
        return getattr(self.descriptor, name)


async def discover(url: str, *, pinned_key: Union[str, bytes, None] = None, trust_store=None,
                   directory: Optional[str] = None,
                   authorities: Optional[Sequence[Union[str, bytes]]] = None, threshold: int = 0,
                   on_warning: Optional[Callable[[str], None]] = None, now: Optional[datetime] = None,
                   timeout: float = FETCH_TIMEOUT) -> Provider:
    """Fetch url + /.well-known/peapod.json, verify it, and return the provider.

    pinned_key (base58, as the provider prints it) refuses any other key.
    trust_store (FileTrustStore, MemoryTrustStore) remembers the key on first
    use and refuses another one later with code "key_changed". directory, the
    URL(s) of the directory of the network you use (your client's), refuses a
    descriptor naming another network with code "network_mismatch", before
    its key is remembered: its network section picks the gateway that sees
    your address and every mixnode. authorities (base58 keys, as ``mixnet
    local`` or the network's operator prints them) and threshold (0: a
    majority) are the directory authorities you trust: a descriptor whose
    network names others, or a lower threshold, is refused with
    AuthoritiesMismatchError (code "other_authorities") before its key is
    remembered; by default the descriptor's are trusted. Warnings go to
    on_warning, or to the "peapod" logger. Raises DescriptorError.
    """
    warn = on_warning or log.warning
    trusted = check_authorities(authorities, threshold) if authorities is not None else None
    if not url.startswith(("http://", "https://")):
        raise DescriptorError("fetch", f"provider URL {url!r} is not an http(s) URL")
    pid = provider_id(url)
    target = pid + WELL_KNOWN_PATH
    doc = await asyncio.to_thread(_fetch, target, timeout)

    remembered = trust_store.get(pid) if trust_store is not None and pinned_key is None else None
    try:
        d = verify_descriptor(doc, now=now, pinned_key=pinned_key if pinned_key is not None else remembered)
    except DescriptorError as e:
        if e.code == "key_mismatch" and remembered is not None:
            try:
                seen = verify_descriptor(doc, now=now).key_text
            except DescriptorError:
                seen = "another key"
            raise DescriptorError(
                "key_changed",
                f"THE PROVIDER'S KEY CHANGED: {pid} was signed by {remembered} before and now by {seen}. "
                f"This is what a substituted descriptor looks like. If the provider changed its key on purpose, "
                f"remove it from {trust_store.where} and discover again.") from None
        raise
    if directory is not None:
        _check_network(pid, d, directory)
    net = d.network
    if trusted is not None:
        refuse_other_authorities(pid, trusted, Authorities(net.authorities, net.threshold) if net.authorities else None)
    if pinned_key is not None:
        trust = "pinned"
    elif remembered is not None:
        trust = "remembered"
    elif trust_store is not None:
        trust_store.set(pid, d.key_text)
        trust = "first_use"
        warn(f"peapod: first use of {pid}: its key is {d.key_text} "
             f"(remembered in {trust_store.where}; pin it with pinned_key)")
    else:
        trust = "none"
        warn(f"peapod: {pid} is signed by {d.key_text}; nothing is pinned or remembered (pass pinned_key or a trust_store)")
    if trust in ("first_use", "none") and not pid.startswith("https://"):
        warn(f"peapod: warning: nothing is pinned and {pid} is not https: whoever serves it could hand you another provider")
    if net.type == "peapod" and not net.authorities:
        if trusted is not None:
            warn(f"peapod: {pid}'s network names no directory authorities: only your mixnet client's own authorities "
                 "check its topology")
        else:
            warn(f"peapod: {pid}'s network names no directory authorities: its topology is not signed, and whoever "
                 f"answers on {net.directory} chooses your routes")
    if not d.self_certifying and pinned_key is None:
        warn(f"peapod: warning: the descriptor is signed by {d.key_text}, which is not its address's key; "
             "pin it once you know it is the provider's")
    return Provider(pid, d, trust)


def _check_network(pid: str, d: Descriptor, directory: str) -> None:
    """Raise "network_mismatch" unless d names the peapod network whose
    directory is directory: the same URLs (a network of several authorities
    lists them separated by commas), in any order, compared as provider ids are."""
    want = _directory_ids(directory)
    if want is None:
        raise ValueError(f"peapod: directory {directory!r} is not an http(s) URL or a list of them")
    got = d.network.directory
    if d.network.type != "peapod" or not got:
        got = f"a {d.network.type} network"
    elif _directory_ids(got) == want:
        return
    raise DescriptorError(
        "network_mismatch",
        f"THE PROVIDER'S NETWORK IS NOT YOURS: the descriptor of {pid} points at {got}, and you use the directory "
        f"{want}. Nothing was sent. A descriptor substituted on the way looks like this; if the provider moved "
        f"networks, check its key with its operator and use its directory.")


def _directory_ids(directory: str) -> Optional[str]:
    """The provider ids of a directory's URLs, separated by commas, sorted and each once;
    None when one is not an http(s) URL."""
    ids = set()
    for part in directory.split(","):
        part = part.strip()
        if not _is_http(part):
            return None
        ids.add(provider_id(part))
    return ",".join(sorted(ids))


def _is_http(url: str) -> bool:
    u = urlsplit(url)
    return u.scheme.lower() in ("http", "https") and bool(u.hostname)


def _fetch(target: str, timeout: float) -> bytes:
    try:
        with urllib.request.urlopen(target, timeout=timeout) as resp:
            if resp.status != 200:
                raise DescriptorError("fetch", f"fetching {target}: answered {resp.status}")
            doc = resp.read(MAX_DESCRIPTOR_SIZE + 1)
    except urllib.error.HTTPError as e:
        raise DescriptorError("fetch", f"fetching {target}: answered {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError) as e:
        raise DescriptorError("fetch", f"fetching {target}: {e}") from None
    if len(doc) > MAX_DESCRIPTOR_SIZE:
        raise DescriptorError("malformed", f"{target}: more than {MAX_DESCRIPTOR_SIZE} bytes")
    return doc
