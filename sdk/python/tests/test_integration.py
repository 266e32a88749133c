"""Integration tests through a real network: internal/testnet's TestSDKs
starts the mixnet, a provider (--max-request 1048576) and ``client run``,
and runs this module with PEAPOD_PROVIDER_URL, PEAPOD_WS_URL and
PEAPOD_AUTHORITIES (the network's directory authorities) set.
Without them the tests are skipped."""

import asyncio
import base64
import json
import os
import pathlib
import re
import subprocess
import sys
import types
import unittest
import urllib.request

import peapod
from peapod import DescriptorError, ProviderError, TooLargeError, kv

from .httpserver import Server

PROVIDER_URL = os.environ.get("PEAPOD_PROVIDER_URL")
WS_URL = os.environ.get("PEAPOD_WS_URL")
AUTHORITIES = [k for k in os.environ.get("PEAPOD_AUTHORITIES", "").split(",") if k]
HERE = pathlib.Path(__file__).resolve().parent.parent
quiet = dict(on_warning=lambda m: None)


@unittest.skipUnless(PROVIDER_URL and WS_URL and AUTHORITIES,
                     "PEAPOD_PROVIDER_URL, PEAPOD_WS_URL and PEAPOD_AUTHORITIES are not set")
class Integration(unittest.IsolatedAsyncioTestCase):
    async def test_kv_through_the_mixnet(self):
        provider = await peapod.discover(PROVIDER_URL, authorities=AUTHORITIES, **quiet)
        self.assertTrue(provider.self_certifying)
        self.assertEqual(provider.network.authorities, AUTHORITIES, "the descriptor names the network's authorities")
        self.assertIn("kv", [s.name for s in provider.services])
        async with await peapod.connect(WS_URL, provider, **quiet) as client:
            prefix = f"python-{os.getpid()}/"
            await kv.put(client, prefix + "a", "one")
            await kv.put(client, prefix + "b", "two ✓")
            self.assertEqual(await kv.get(client, prefix + "b"), "two ✓")
            self.assertEqual((await kv.list(client, prefix)).keys, [prefix + "a", prefix + "b"])
            await kv.delete(client, prefix + "a")
            self.assertIsNone(await kv.get(client, prefix + "a"))
            self.assertEqual((await kv.list(client, prefix)).keys, [prefix + "b"])
            data = bytes(i % 256 for i in range(3000))
            self.assertEqual(await peapod.echo(client, data), data)

    async def test_typed_errors(self):
        provider = await peapod.discover(PROVIDER_URL, **quiet)
        # The provider runs with --max-request 1048576 and publishes it.
        self.assertEqual(provider.limits.get("max_request_size"), 1 << 20)
        # A client that does not check the limit, to reach the provider's own refusal.
        target = types.SimpleNamespace(address=provider.address, limits={"max_request_size": 4 << 20})
        async with await peapod.connect(WS_URL, provider, **quiet) as client, \
                await peapod.connect(WS_URL, target, **quiet) as unchecked:
            with self.assertRaises(ProviderError) as cm:
                await client.call("no-such-service", "x")
            self.assertEqual(cm.exception.code, "unknown_service")
            # Over the provider's published limit: refused before it is sent.
            with self.assertRaises(TooLargeError):
                await client.call("kv", bytes(client.max_request_size))
            # Sent anyway: the provider's too_large comes back to this call.
            with self.assertRaises(ProviderError) as cm:
                await unchecked.call("echo", bytes(1 << 20))
            self.assertEqual(cm.exception.code, "too_large")
            # Within the provider's limit but over the kv service's own: the
            # service's too_large comes back through the mixnet.
            with self.assertRaises(ProviderError) as cm:
                await kv.put(client, "big", "x" * (400 * 1024))
            self.assertEqual(cm.exception.code, "too_large")

    async def test_tampered_and_wrong_pin(self):
        def tampered(path):
            with urllib.request.urlopen(PROVIDER_URL + path) as r:
                doc = json.loads(r.read())
            payload = bytearray(base64.b64decode(doc["payload"]))
            payload[payload.index(b"directory") + 20] ^= 1
            doc["payload"] = base64.b64encode(payload).decode()
            return json.dumps(doc).encode()

        mitm = Server(tampered)
        self.addCleanup(mitm.close)
        with self.assertRaises(DescriptorError) as cm:
            await peapod.discover(mitm.url, **quiet)
        self.assertEqual(cm.exception.code, "signature")
        with self.assertRaises(DescriptorError) as cm:
            await peapod.discover(PROVIDER_URL, pinned_key="4sBbL1ngf1vtNqykydQKTFh26sQCw888GpUqvPvyNB4f", **quiet)
        self.assertEqual(cm.exception.code, "key_mismatch")

    async def test_readme_example(self):
        readme = (HERE / "README.md").read_text()
        code = re.search(r"```python\n(.*?)```", readme, re.S).group(1)
        self.assertLessEqual(len([line for line in code.splitlines() if line.strip()]), 12, "the example stays short")
        code = code.replace("http://127.0.0.1:8080", PROVIDER_URL).replace("ws://127.0.0.1:1977", WS_URL)
        out = await asyncio.to_thread(subprocess.run, [sys.executable, "-c", code], cwd=HERE, capture_output=True,
                                      text=True, timeout=120)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout, "hello from Python\n['greeting']\n")


if __name__ == "__main__":
    unittest.main()
