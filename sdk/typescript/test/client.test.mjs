// Client behaviour against an in-memory WebSocket that plays the mixnet
// client and the provider: request ids and matching, resends with the same
// id, limits, cancellation, typed errors. The integration tests
// (internal/testnet) run the same calls through a real network.
import { test } from "node:test";
import assert from "node:assert/strict";

import {
  ConnectionError,
  NoReplyError,
  ProviderError,
  TooLargeError,
  connect,
  kv,
  parseAddress,
  text,
} from "../dist/index.js";

const ADDRESS =
  "CytBseW6yFXUMzz4SGAKdNLGR7q3sJLLYxyBGvutNEQV.4QXYyEVc5fUDjmmi8PrHN9tdUFV4PCvSJE1278cHyvoe@4sBbL1ngf1vtNqykydQKTFh26sQCw888GpUqvPvyNB4f";
const provider = { address: ADDRESS, limits: { maxRequestSize: 4096 } };

// FakeSocket answers SelfAddress and hands every SendAnonymous to
// onRequest(request, frameIndex), which may answer with reply(...).
function fakeSocket(onRequest) {
  const sockets = [];
  class FakeSocket extends EventTarget {
    binaryType = "blob";
    readyState = 0;
    sent = [];
    constructor(url) {
      super();
      this.url = url;
      sockets.push(this);
      queueMicrotask(() => {
        this.readyState = 1;
        this.dispatchEvent(new Event("open"));
      });
    }
    send(frame) {
      this.sent.push(frame);
      if (frame[0] === 0x03) {
        const out = new Uint8Array(97);
        out[0] = 0x02;
        out.set(parseAddress(ADDRESS).bytes, 1);
        this.deliver(out);
        return;
      }
      assert.equal(frame[0], 0x01, "only SendAnonymous");
      const view = new DataView(frame.buffer, frame.byteOffset);
      const surbs = view.getUint32(1);
      const body = JSON.parse(Buffer.from(frame.subarray(117)).toString());
      onRequest({ ...body, surbs, data: Buffer.from(body.data, "base64") }, this);
    }
    deliver(bytes) {
      const ab = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
      queueMicrotask(() => this.dispatchEvent(Object.assign(new Event("message"), { data: ab })));
    }
    reply(obj) {
      const body = Buffer.from(JSON.stringify(obj));
      const out = new Uint8Array(10 + body.length);
      out[0] = 0x01;
      new DataView(out.buffer).setBigUint64(2, BigInt(body.length));
      out.set(body, 10);
      this.deliver(out);
    }
    close() {
      this.readyState = 3;
      queueMicrotask(() => this.dispatchEvent(Object.assign(new Event("close"), { code: 1000 })));
    }
  }
  return { FakeSocket, sockets };
}

const ok = (id, data) => ({ v: 1, id, status: "ok", data: Buffer.from(data).toString("base64") });
const quiet = { onWarning: () => {} };

test("a call gets the reply to its own id, among others", async () => {
  const { FakeSocket } = fakeSocket((req, s) => {
    s.reply(ok("someone-else", "not yours"));
    s.reply(ok(req.id, `echo ${req.data}`));
  });
  const c = await connect("ws://fake", provider, { WebSocket: FakeSocket, ...quiet });
  assert.equal(c.selfAddress, ADDRESS);
  const [a, b] = await Promise.all([c.call("echo", "a"), c.call("echo", "b")]);
  assert.equal(text(a), "echo a");
  assert.equal(text(b), "echo b");
  c.close();
});

test("provider failures are ProviderErrors with the code", async () => {
  const { FakeSocket } = fakeSocket((req, s) =>
    s.reply({ v: 1, id: req.id, status: "error", error: { code: "unknown_service", message: "no service nope" } }),
  );
  const c = await connect("ws://fake", provider, { WebSocket: FakeSocket, ...quiet });
  await assert.rejects(c.call("nope", ""), (e) => e instanceof ProviderError && e.code === "unknown_service" && e.detail === "no service nope");
  c.close();
});

test("without a reply the request is sent again with the same id", async () => {
  const seen = [];
  const { FakeSocket } = fakeSocket((req, s) => {
    seen.push(req.id);
    if (seen.length === 3) s.reply(ok(req.id, "at last"));
  });
  const c = await connect("ws://fake", provider, { WebSocket: FakeSocket, resendAfter: 20, ...quiet });
  assert.equal(text(await c.call("echo", "x", { replySurbs: 3 })), "at last");
  assert.equal(seen.length, 3);
  assert.equal(new Set(seen).size, 1, "every resend carries the first id");
  c.close();
});

