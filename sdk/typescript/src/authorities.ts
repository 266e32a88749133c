// The directory authorities of a peapod network (docs/protocol.md §3b): the
// keys a provider descriptor's network section names, and the rule a
// requester that trusts some authorities applies to them.
import * as ed from "@noble/ed25519";

import { KEY_SIZE } from "./address.js";
import { fromBase58, toBase58 } from "./bytes.js";
import { AuthoritiesMismatchError, DescriptorError } from "./errors.js";

/** The most authorities a network may name. */
export const MAX_AUTHORITIES = 64;

/** Authorities are directory authorities' base58 ed25519 keys and a threshold. */
export interface Authorities {
  /** The base58 ed25519 keys, each once. */
  keys: string[];
  /** Signatures of distinct authorities a topology needs; 0 means a majority. */
  threshold: number;
}

/** signaturesNeeded is the threshold of a, a majority when it is 0. */
export function signaturesNeeded(a: Authorities): number {
  return a.threshold === 0 ? Math.floor(a.keys.length / 2) + 1 : a.threshold;
}

/**
 * checkAuthorities checks authorities as Go's directory.ParseTrust does:
 * one to MAX_AUTHORITIES distinct valid ed25519 keys (base58, as given or
 * as 32 bytes) and a threshold from a majority of them to all of them (0:
 * a majority). It returns them with the keys as base58 text, and throws a
 * DescriptorError ("malformed") naming what is wrong.
 */
export function checkAuthorities(keys: (string | Uint8Array)[], threshold = 0): Authorities {
  const bad = (why: string): never => {
    throw new DescriptorError("malformed", `directory authorities: ${why}`);
  };
  const n = keys.length;
  if (n === 0) bad("no authority keys");
  if (n > MAX_AUTHORITIES) bad(`${n} authority keys, at most ${MAX_AUTHORITIES} allowed`);
  const texts: string[] = [];
  keys.forEach((k, i) => {
    const bytes = typeof k === "string" ? fromBase58(k, KEY_SIZE) : k.length === KEY_SIZE ? k : `${k.length} bytes, want ${KEY_SIZE}`;
    if (typeof bytes === "string") return bad(`authority key ${i + 1} (${JSON.stringify(String(k).slice(0, 50))}) is not a 32-byte base58 key: ${bytes}`);
    try {
      // As Go's edwards25519 decodes: non-canonical encodings of valid points pass.
      ed.Point.fromBytes(bytes, true);
    } catch {
      bad(`authority key ${i + 1} is not a valid ed25519 public key`);
    }
    const text = toBase58(bytes);
    if (texts.includes(text)) bad(`authority key ${text} is listed twice`);
    texts.push(text);
  });
  if (!Number.isInteger(threshold) || (threshold !== 0 && (threshold < Math.floor(n / 2) + 1 || threshold > n))) {
    bad(`threshold ${threshold} is out of range ${Math.floor(n / 2) + 1}..${n} (a majority of ${n} authorities to all of them)`);
  }
  return { keys: texts, threshold };
}

/**
 * refuseOtherAuthorities throws an AuthoritiesMismatchError when published
 * (a descriptor's network) names other keys than trusted, in any order, or
 * a threshold below trusted's. A network that names none passes: the
 * topology is then checked only by the mixnet client's own authorities.
 */
export function refuseOtherAuthorities(provider: string, trusted: Authorities, published: Authorities | undefined): void {
  if (published === undefined) return;
  const want = [...trusted.keys].sort();
  const got = [...published.keys].sort();
  const same = want.length === got.length && want.every((k, i) => k === got[i]);
  if (same && signaturesNeeded(published) >= signaturesNeeded(trusted)) return;
  throw new AuthoritiesMismatchError(provider, want, signaturesNeeded(trusted), got, signaturesNeeded(published));
}
