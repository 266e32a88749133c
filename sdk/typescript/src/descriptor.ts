// The provider's signed descriptor (docs/provider.md, section 3).
import * as ed from "@noble/ed25519";

import { Address, KEY_SIZE, parseAddress } from "./address.js";
import { decodeUTF8, equalBytes, fromBase58, fromBase64, toBase58, utf8 } from "./bytes.js";
import { DescriptorError } from "./errors.js";
import { JsonNumber, JsonObject, JsonValue, isObject, parseJSON } from "./json.js";
import { validService } from "./envelope.js";
import { checkAuthorities } from "./authorities.js";

/** Where a provider's HTTP endpoint serves its descriptor. */
export const WELL_KNOWN_PATH = "/.well-known/peapod.json";
/** The prefix of every signed message. */
export const SIGNATURE_CONTEXT = "peapod-provider-descriptor-v1\n";
/** The largest document read, in bytes. */
export const MAX_DESCRIPTOR_SIZE = 256 * 1024;
/** The longest validity a descriptor may claim. */
export const MAX_LIFETIME_MS = 31 * 24 * 3600 * 1000;
/** Clock difference allowed by default. */
export const DEFAULT_MAX_SKEW_MS = 5 * 60 * 1000;

export interface Service {
  name: string;
  description: string;
}

/** Network says how to reach the mixnet the provider is on. */
export interface Network {
  /** "peapod" (joined through its directory) or "nym" (Nym's mixnet). */
  type: "peapod" | "nym";
  /** The peapod network's directory URL, or its authorities' URLs separated by commas; absent for Nym. */
  directory?: string;
  /**
   * The base58 ed25519 keys of the peapod network's directory authorities,
   * the network's trust roots (docs/protocol.md §3b); absent when the
   * network names none (its topology is not signed) and for Nym.
   */
  authorities?: string[];
  /** Signatures of distinct authorities a topology needs; absent (with authorities) means a majority. */
  threshold?: number;
}

/**
 * Limits are what the provider enforces, when its descriptor publishes
 * them: the longest request message (the whole envelope), the longest reply
 * data, and how long a request may run.
 */
export interface Limits {
  maxRequestSize: number;
  maxReplySize: number;
  requestTimeoutMs: number;
}

/** Descriptor is a verified descriptor. */
export interface Descriptor {
  address: Address;
  services: Service[];
  network: Network;
  /** The provider's limits; undefined when its descriptor does not publish them. */
  limits?: Limits;
  /** The ed25519 public key that signed it, and its base58 text. */
  key: Uint8Array;
  keyText: string;
  issuedAt: Date;
  expiresAt: Date;
  /** The key is the address's own identity key: only the holder of the address could have signed. */
  selfCertifying: boolean;
}

export interface VerifyOptions {
  /** The time to check validity against; default now. */
  now?: Date;
  /** Clock difference allowed, in ms; default DEFAULT_MAX_SKEW_MS. */
  maxSkewMs?: number;
  /** The provider's pinned key (base58 text or 32 bytes): another key fails with "key_mismatch". */
  pinnedKey?: string | Uint8Array;
}

/** decodeKey reads a base58 ed25519 public key, as the provider prints it. */
export function decodeKey(key: string | Uint8Array): Uint8Array {
  if (key instanceof Uint8Array) {
    if (key.length !== KEY_SIZE) throw new DescriptorError("malformed", `a key is ${KEY_SIZE} bytes, not ${key.length}`);
    return key;
  }
  const k = fromBase58(key, KEY_SIZE);
  if (typeof k === "string") throw new DescriptorError("malformed", `key ${JSON.stringify(key.slice(0, 60))}: ${k}`);
  return k;
}

/**
 * verifyDescriptor checks a descriptor document as the Go requester does
 * (docs/provider.md, section 3, "Verification") and returns its content.
 * Every failure is a DescriptorError; every signature failure has the one
 * code "signature".
 */