test("a request over the provider's limit is refused before sending", async () => {
  let sent = 0;
  const { FakeSocket } = fakeSocket(() => sent++);
  const c = await connect("ws://fake", provider, { WebSocket: FakeSocket, ...quiet });
  await assert.rejects(c.call("echo", new Uint8Array(4000)), (e) => e instanceof TooLargeError && e.code === "too_large" && e.limit === 4096);
  assert.equal(sent, 0);
  c.close();
});

test("cancelling with an AbortSignal rejects with its reason", async () => {
  const { FakeSocket } = fakeSocket(() => {});
  const c = await connect("ws://fake", provider, { WebSocket: FakeSocket, ...quiet });
  const ac = new AbortController();
  const p = c.call("echo", "x", { signal: ac.signal });
  ac.abort(new Error("user gave up"));
  await assert.rejects(p, /user gave up/);
  c.close();
});

test("no reply within the timeout is a NoReplyError", async () => {
  const { FakeSocket } = fakeSocket(() => {});
  const c = await connect("ws://fake", provider, { WebSocket: FakeSocket, ...quiet });
  await assert.rejects(c.call("echo", "x", { timeout: 30, resendAfter: 0 }), (e) => e instanceof NoReplyError && e.code === "no_reply");
  c.close();
});

test("a closing WebSocket fails the calls waiting", async () => {
  const { FakeSocket, sockets } = fakeSocket(() => {});
  const c = await connect("ws://fake", provider, { WebSocket: FakeSocket, ...quiet });
  const p = c.call("echo", "x");
  sockets[0].close();
  await assert.rejects(p, (e) => e instanceof ConnectionError);
  await assert.rejects(c.call("echo", "y"), (e) => e instanceof ConnectionError);
});

test("garbage from the mixnet client is reported and skipped", async () => {
  const warnings = [];
  const { FakeSocket } = fakeSocket((req, s) => {
    s.deliver(Uint8Array.of(0x09));
    s.deliver(Uint8Array.of(0x01, 0x00, 0, 0, 0, 0, 0, 0, 0, 2, 0x7b, 0x7d)); // "{}": not a reply
    s.reply(ok(req.id, "fine"));
  });
  const c = await connect("ws://fake", provider, { WebSocket: FakeSocket, onWarning: (m) => warnings.push(m) });
  assert.equal(text(await c.call("echo", "x")), "fine");
  assert.equal(warnings.length, 2, warnings.join("\n"));
  c.close();
});

test("kv helpers build the kv service's requests and read its replies", async () => {
  const store = new Map();
  const { FakeSocket } = fakeSocket((req, s) => {
    assert.equal(req.service, "kv");
    const r = JSON.parse(req.data);
    let out;
    if (r.op === "put") (store.set(r.key, r.value), (out = { ok: true }));
    else if (r.op === "delete") (store.delete(r.key), (out = { ok: true }));
    else if (r.op === "list") out = { keys: [...store.keys()].filter((k) => k.startsWith(r.prefix ?? "")).sort() };
    else if (store.has(r.key)) out = { value: store.get(r.key) };
    else return s.reply({ v: 1, id: req.id, status: "error", error: { code: "not_found", message: "no such key" } });
    s.reply(ok(req.id, JSON.stringify(out)));
  });
  const c = await connect("ws://fake", provider, { WebSocket: FakeSocket, ...quiet });
  await kv.put(c, "a1", "x");
  await kv.put(c, "a2", "y");
  await kv.put(c, "b", "z");
  assert.equal(await kv.get(c, "a2"), "y");
  assert.deepEqual(await kv.list(c, "a"), { keys: ["a1", "a2"], truncated: false });
  await kv.delete(c, "a1");
  assert.equal(await kv.get(c, "a1"), undefined);
  c.close();
});

test("connect fails with a ConnectionError when nothing listens", async () => {
  // A real WebSocket to a port nobody listens on.
  const WS = globalThis.WebSocket;
  assert.ok(WS, "run with --experimental-websocket on Node 20");
  await assert.rejects(connect("ws://127.0.0.1:1", provider, quiet), (e) => e instanceof ConnectionError);
});
