"""discover against a real HTTP server on loopback, serving the shared
vector documents: verification, pinning, trust on first use."""

import json
import os
import pathlib
import stat
import tempfile
import unittest
from datetime import datetime, timezone

from peapod import AuthoritiesMismatchError, DescriptorError, FileTrustStore, MemoryTrustStore, discover

from .httpserver import Server

VECTORS = json.loads((pathlib.Path(__file__).resolve().parents[3]
                      / "framework/descriptor/testdata/vectors.json").read_text())["vectors"]
BY_NAME = {v["name"]: v for v in VECTORS}
SELF_CERT = BY_NAME["self-certifying peapod provider"]
NYM = BY_NAME["nym provider with its own key, pinned"]
ALTERED = BY_NAME["payload altered (directory port)"]
WITH_AUTHORITIES = BY_NAME["self-certifying, a network of three authorities"]
NOW = datetime.strptime(SELF_CERT["now"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


class DocServer(Server):
    """Serves self.doc as the descriptor."""

    def __init__(self, doc):
        self.doc = doc
        super().__init__(lambda path: self.doc.encode() if path == "/.well-known/peapod.json" else None)


class DiscoverTest(unittest.IsolatedAsyncioTestCase):
    def serve(self, doc):
        s = DocServer(doc)
        self.addCleanup(s.close)
        return s

    async def test_verified(self):
        s = self.serve(SELF_CERT["document"])
        warnings = []
        p = await discover(s.url + "/", now=NOW, on_warning=warnings.append)
        self.assertTrue(p.self_certifying)
        self.assertEqual((p.url, p.trust), (s.url, "none"))
        self.assertEqual([x.name for x in p.services], ["echo"])
        self.assertEqual(p.network.directory, "http://127.0.0.1:8090")
        self.assertTrue(any("not https" in w for w in warnings), warnings)

    async def test_tampered_and_wrong_pin(self):
        bad = self.serve(ALTERED["document"])
        with self.assertRaises(DescriptorError) as cm:
            await discover(bad.url, now=NOW, on_warning=lambda m: None)
        self.assertEqual(cm.exception.code, "signature")
        good = self.serve(SELF_CERT["document"])
        with self.assertRaises(DescriptorError) as cm:
            await discover(good.url, now=NOW, pinned_key=NYM["pinned_key"], on_warning=lambda m: None)
        self.assertEqual(cm.exception.code, "key_mismatch")
        signed = self.serve(WITH_AUTHORITIES["document"])  # the same key, and no warning
        pinned = await discover(signed.url, now=NOW, pinned_key=BY_NAME["self-certifying, pinned to its key"]["pinned_key"],
                                on_warning=self.fail)
        self.assertEqual(pinned.trust, "pinned")

    async def test_expired(self):
        s = self.serve(SELF_CERT["document"])
        with self.assertRaises(DescriptorError) as cm:
            await discover(s.url, on_warning=lambda m: None)
        self.assertEqual(cm.exception.code, "expired")

    async def test_trust_on_first_use(self):
        s = self.serve(WITH_AUTHORITIES["document"])
        path = os.path.join(tempfile.mkdtemp(), "client", "known_providers.json")
        warnings = []
        first = await discover(s.url, now=NOW, trust_store=FileTrustStore(path), on_warning=warnings.append)
        self.assertEqual(first.trust, "first_use")
        self.assertTrue(any(first.key_text in w for w in warnings), "the key is printed on first use")
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        with open(path) as f:
            self.assertEqual(json.load(f), {"v": 1, "providers": {s.url: first.key_text}})

        warnings.clear()
        again = await discover(s.url, now=NOW, trust_store=FileTrustStore(path), on_warning=warnings.append)
        self.assertEqual((again.trust, warnings), ("remembered", []))

        s.doc = NYM["document"]  # another provider's valid descriptor, at the same URL
        with self.assertRaises(DescriptorError) as cm:
            await discover(s.url, now=NOW, trust_store=FileTrustStore(path), on_warning=lambda m: None)
        self.assertEqual(cm.exception.code, "key_changed")
        self.assertIn("KEY CHANGED", str(cm.exception))
        self.assertIn(first.key_text, str(cm.exception))
        self.assertIn(NYM["pinned_key"], str(cm.exception))
        # The same substitute without the remembered key would have passed.
        p = await discover(s.url, now=NOW, trust_store=MemoryTrustStore(), on_warning=lambda m: None)
        self.assertEqual(p.key_text, NYM["pinned_key"])

    async def test_network_mismatch(self):
        s = self.serve(SELF_CERT["document"])  # names http://127.0.0.1:8090
        for same in ("http://127.0.0.1:8090", "HTTP://127.0.0.1:8090/"):
            p = await discover(s.url, now=NOW, directory=same, on_warning=lambda m: None)
            self.assertEqual(p.network.directory, "http://127.0.0.1:8090")
        store = MemoryTrustStore()
        for other, named in (("http://127.0.0.1:9999", "http://127.0.0.1:8090"), ("https://127.0.0.1:8090", None)):
            with self.assertRaises(DescriptorError) as cm:
                await discover(s.url, now=NOW, directory=other, trust_store=store, on_warning=lambda m: None)
            self.assertEqual(cm.exception.code, "network_mismatch")
            self.assertIn("NETWORK IS NOT YOURS", str(cm.exception))
            if named:
                self.assertIn(named, str(cm.exception))
        self.assertIsNone(store.get(s.url), "the key of a refused descriptor was remembered")
        s.doc = NYM["document"]
        with self.assertRaises(DescriptorError) as cm:
            await discover(s.url, now=NOW, directory="http://127.0.0.1:8090", on_warning=lambda m: None)
        self.assertEqual(cm.exception.code, "network_mismatch")
        self.assertIn("a nym network", str(cm.exception))

    async def test_authorities(self):
        """The network's directory authorities: returned, and others than the trusted ones refused."""
        s = self.serve(WITH_AUTHORITIES["document"])
        keys = WITH_AUTHORITIES["authorities"]
        p = await discover(s.url, now=NOW, on_warning=lambda m: None)
        self.assertEqual((p.network.authorities, p.network.threshold), (keys, WITH_AUTHORITIES["threshold"]))

        warnings = []
        same = await discover(s.url, now=NOW, authorities=[keys[2], keys[0], keys[1]], threshold=2,
                              on_warning=warnings.append)
        self.assertEqual(same.network.authorities, keys, "the same authorities in another order pass")
        self.assertFalse([w for w in warnings if "authorities" in w])

        other = NYM["pinned_key"]  # a valid key that is not one of the network's
        for what, kwargs in (("another authority", dict(authorities=[keys[0], keys[1], other])),
                             ("a higher threshold", dict(authorities=keys, threshold=3))):
            with self.subTest(what):
                store = MemoryTrustStore()
                with self.assertRaises(AuthoritiesMismatchError) as cm:
                    await discover(s.url, now=NOW, trust_store=store, on_warning=lambda m: None, **kwargs)
                self.assertEqual(cm.exception.code, "other_authorities")
                self.assertIsInstance(cm.exception, DescriptorError)
                self.assertIn("THE PROVIDER'S NETWORK IS NOT YOURS", str(cm.exception))
                self.assertEqual(cm.exception.published, sorted(keys))
                self.assertIsNone(store.get(s.url), "the refused descriptor's key was remembered")
        with self.assertRaises(DescriptorError) as cm:
            await discover(s.url, now=NOW, authorities=[keys[0], keys[0]], on_warning=lambda m: None)
        self.assertEqual(cm.exception.code, "malformed")

        # The network's directory is its three authorities' URLs: the same ones
        # in any order are the same network, some of them are not.
        await discover(s.url, now=NOW, directory="http://127.0.0.1:8092,HTTP://127.0.0.1:8090/, http://127.0.0.1:8091",
                       on_warning=lambda m: None)
        with self.assertRaises(DescriptorError) as cm:
            await discover(s.url, now=NOW, directory="http://127.0.0.1:8090", on_warning=lambda m: None)
        self.assertEqual(cm.exception.code, "network_mismatch")

        s.doc = SELF_CERT["document"]  # names no authorities
        warnings.clear()
        await discover(s.url, now=NOW, authorities=keys, on_warning=warnings.append)
        self.assertTrue(any("only your mixnet client's own authorities" in w for w in warnings), warnings)
        warnings.clear()
        await discover(s.url, now=NOW, on_warning=warnings.append)
        self.assertTrue(any("its topology is not signed" in w for w in warnings), warnings)

    async def test_fetch_failure(self):
        s = self.serve(SELF_CERT["document"])
        for url in (s.url + "/nothing-here", "ftp://example"):
            with self.assertRaises(DescriptorError) as cm:
                await discover(url, now=NOW, on_warning=lambda m: None)
            self.assertEqual(cm.exception.code, "fetch")


if __name__ == "__main__":
    unittest.main()