export async function verifyDescriptor(doc: Uint8Array | string, opts: VerifyOptions = {}): Promise<Descriptor> {
  const bytes = typeof doc === "string" ? utf8(doc) : doc;
  const malformed = (why: string): never => {
    throw new DescriptorError("malformed", `descriptor: ${why}`);
  };
  const badSignature = (): never => {
    throw new DescriptorError("signature", "descriptor: invalid signature");
  };
  if (bytes.length > MAX_DESCRIPTOR_SIZE) malformed(`${bytes.length} bytes, more than ${MAX_DESCRIPTOR_SIZE}`);
  const document = parseStrict(bytes, "document", malformed);
  checkVersion(document, "document", malformed);
  const payloadText = document.get("payload");
  if (typeof payloadText !== "string") return malformed('document: "payload" missing or not a string');
  const payload = fromBase64(payloadText);
  if (!payload) return malformed('document: "payload" is not canonical padded base64');
  const sigText = document.get("signature");
  if (typeof sigText !== "string") return badSignature();
  const sig = fromBase64(sigText);
  if (!sig || sig.length !== 64) return badSignature();

  const p = parseStrict(payload, "payload", malformed);
  checkVersion(p, "payload", malformed);
  const str = (obj: JsonObject, name: string, where = "payload"): string => {
    const v = obj.get(name);
    if (typeof v !== "string") return malformed(`${where}: "${name}" missing or not a string`);
    return v;
  };
  const address = parseAddress(str(p, "address"));
  if (typeof address === "string") return malformed(`payload: "address": ${address}`);
  const key = fromBase58(str(p, "key"), KEY_SIZE);
  if (typeof key === "string") return malformed(`payload: "key": ${key}`);
  const issuedAt = parseTime(str(p, "issued_at"), malformed);
  const expiresAt = parseTime(str(p, "expires_at"), malformed);
  const net = p.get("network");
  if (!isObject(net)) return malformed('payload: "network" missing or not an object');
  const type = str(net, "type", "network");
  const directory = net.has("directory") ? str(net, "directory", "network") : undefined;
  let authorities: string[] | undefined;
  if (net.has("authorities")) {
    const a = net.get("authorities");
    if (!Array.isArray(a) || a.length === 0 || !a.every((k) => typeof k === "string")) {
      return malformed('network: "authorities" is not a non-empty array of strings');
    }
    authorities = a as string[];
  }
  let threshold: number | undefined;
  if (net.has("threshold")) {
    const v = net.get("threshold");
    if (!(v instanceof JsonNumber) || !/^[1-9][0-9]{0,8}$/.test(v.raw)) return malformed('network: "threshold" is not a whole number above 0');
    threshold = v.value;
  }
  let limits: Limits | undefined;
  if (p.has("limits")) {
    const l = p.get("limits");
    if (!isObject(l)) return malformed('payload: "limits" is not an object');
    const whole = (name: string): number => {
      const v = l.get(name);
      // Plain digits, 1 to 2^53-1: the largest integer every JSON reader holds exactly.
      if (!(v instanceof JsonNumber) || !/^[1-9][0-9]{0,15}$/.test(v.raw) || v.value > Number.MAX_SAFE_INTEGER) {
        return malformed(`payload: "limits": "${name}" is not a whole number from 1 to ${Number.MAX_SAFE_INTEGER}`);
      }
      return v.value;
    };
    limits = { maxRequestSize: whole("max_request_size"), maxReplySize: whole("max_reply_size"), requestTimeoutMs: whole("request_timeout_ms") };
  }
  const servicesRaw = p.get("services");
  if (!Array.isArray(servicesRaw)) return malformed('payload: "services" missing or not an array');
  const services: Service[] = [];
  const seen = new Set<string>();
  for (const item of servicesRaw as JsonValue[]) {
    if (!isObject(item)) return malformed('payload: "services": not an object');
    const s = { name: str(item, "name", "services"), description: str(item, "description", "services") };
    if (!validService(s.name)) malformed(`invalid service name ${JSON.stringify(s.name.slice(0, 80))}`);
    if (seen.has(s.name)) malformed(`service ${JSON.stringify(s.name)} listed twice`);
    seen.add(s.name);
    services.push(s);
  }
  if (expiresAt <= issuedAt) malformed("expires before it is issued");
  if (expiresAt.getTime() - issuedAt.getTime() > MAX_LIFETIME_MS) malformed("valid for more than 31 days");
  if (type === "peapod") {
    if (!directory) malformed("a peapod network needs a directory URL");
  } else if (type === "nym") {
    if (directory) malformed("a Nym network has no directory URL");
  } else {
    malformed(`unknown network type ${JSON.stringify(type.slice(0, 20))}`);
  }
  if (type !== "peapod" && (authorities || threshold)) malformed("only a peapod network has directory authorities");
  if (threshold && !authorities) malformed("a network threshold without authorities");
  if (authorities) checkAuthorities(authorities, threshold);

  if (opts.pinnedKey !== undefined && !equalBytes(decodeKey(opts.pinnedKey), key)) {
    throw new DescriptorError("key_mismatch", "descriptor: signed by another key than the pinned one");
  }
  const message = new Uint8Array(SIGNATURE_CONTEXT.length + payload.length);
  message.set(utf8(SIGNATURE_CONTEXT));
  message.set(payload, SIGNATURE_CONTEXT.length);
  let valid = false;
  try {
    valid = await ed.verifyAsync(sig, message, key, { zip215: false });
  } catch {
    valid = false;
  }
  if (!valid) badSignature();

  const now = (opts.now ?? new Date()).getTime();
  const skew = opts.maxSkewMs ?? DEFAULT_MAX_SKEW_MS;
  if (issuedAt.getTime() > now + skew) {
    throw new DescriptorError("not_yet_valid", `descriptor: issued in the future (${formatTime(issuedAt)})`);
  }
  if (expiresAt.getTime() <= now - skew) {
    throw new DescriptorError("expired", `descriptor: expired at ${formatTime(expiresAt)}`);
  }
  return {
    address,
    services,
    network:
      directory === undefined
        ? { type: type as "nym" }
        : { type: type as "peapod", directory, ...(authorities && { authorities }), ...(threshold && { threshold }) },
    ...(limits && { limits }),
    key,
    keyText: toBase58(key),
    issuedAt,
    expiresAt,
    selfCertifying: equalBytes(key, address.identity),
  };
}

function parseStrict(b: Uint8Array, what: string, malformed: (why: string) => never): JsonObject {
  let v: JsonValue;
  try {
    v = parseJSON(decodeUTF8(b), "refuse");
  } catch (e) {
    return malformed(`${what}: ${e instanceof TypeError ? "not valid UTF-8" : (e as Error).message}`);
  }
  if (!isObject(v)) return malformed(`${what}: not a JSON object`);
  return v;
}

function checkVersion(obj: JsonObject, what: string, malformed: (why: string) => never): void {
  const v = obj.get("v");
  if (!(v instanceof JsonNumber) || v.raw !== "1") malformed(`${what}: unsupported or missing version`);
}

function parseTime(s: string, malformed: (why: string) => never): Date {
  const t = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/.test(s) ? new Date(s) : undefined;
  if (!t || isNaN(t.getTime()) || formatTime(t) !== s) return malformed(`time ${JSON.stringify(s.slice(0, 40))} is not of the form YYYY-MM-DDTHH:MM:SSZ`);
  return t;
}

function formatTime(t: Date): string {
  return t.toISOString().replace(/\.\d{3}Z$/, "Z");
}
