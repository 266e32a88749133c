// discover against a real HTTP server on loopback, serving the shared
// vector documents: verification, pinning, trust on first use.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { mkdtempSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { AuthoritiesMismatchError, DescriptorError, MemoryTrustStore, discover } from "../dist/index.js";
import { FileTrustStore } from "../dist/node.js";

const vectors = JSON.parse(readFileSync(new URL("../../../framework/descriptor/testdata/vectors.json", import.meta.url), "utf8"));
const byName = (name) => vectors.vectors.find((v) => v.name === name);
const selfCert = byName("self-certifying peapod provider");
const nym = byName("nym provider with its own key, pinned");
const altered = byName("payload altered (directory port)");
const withAuthorities = byName("self-certifying, a network of three authorities");
const now = new Date(selfCert.now);

// serve starts an HTTP server whose descriptor is whatever doc() returns.
async function serve(t, doc) {
  const server = createServer((req, res) => {
    if (req.url !== "/.well-known/peapod.json") return res.writeHead(404).end();
    res.writeHead(200, { "content-type": "application/json" }).end(doc());
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  t.after(() => server.close());
  return `http://127.0.0.1:${server.address().port}`;
}

test("discover verifies and returns the provider", async (t) => {
  const url = await serve(t, () => selfCert.document);
  const warnings = [];
  const p = await discover(url + "/", { now, onWarning: (m) => warnings.push(m) });
  assert.equal(p.selfCertifying, true);
  assert.equal(p.url, url);
  assert.equal(p.trust, "none");
  assert.deepEqual(p.services.map((s) => s.name), ["echo"]);
  assert.equal(p.network.directory, "http://127.0.0.1:8090");
  assert.ok(warnings.some((w) => w.includes("not https")), warnings.join("\n"));
});

test("a tampered descriptor and a wrong pinned key are refused", async (t) => {
  const url = await serve(t, () => altered.document);
  await assert.rejects(discover(url, { now, onWarning() {} }), (e) => e instanceof DescriptorError && e.code === "signature");
  const good = await serve(t, () => selfCert.document);
  await assert.rejects(
    discover(good, { now, pinnedKey: nym.pinned_key, onWarning() {} }),
    (e) => e instanceof DescriptorError && e.code === "key_mismatch",
  );
  const signed = await serve(t, () => withAuthorities.document); // the same key, and no warning
  const pinned = await discover(signed, { now, pinnedKey: byName("self-certifying, pinned to its key").pinned_key, onWarning: assert.fail });
  assert.equal(pinned.trust, "pinned");
});

test("an expired descriptor is refused", async (t) => {
  const url = await serve(t, () => selfCert.document);
  await assert.rejects(discover(url, { onWarning() {} }), (e) => e instanceof DescriptorError && e.code === "expired");
});

test("trust on first use: the key is remembered and a substitute refused", async (t) => {
  let doc = withAuthorities.document;
  const url = await serve(t, () => doc);
  const file = join(mkdtempSync(join(tmpdir(), "peapod-sdk-")), "client", "known_providers.json");
  const warnings = [];
  const first = await discover(url, { now, trustStore: new FileTrustStore(file), onWarning: (m) => warnings.push(m) });
  assert.equal(first.trust, "first_use");
  assert.ok(warnings.some((w) => w.includes(first.keyText)), "the key is printed on first use");
  assert.equal(statSync(file).mode & 0o777, 0o600);
  assert.deepEqual(JSON.parse(readFileSync(file, "utf8")), { v: 1, providers: { [url]: first.keyText } });

  warnings.length = 0;
  const again = await discover(url, { now, trustStore: new FileTrustStore(file), onWarning: (m) => warnings.push(m) });
  assert.equal(again.trust, "remembered");
  assert.deepEqual(warnings, [], "no warning once the key is remembered");

  doc = nym.document; // another provider's valid descriptor, at the same URL
  await assert.rejects(discover(url, { now, trustStore: new FileTrustStore(file), onWarning() {} }), (e) => {
    assert.ok(e instanceof DescriptorError && e.code === "key_changed", String(e));
    assert.match(e.message, /KEY CHANGED/);
    assert.ok(e.message.includes(first.keyText) && e.message.includes(nym.pinned_key), e.message);
    return true;
  });
  // The same substitute without the remembered key would have passed.
  const store = new MemoryTrustStore();
  assert.equal((await discover(url, { now, trustStore: store, onWarning() {} })).keyText, nym.pinned_key);
});

test("a descriptor naming another network than yours is refused before its key is remembered", async (t) => {
  let doc = selfCert.document; // names http://127.0.0.1:8090
  const url = await serve(t, () => doc);
  for (const same of ["http://127.0.0.1:8090", "HTTP://127.0.0.1:8090/"]) {
    const p = await discover(url, { now, directory: same, onWarning() {} });
    assert.equal(p.network.directory, "http://127.0.0.1:8090");
  }
  const store = new MemoryTrustStore();
  for (const other of ["http://127.0.0.1:9999", "https://127.0.0.1:8090"]) {
    await assert.rejects(discover(url, { now, directory: other, trustStore: store, onWarning() {} }), (e) => {
      assert.ok(e instanceof DescriptorError && e.code === "network_mismatch", String(e));
      assert.match(e.message, /NETWORK IS NOT YOURS/);
      assert.ok(e.message.includes("http://127.0.0.1:8090"), e.message);
      return true;
    });
  }
  assert.equal(store.get(url), undefined, "the key of a refused descriptor was remembered");
  doc = nym.document;
  await assert.rejects(
    discover(url, { now, directory: "http://127.0.0.1:8090", onWarning() {} }),
    (e) => e instanceof DescriptorError && e.code === "network_mismatch" && e.message.includes("a nym network"),
  );
});

test("a fetch failure is a DescriptorError", async (t) => {
  const url = await serve(t, () => selfCert.document);
  await assert.rejects(discover(url + "/nothing-here", { now, onWarning() {} }), (e) => e instanceof DescriptorError && e.code === "fetch");
  await assert.rejects(discover("ftp://example", { onWarning() {} }), (e) => e instanceof DescriptorError && e.code === "fetch");
});

test("the network's directory authorities: returned, and others than the trusted ones refused", async (t) => {
  let doc = withAuthorities.document;
  const url = await serve(t, () => doc);
  const keys = withAuthorities.authorities;
  const p = await discover(url, { now, onWarning() {} });
  assert.deepEqual(p.network.authorities, keys);
  assert.equal(p.network.threshold, withAuthorities.threshold);

  const warnings = [];
  const same = await discover(url, { now, authorities: [keys[2], keys[0], keys[1]], threshold: 2, onWarning: (m) => warnings.push(m) });
  assert.deepEqual(same.network.authorities, keys, "the same authorities in another order pass");
  assert.ok(!warnings.some((w) => w.includes("authorities")), warnings.join("\n"));

  // Another network's authorities (the descriptor's two first and one of
  // the caller's own), or a stricter threshold than the descriptor's.
  const other = byName("nym provider with its own key, pinned").pinned_key;
  for (const [what, opts] of [
    ["another authority", { authorities: [keys[0], keys[1], other] }],
    ["a higher threshold", { authorities: keys, threshold: 3 }],
  ]) {
    const store = new MemoryTrustStore();
    await assert.rejects(discover(url, { now, trustStore: store, onWarning() {}, ...opts }), (e) => {
      assert.ok(e instanceof AuthoritiesMismatchError && e instanceof DescriptorError, `${what}: ${e}`);
      assert.equal(e.code, "other_authorities", what);
      assert.match(e.message, /THE PROVIDER'S NETWORK IS NOT YOURS/);
      assert.deepEqual(e.published, [...keys].sort(), what);
      return true;
    });
    assert.equal(await store.get(new URL(url).origin), undefined, `${what}: the refused descriptor's key was remembered`);
  }
  await assert.rejects(discover(url, { now, authorities: [keys[0], keys[0]], onWarning() {} }), (e) => e.code === "malformed");

  // The network's directory is its three authorities' URLs: the same ones
  // in any order are the same network, some of them are not.
  await discover(url, { now, directory: "http://127.0.0.1:8092,HTTP://127.0.0.1:8090/, http://127.0.0.1:8091", onWarning() {} });
  await assert.rejects(
    discover(url, { now, directory: "http://127.0.0.1:8090", onWarning() {} }),
    (e) => e instanceof DescriptorError && e.code === "network_mismatch",
  );

  doc = selfCert.document; // names no authorities
  warnings.length = 0;
  await discover(url, { now, authorities: keys, onWarning: (m) => warnings.push(m) });
  assert.ok(warnings.some((w) => w.includes("only your mixnet client's own authorities")), warnings.join("\n"));
  warnings.length = 0;
  await discover(url, { now, onWarning: (m) => warnings.push(m) });
  assert.ok(warnings.some((w) => w.includes("its topology is not signed")), warnings.join("\n"));
});
