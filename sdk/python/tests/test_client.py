"""Client behaviour against a WebSocket server on loopback that plays the
mixnet client and the provider: request ids and matching, resends with the
same id, limits, cancellation, typed errors. The integration tests
(internal/testnet) run the same calls through a real network."""

import asyncio
import base64
import json
import struct
import unittest

import websockets

import peapod
from peapod import ConnectionError, NoReplyError, ProviderError, TooLargeError, kv, parse_address

ADDRESS = ("CytBseW6yFXUMzz4SGAKdNLGR7q3sJLLYxyBGvutNEQV.4QXYyEVc5fUDjmmi8PrHN9tdUFV4PCvSJE1278cHyvoe"
           "@4sBbL1ngf1vtNqykydQKTFh26sQCw888GpUqvPvyNB4f")


def received(body: bytes) -> bytes:
    return b"\x01\x00" + struct.pack(">Q", len(body)) + body


def ok(id, data):
    return received(json.dumps({"v": 1, "id": id, "status": "ok",
                                "data": base64.b64encode(data.encode()).decode()}).encode())


def failure(id, code, message):
    return received(json.dumps({"v": 1, "id": id, "status": "error",
                                "error": {"code": code, "message": message}}).encode())


class FakeClient:
    """A WebSocket server that answers SelfAddress and hands each request
    to on_request(request, ws), an async function that may send replies."""

    def __init__(self, on_request):
        self.on_request = on_request
        self.connections = []

    async def handler(self, ws, path=None):
        self.connections.append(ws)
        async for frame in ws:
            if frame == b"\x03":
                await ws.send(b"\x02" + parse_address(ADDRESS).raw)
                continue
            assert frame[0] == 0x01
            (surbs,) = struct.unpack_from(">I", frame, 1)
            req = json.loads(frame[117:])
            req["data"] = base64.b64decode(req["data"]).decode()
            req["surbs"] = surbs
            await self.on_request(req, ws)

    async def __aenter__(self):
        self.server = await websockets.serve(self.handler, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc):
        self.server.close()
        await self.server.wait_closed()


PROVIDER = peapod.Address(ADDRESS, parse_address(ADDRESS).raw)


class ClientTest(unittest.IsolatedAsyncioTestCase):
    async def connect(self, url, **kw):
        kw.setdefault("on_warning", lambda m: None)
        return await peapod.connect(url, PROVIDER, **kw)

    async def test_matching(self):
        async def on_request(req, ws):
            await ws.send(ok("someone-else", "not yours"))
            await ws.send(ok(req["id"], "echo " + req["data"]))

        async with FakeClient(on_request) as fake:
            async with await self.connect(fake.url) as c:
                self.assertEqual(c.self_address, ADDRESS)
                a, b = await asyncio.gather(c.call("echo", "a"), c.call("echo", b"b"))
                self.assertEqual((a, b), (b"echo a", b"echo b"))

    async def test_provider_error(self):
        async def on_request(req, ws):
            await ws.send(failure(req["id"], "unknown_service", "no service nope"))

        async with FakeClient(on_request) as fake:
            async with await self.connect(fake.url) as c:
                with self.assertRaises(ProviderError) as cm:
                    await c.call("nope", "")
                self.assertEqual((cm.exception.code, cm.exception.detail), ("unknown_service", "no service nope"))

    async def test_resend_same_id(self):
        seen = []

        async def on_request(req, ws):
            seen.append((req["id"], req["surbs"]))
            if len(seen) == 3:
                await ws.send(ok(req["id"], "at last"))

        async with FakeClient(on_request) as fake:
            async with await self.connect(fake.url, resend_after=0.02) as c:
                self.assertEqual(await c.call("echo", "x", reply_surbs=3), b"at last")
        self.assertEqual(len(seen), 3)
        self.assertEqual(len(set(seen)), 1, "every resend carries the first id")
        self.assertEqual(seen[0][1], 3)

    async def test_too_large_before_sending(self):
        sent = []

        async def on_request(req, ws):
            sent.append(req)

        async with FakeClient(on_request) as fake:
            c = await peapod.connect(fake.url, _Target(ADDRESS, {"max_request_size": 4096}), on_warning=lambda m: None)
            with self.assertRaises(TooLargeError) as cm:
                await c.call("echo", b"\0" * 4000)
            self.assertEqual((cm.exception.code, cm.exception.limit), ("too_large", 4096))
            await c.close()
        self.assertEqual(sent, [])

    async def test_cancel(self):
        async def on_request(req, ws):
            pass

        async with FakeClient(on_request) as fake:
            async with await self.connect(fake.url) as c:
                task = asyncio.create_task(c.call("echo", "x"))
                await asyncio.sleep(0)
                task.cancel()
                with self.assertRaises(asyncio.CancelledError):
                    await task
                self.assertEqual(c._pending, {})

    async def test_no_reply(self):
        async def on_request(req, ws):
            pass

        async with FakeClient(on_request) as fake:
            async with await self.connect(fake.url) as c:
                with self.assertRaises(NoReplyError) as cm:
                    await c.call("echo", "x", timeout=0.05, resend_after=0)
                self.assertEqual(cm.exception.code, "no_reply")

    async def test_closing_fails_waiting_calls(self):
        async def on_request(req, ws):
            await ws.close()

        async with FakeClient(on_request) as fake:
            c = await self.connect(fake.url)
            with self.assertRaises(ConnectionError):
                await c.call("echo", "x")
            with self.assertRaises(ConnectionError):
                await c.call("echo", "y")
            await c.close()

    async def test_garbage_is_reported_and_skipped(self):
        warnings = []

        async def on_request(req, ws):
            await ws.send(b"\x09")
            await ws.send(received(b"{}"))
            await ws.send(ok(req["id"], "fine"))

        async with FakeClient(on_request) as fake:
            async with await self.connect(fake.url, on_warning=warnings.append) as c:
                self.assertEqual(await c.call("echo", "x"), b"fine")
        self.assertEqual(len(warnings), 2, warnings)

    async def test_kv(self):
        store = {}

        async def on_request(req, ws):
            self.assertEqual(req["service"], "kv")
            r = json.loads(req["data"])
            if r["op"] == "put":
                store[r["key"]] = r["value"]
                out = {"ok": True}
            elif r["op"] == "delete":
                store.pop(r["key"], None)
                out = {"ok": True}
            elif r["op"] == "list":
                out = {"keys": sorted(k for k in store if k.startswith(r.get("prefix", "")))}
            elif r["key"] in store:
                out = {"value": store[r["key"]]}
            else:
                await ws.send(failure(req["id"], "not_found", "no such key"))
                return
            await ws.send(ok(req["id"], json.dumps(out)))

        async with FakeClient(on_request) as fake:
            async with await self.connect(fake.url) as c:
                await kv.put(c, "a1", "x")
                await kv.put(c, "a2", "y")
                await kv.put(c, "b", "z")
                self.assertEqual(await kv.get(c, "a2"), "y")
                self.assertEqual((await kv.list(c, "a")).keys, ["a1", "a2"])
                await kv.delete(c, "a1")
                self.assertIsNone(await kv.get(c, "a1"))

    async def test_connect_refused(self):
        with self.assertRaises(ConnectionError):
            await self.connect("ws://127.0.0.1:1")


class _Target:
    def __init__(self, address, limits):
        self.address, self.limits = address, limits


if __name__ == "__main__":
    unittest.main()
