// Nym's native-client WebSocket API in binary frames (docs/protocol.md,
// section 6): the two requests the SDK sends and every response.
import { ADDRESS_SIZE, Address, addressFromBytes } from "./address.js";
import { decodeUTF8 } from "./bytes.js";

const TAG_SEND_ANONYMOUS = 0x01;
const TAG_SELF_ADDRESS = 0x03;

const SENDER_TAG_SIZE = 16;
const LENGTH_SIZE = 8;

/** encodeSendAnonymous: 0x01 ‖ reply_surbs u32 ‖ recipient[96] ‖ connection_id u64 ‖ length u64 ‖ data. */
export function encodeSendAnonymous(recipient: Uint8Array, replySurbs: number, connectionId: bigint, data: Uint8Array): Uint8Array {
  const head = 1 + 4 + ADDRESS_SIZE + 8 + LENGTH_SIZE;
  const out = new Uint8Array(head + data.length);
  const view = new DataView(out.buffer);
  out[0] = TAG_SEND_ANONYMOUS;
  view.setUint32(1, replySurbs);
  out.set(recipient, 5);
  view.setBigUint64(5 + ADDRESS_SIZE, connectionId);
  view.setBigUint64(5 + ADDRESS_SIZE + 8, BigInt(data.length));
  out.set(data, head);
  return out;
}

/** encodeSelfAddress: the one-byte request for the client's own address. */
export function encodeSelfAddress(): Uint8Array {
  return Uint8Array.of(TAG_SELF_ADDRESS);
}

export type Response =
  | { type: "received"; senderTag: Uint8Array | null; data: Uint8Array }
  | { type: "self_address"; address: Address }
  | { type: "error"; kind: number; message: string }
  | { type: "lane_queue_length"; lane: bigint; queueLength: bigint };

/** FrameError: a response frame that is not one of Nym's. */
export class FrameError extends Error {}

const knownKinds = new Set([0x01, 0x02, 0x03, 0x04, 0x80, 0x81, 0x82, 0x83, 0xff]);

/** parseResponse reads one binary response frame, strictly: exact lengths, nothing after. */
export function parseResponse(b: Uint8Array): Response {
  const fail = (why: string): never => {
    throw new FrameError(`peapod: response frame: ${why}`);
  };
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const data = (at: number): Uint8Array => {
    if (b.length < at + LENGTH_SIZE) fail("too short");
    const n = view.getBigUint64(at);
    if (n !== BigInt(b.length - at - LENGTH_SIZE)) fail(`length ${n} does not match the ${b.length - at - LENGTH_SIZE} bytes that follow`);
    return b.slice(at + LENGTH_SIZE);
  };
  if (b.length === 0) return fail("empty");
  switch (b[0]) {
    case 0x00: {
      if (b.length < 2) fail("too short");
      const kind = b[1];
      if (!knownKinds.has(kind)) fail(`unknown error kind ${kind}`);
      let message: string;
      try {
        message = decodeUTF8(data(2));
      } catch (e) {
        if (e instanceof FrameError) throw e;
        return fail("error message is not UTF-8");
      }
      return { type: "error", kind, message };
    }
    case 0x01: {
      if (b.length < 2) fail("too short");
      if (b[1] === 0) return { type: "received", senderTag: null, data: data(2) };
      if (b[1] !== 1) fail(`invalid sender tag flag ${b[1]}`);
      if (b.length < 2 + SENDER_TAG_SIZE) fail("too short");
      return { type: "received", senderTag: b.slice(2, 2 + SENDER_TAG_SIZE), data: data(2 + SENDER_TAG_SIZE) };
    }
    case 0x02: {
      if (b.length !== 1 + ADDRESS_SIZE) fail(`self address is ${b.length} bytes, want ${1 + ADDRESS_SIZE}`);
      const a = addressFromBytes(b.subarray(1));
      if (typeof a === "string") return fail(a);
      return { type: "self_address", address: a };
    }
    case 0x03:
      if (b.length !== 17) fail(`lane queue length is ${b.length} bytes, want 17`);
      return { type: "lane_queue_length", lane: view.getBigUint64(1), queueLength: view.getBigUint64(9) };
  }
  return fail(`unknown response tag ${b[0]}`);
}
