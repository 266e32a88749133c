"""Helpers for the example services: echo and kv (examples/kvstore)."""

import json
from dataclasses import dataclass
from typing import List, Optional, Union

from .errors import PeapodError, ProviderError


async def echo(client, data: Union[bytes, str], **call_options) -> bytes:
    """Send data to the provider's "echo" service and return what comes back."""
    return await client.call("echo", data, **call_options)


@dataclass(frozen=True)
class KVList:
    """The keys of a list, sorted, and whether more matched than one reply holds."""

    keys: List[str]
    truncated: bool


async def _kv_call(client, request: dict, call_options) -> dict:
    reply = await client.call("kv", json.dumps(request, separators=(",", ":")), **call_options)
    v = json.loads(reply)
    if not isinstance(v, dict):
        raise PeapodError("bad_reply", "kv: the reply is not a JSON object")
    return v


class kv:  # noqa: N801 - used as a namespace, kv.put(...), as in the TypeScript SDK
    """The client side of the kv service: a store shared by all its requesters."""

    @staticmethod
    async def put(client, key: str, value: str, **call_options) -> None:
        """Store value under key."""
        await _kv_call(client, {"op": "put", "key": key, "value": value}, call_options)

    @staticmethod
    async def get(client, key: str, **call_options) -> Optional[str]:
        """The value of key, or None when the store has none."""
        try:
            r = await _kv_call(client, {"op": "get", "key": key}, call_options)
        except ProviderError as e:
            if e.code == "not_found":
                return None
            raise
        if not isinstance(r.get("value"), str):
            raise PeapodError("bad_reply", "kv: a get reply without a value")
        return r["value"]

    @staticmethod
    async def delete(client, key: str, **call_options) -> None:
        """Remove key (a missing key is not an error)."""
        await _kv_call(client, {"op": "delete", "key": key}, call_options)

    @staticmethod
    async def list(client, prefix: Optional[str] = None, **call_options) -> KVList:
        """The keys that start with prefix (all keys without one)."""
        req = {"op": "list"} if prefix is None else {"op": "list", "prefix": prefix}
        r = await _kv_call(client, req, call_options)
        keys = r.get("keys")
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise PeapodError("bad_reply", "kv: a list reply without keys")
        return KVList(keys, r.get("truncated") is True)
