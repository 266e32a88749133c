import * as ed from "@noble/ed25519";

import { fromBase58, toBase58 } from "./bytes.js";

/** Sizes of a Nym-style client address. */
export const KEY_SIZE = 32;
export const ADDRESS_SIZE = 3 * KEY_SIZE;

/**
 * Address is a mixnet client address: identity (ed25519), encryption key
 * (X25519) and the gateway's identity; text is Nym's form
 * base58(identity).base58(encryption)@base58(gateway), bytes the 96-byte
 * binary form the WebSocket API carries.
 */
export interface Address {
  readonly text: string;
  readonly bytes: Uint8Array;
  readonly identity: Uint8Array;
  readonly gateway: Uint8Array;
}

/** parseAddress reads Nym's text form, or returns the reason it is not one. */
export function parseAddress(s: string): Address | string {
  const at = s.split("@");
  if (at.length !== 2) return at.length < 2 ? "missing '@' between the client keys and the gateway" : "more than one '@'";
  const dot = at[0].split(".");
  if (dot.length !== 2) return dot.length < 2 ? "missing '.' between the identity and the encryption key" : "more than one '.' before the '@'";
  const parts: Uint8Array[] = [];
  for (const [name, text] of [["identity", dot[0]], ["encryption key", dot[1]], ["gateway", at[1]]]) {
    const k = fromBase58(text, KEY_SIZE);
    if (typeof k === "string") return `${name}: ${k}`;
    parts.push(k);
  }
  const bytes = new Uint8Array(ADDRESS_SIZE);
  parts.forEach((p, i) => bytes.set(p, i * KEY_SIZE));
  return addressFromBytes(bytes);
}

/** addressFromBytes reads the 96-byte binary form. */
export function addressFromBytes(b: Uint8Array): Address | string {
  if (b.length !== ADDRESS_SIZE) return `binary form is ${b.length} bytes, want ${ADDRESS_SIZE}`;
  const identity = b.slice(0, KEY_SIZE);
  const gateway = b.slice(2 * KEY_SIZE);
  if (!isPoint(identity)) return "identity: not a valid ed25519 public key";
  if (!isPoint(gateway)) return "gateway: not a valid ed25519 public key";
  const text = `${toBase58(identity)}.${toBase58(b.subarray(KEY_SIZE, 2 * KEY_SIZE))}@${toBase58(gateway)}`;
  return { text, bytes: b.slice(), identity, gateway };
}

// isPoint accepts what Go's edwards25519 SetBytes accepts: any encoding of
// a point on the curve, canonical or not (ZIP 215).
function isPoint(b: Uint8Array): boolean {
  try {
    ed.Point.fromBytes(b, true);
    return true;
  } catch {
    return false;
  }
}
