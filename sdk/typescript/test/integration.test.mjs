// Integration tests through a real network: internal/testnet's TestSDKs
// starts the mixnet, a provider (--max-request 1048576) and `client run`,
// and runs this file with PEAPOD_PROVIDER_URL, PEAPOD_WS_URL and
// PEAPOD_AUTHORITIES (the network's directory authorities) set.
// Without them the tests are skipped (npm test runs the unit tests only).
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";

import { DescriptorError, ProviderError, TooLargeError, connect, discover, echo, kv, text } from "../dist/index.js";

const providerURL = process.env.PEAPOD_PROVIDER_URL;
const wsURL = process.env.PEAPOD_WS_URL;
const authorities = process.env.PEAPOD_AUTHORITIES?.split(",") ?? [];
const skip = !providerURL || !wsURL || !authorities.length ? "PEAPOD_PROVIDER_URL, PEAPOD_WS_URL and PEAPOD_AUTHORITIES are not set" : false;
const quiet = { onWarning() {} };

test("discover, then put, get, list and delete through the mixnet", { skip }, async () => {
  const provider = await discover(providerURL, { authorities, ...quiet });
  assert.ok(provider.selfCertifying);
  assert.deepEqual(provider.network.authorities, authorities, "the descriptor names the network's authorities");
  assert.ok(provider.services.some((s) => s.name === "kv"));
  const client = await connect(wsURL, provider, quiet);
  try {
    const prefix = `node-${process.pid}/`;
    await kv.put(client, prefix + "a", "one");
    await kv.put(client, prefix + "b", "two ✓");
    assert.equal(await kv.get(client, prefix + "b"), "two ✓");
    assert.deepEqual((await kv.list(client, prefix)).keys, [prefix + "a", prefix + "b"]);
    await kv.delete(client, prefix + "a");
    assert.equal(await kv.get(client, prefix + "a"), undefined);
    assert.deepEqual((await kv.list(client, prefix)).keys, [prefix + "b"]);
    const bytes = Uint8Array.from({ length: 3000 }, (_, i) => i % 256);
    assert.deepEqual(await echo(client, bytes), bytes);
  } finally {
    client.close();
  }
});

test("unknown_service and too_large reach the caller as typed errors", { skip }, async () => {
  const provider = await discover(providerURL, quiet);
  // The provider runs with --max-request 1048576 and publishes it.
  assert.equal(provider.limits?.maxRequestSize, 1 << 20);
  const client = await connect(wsURL, provider, quiet);
  // A client that does not check the limit, to reach the provider's own refusal.
  const unchecked = await connect(wsURL, { address: provider.address, limits: { maxRequestSize: 4 << 20 } }, quiet);
  try {
    await assert.rejects(client.call("no-such-service", "x"), (e) => e instanceof ProviderError && e.code === "unknown_service");
    // Over the provider's published limit: refused before it is sent.
    await assert.rejects(client.call("kv", new Uint8Array(client.maxRequestSize)), (e) => e instanceof TooLargeError && e.code === "too_large");
    // Sent anyway: the provider's too_large comes back to this call.
    await assert.rejects(unchecked.call("echo", new Uint8Array(1 << 20)), (e) => e instanceof ProviderError && e.code === "too_large");
    // Within the provider's limit but over the kv service's own: the
    // service's too_large comes back through the mixnet.
    const value = "x".repeat(400 * 1024);
    await assert.rejects(kv.put(client, "big", value), (e) => e instanceof ProviderError && e.code === "too_large");
  } finally {
    client.close();
    unchecked.close();
  }
});

test("a tampered descriptor and a wrong pinned key are refused", { skip }, async (t) => {
  // A man in the middle that changes one byte of the signed payload.
  const server = createServer(async (req, res) => {
    const doc = JSON.parse(await (await fetch(providerURL + req.url)).text());
    const payload = Buffer.from(doc.payload, "base64");
    payload[payload.indexOf("directory") + 20] ^= 1;
    doc.payload = payload.toString("base64");
    res.writeHead(200).end(JSON.stringify(doc));
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  t.after(() => server.close());
  const mitm = `http://127.0.0.1:${server.address().port}`;
  await assert.rejects(discover(mitm, quiet), (e) => e instanceof DescriptorError && e.code === "signature");
  const wrongKey = "4sBbL1ngf1vtNqykydQKTFh26sQCw888GpUqvPvyNB4f";
  await assert.rejects(discover(providerURL, { pinnedKey: wrongKey, ...quiet }), (e) => e instanceof DescriptorError && e.code === "key_mismatch");
});

test("the README's example runs as written", { skip }, () => {
  const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
  const code = readme.match(/```ts\n([\s\S]*?)```/)[1];
  assert.ok(code.split("\n").filter((l) => l.trim()).length <= 12, "the example stays short");
  mkdirSync(new URL("../build/", import.meta.url), { recursive: true });
  const file = new URL("../build/readme-example.mjs", import.meta.url);
  writeFileSync(file, code.replaceAll("http://127.0.0.1:8080", providerURL).replaceAll("ws://127.0.0.1:1977", wsURL));
  // Run from inside the package, so that "@peapod/sdk" resolves to itself.
  const out = execFileSync(process.execPath, ["--experimental-websocket", "--no-warnings", file.pathname], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  assert.equal(out, "hello from Node\n[ 'greeting' ]\n");
});
