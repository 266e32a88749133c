// The parsers against random and mutated input (the Go parsers have fuzz
// targets; this is the SDK's equivalent): every input is either accepted
// or refused with the parser's own error, never a TypeError, RangeError or
// a hang.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";

import { DescriptorError, parseReply, parseResponse, verifyDescriptor } from "../dist/index.js";

const root = new URL("../../../", import.meta.url);
const load = (path) => JSON.parse(readFileSync(new URL(path, root), "utf8"));

// A small seeded PRNG, so that a failure can be reproduced.
function rng(seed) {
  let s = seed >>> 0;
  return () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
}

function mutate(bytes, rand) {
  const b = Array.from(bytes);
  const edits = 1 + Math.floor(rand() * 4);
  for (let i = 0; i < edits; i++) {
    const at = Math.floor(rand() * (b.length + 1));
    switch (Math.floor(rand() * 4)) {
      case 0: b[at] = Math.floor(rand() * 256); break;
      case 1: b.splice(at, 1); break;
      case 2: b.splice(at, 0, Math.floor(rand() * 256)); break;
      case 3: b.length = at; break;
    }
  }
  return Uint8Array.from(b.filter((x) => x !== undefined));
}

const ownError = (e) => e instanceof Error && !(e instanceof TypeError) && !(e instanceof RangeError) && e.message.startsWith("peapod:");

test("reply and frame parsers refuse mutated input with their own errors", () => {
  const rand = rng(1);
  const replies = load("framework/envelope/testdata/vectors.json").replies.filter((v) => v.body).map((v) => new TextEncoder().encode(v.body));
  const frames = load("wsapi/testdata/vectors.json").responses.map((v) => Uint8Array.from(Buffer.from(v.frame_hex, "hex")));
  for (let i = 0; i < 3000; i++) {
    for (const [parse, seeds] of [[parseReply, replies], [parseResponse, frames]]) {
      const input = mutate(seeds[i % seeds.length], rand);
      try {
        parse(input);
      } catch (e) {
        assert.ok(ownError(e), `${parse.name}(${Buffer.from(input).toString("hex")}): ${e}`);
      }
    }
  }
});

test("descriptor verification refuses mutated documents with a DescriptorError", async () => {
  const rand = rng(2);
  const docs = load("framework/descriptor/testdata/vectors.json").vectors.map((v) => new TextEncoder().encode(v.document));
  const now = new Date("2025-06-01T13:00:00Z");
  let accepted = 0;
  for (let i = 0; i < 600; i++) {
    const input = mutate(docs[i % docs.length], rand);
    try {
      await verifyDescriptor(input, { now });
      accepted++;
    } catch (e) {
      assert.ok(e instanceof DescriptorError, `${Buffer.from(input).toString()}: ${e}`);
    }
  }
  assert.ok(accepted < 60, `${accepted} mutated documents accepted`);
});
