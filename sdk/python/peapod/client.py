"""A client of one provider over Nym's native-client WebSocket API: the API
of ``client run``, and of Nym's own native client."""

import asyncio
import base64
import logging
import secrets
from typing import Callable, Dict, Optional, Union

import websockets

from .address import Address, parse_address
from .envelope import ReplyError, encode_request, parse_reply
from .errors import ConnectionError, NoReplyError, PeapodError, ProviderError, TooLargeError
from .frames import ClientError, FrameError, Received, SelfAddress, encode_self_address, encode_send_anonymous, parse_response

log = logging.getLogger("peapod")

DEFAULT_REPLY_SURBS = 10
DEFAULT_RESEND = 20.0
DEFAULT_TIMEOUT = 60.0
#: The provider's request limit when its descriptor publishes none (the provider's default).
DEFAULT_MAX_REQUEST_SIZE = 262_144
CONNECT_TIMEOUT = 10.0
#: The largest frame read from the mixnet client (a 1 MiB reply, base64 and JSON around it, fits).
MAX_FRAME = 16 << 20


async def connect(ws_url: str, provider, *, reply_surbs: int = DEFAULT_REPLY_SURBS,
                  resend_after: float = DEFAULT_RESEND, timeout: float = DEFAULT_TIMEOUT,
                  on_warning: Optional[Callable[[str], None]] = None) -> "Client":
    """Open the WebSocket API of a mixnet client (such as ``client run`` at
    ws://127.0.0.1:1977), check that it answers, and return a Client that
    sends requests to provider (a discovered Provider, or an address).
    Cancel it like any coroutine."""
    address = provider if isinstance(provider, (str, Address)) else provider.address
    if isinstance(address, str):
        try:
            address = parse_address(address)
        except ValueError as e:
            raise PeapodError("bad_address", f"provider address: {e}") from None
    limits = getattr(provider, "limits", None) or {}
    try:
        ws = await asyncio.wait_for(websockets.connect(ws_url, max_size=MAX_FRAME, ping_interval=None),
                                    CONNECT_TIMEOUT)
    except (OSError, asyncio.TimeoutError, websockets.exceptions.WebSocketException) as e:
        raise ConnectionError(f"{ws_url}: {e or 'timed out'}") from None
    c = Client(ws, address, limits.get("max_request_size", DEFAULT_MAX_REQUEST_SIZE),
               reply_surbs, resend_after, timeout, on_warning or log.warning)
    try:
        await asyncio.wait_for(c._ready(), CONNECT_TIMEOUT)
    except asyncio.TimeoutError:
        await c.close()
        raise ConnectionError(f"{ws_url}: no answer to SelfAddress within {CONNECT_TIMEOUT:g} s") from None
    except BaseException:
        await c.close()
        raise
    return c


class Client:
    """Sends requests to one provider and matches the replies by request id.
    One connection carries any number of concurrent calls. Use connect()."""

    def __init__(self, ws, provider: Address, max_request_size: int, reply_surbs: int,
                 resend_after: float, timeout: float, warn: Callable[[str], None]):
        self._ws = ws
        self.provider = provider
        self.max_request_size = max_request_size
        self._defaults = (reply_surbs, resend_after, timeout)
        self._warn = warn
        self._pending: Dict[str, asyncio.Future] = {}
        self._self_address: asyncio.Future = asyncio.get_running_loop().create_future()
        self._closed: Optional[ConnectionError] = None
        self.self_address = ""
        self._reader = asyncio.create_task(self._read())

    async def _ready(self):
        await self._ws.send(encode_self_address())
        self.self_address = (await self._self_address).text

    async def call(self, service: str, data: Union[bytes, str], *, timeout: Optional[float] = None,
                   reply_surbs: Optional[int] = None, resend_after: Optional[float] = None) -> bytes:
        """Send data to the provider's service and return the reply's data.

        Raises ProviderError with the provider's code when it answers with a
        failure, TooLargeError before sending a request longer than the
        provider accepts, NoReplyError when no reply came within timeout
        seconds, ConnectionError when the WebSocket closes. Without a reply
        for resend_after seconds the request is sent again with the same id;
        the provider answers a repeat without running it twice. Cancelling
        the task cancels the call.
        """
        if self._closed:
            raise self._closed
        d_surbs, d_resend, d_timeout = self._defaults
        timeout = d_timeout if timeout is None else timeout
        surbs = d_surbs if reply_surbs is None else reply_surbs
        resend_after = d_resend if resend_after is None else resend_after
        id = base64.urlsafe_b64encode(secrets.token_bytes(16)).rstrip(b"=").decode()
        body = encode_request(id, service, data.encode("utf-8") if isinstance(data, str) else bytes(data))
        if len(body) > self.max_request_size:
            raise TooLargeError(len(body), self.max_request_size)
        frame = encode_send_anonymous(self.provider.raw, surbs, 0, body)
        fut = asyncio.get_running_loop().create_future()
        self._pending[id] = fut
        try:
            async with asyncio.timeout(timeout):
                while True:
                    try:
                        await self._ws.send(frame)
                    except websockets.exceptions.ConnectionClosed as e:
                        raise self._fail(ConnectionError(f"sending: {e}"))
                    try:
                        return await asyncio.wait_for(asyncio.shield(fut), resend_after if resend_after > 0 else None)
                    except asyncio.TimeoutError:
                        if fut.done():
                            return fut.result()
                        log.debug("no reply yet; sending the request again")
        except TimeoutError:
            raise NoReplyError(timeout) from None
        finally:
            self._pending.pop(id, None)
            if not fut.done():
                fut.cancel()

    async def close(self) -> None:
        """Close the WebSocket; calls waiting for a reply fail with a ConnectionError."""
        self._fail(ConnectionError("closed"))
        await self._ws.close()
        self._reader.cancel()
        try:
            await self._reader
        except asyncio.CancelledError:
            pass

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()

    def _fail(self, err: ConnectionError) -> ConnectionError:
        if self._closed is None:
            self._closed = err
            for fut in list(self._pending.values()) + [self._self_address]:
                if not fut.done():
                    fut.set_exception(err)
        return self._closed

    async def _read(self):
        try:
            async for msg in self._ws:
                self._on_message(msg)
            reason = f" {self._ws.close_reason}" if self._ws.close_reason else ""
            self._fail(ConnectionError(f"the WebSocket closed ({self._ws.close_code}{reason})"))
        except websockets.exceptions.ConnectionClosed as e:
            self._fail(ConnectionError(f"the WebSocket closed ({e})"))

    def _on_message(self, msg):
        if isinstance(msg, str):
            self._warn("peapod: the mixnet client sent a text frame; the SDK speaks binary frames only")
            return
        try:
            r = parse_response(msg)
        except FrameError as e:
            self._warn(str(e))
            return
        if isinstance(r, SelfAddress):
            if not self._self_address.done():
                self._self_address.set_result(r.address)
            return
        if isinstance(r, ClientError):
            self._warn(f"peapod: the mixnet client reports an error (kind {r.kind}): {r.message}")
            return
        if not isinstance(r, Received):
            return
        try:
            reply = parse_reply(r.data)
        except ReplyError as e:
            self._warn(f"peapod: a message that is not a reply: {e}")
            return
        fut = self._pending.get(reply.id)
        if fut is None or fut.done():
            if reply.id == "" and not reply.ok:
                self._warn(f"peapod: the provider refused a request it could not read: {reply.code}: {reply.message}")
            return  # a second reply to a request sent twice, or another application's
        if reply.ok:
            fut.set_result(reply.data)
        else:
            fut.set_exception(ProviderError(reply.code, reply.message))
