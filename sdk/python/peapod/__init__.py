"""peapod: call peapod providers through a mixnet, from Python's asyncio.

    provider = await peapod.discover("http://127.0.0.1:8080")
    async with await peapod.connect("ws://127.0.0.1:1977", provider) as client:
        await peapod.kv.put(client, "greeting", "hello")

discover fetches and verifies the provider's signed descriptor; connect
opens a mixnet client's WebSocket API (``client run``, or Nym's native
client); Client.call sends one request anonymously, with reply SURBs, and
returns the reply. See docs/sdk-python.md.
"""

from .address import Address, parse_address
from .authorities import MAX_AUTHORITIES, Authorities, check_authorities, refuse_other_authorities
from .client import (DEFAULT_MAX_REQUEST_SIZE, DEFAULT_REPLY_SURBS, DEFAULT_RESEND, DEFAULT_TIMEOUT, Client,
                     connect)
from .descriptor import WELL_KNOWN_PATH, Descriptor, Network, Service, decode_key, verify_descriptor
from .discover import Provider, discover
from .envelope import Reply, encode_request, parse_reply
from .errors import AuthoritiesMismatchError, ConnectionError, DescriptorError, NoReplyError, PeapodError, ProviderError, TooLargeError
from .frames import encode_self_address, encode_send_anonymous, parse_response
from .services import KVList, echo, kv
from .trust import FileTrustStore, MemoryTrustStore, provider_id

__all__ = [
    "Address", "Authorities", "AuthoritiesMismatchError", "Client", "ConnectionError", "DEFAULT_MAX_REQUEST_SIZE", "DEFAULT_REPLY_SURBS", "DEFAULT_RESEND",
    "DEFAULT_TIMEOUT", "Descriptor", "DescriptorError", "FileTrustStore", "KVList", "MemoryTrustStore", "Network",
    "NoReplyError", "PeapodError", "Provider", "ProviderError", "Reply", "Service", "TooLargeError",
    "WELL_KNOWN_PATH", "connect", "decode_key", "discover", "echo", "encode_request", "encode_self_address",
    "encode_send_anonymous", "kv", "parse_address", "parse_reply", "parse_response", "provider_id",
    "verify_descriptor", "MAX_AUTHORITIES", "check_authorities", "refuse_other_authorities",
]
