// The provider request protocol (docs/provider.md, section 2).
import { decodeUTF8, fromBase64, toBase64, utf8 } from "./bytes.js";
import { JsonObject, JsonValue, JsonNumber, isObject, parseJSON, withDuplicates } from "./json.js";

/** Limits of the request protocol. */
export const MAX_ID_LENGTH = 64;
export const MAX_CODE_LENGTH = 32;

/** validId: 1 to 64 code points of well-formed text, none a control character. */
export function validId(id: string): boolean {
  if (id === "" || !isWellFormed(id) || /\p{Cc}/u.test(id)) return false;
  let n = 0;
  for (const _ of id) if (++n > MAX_ID_LENGTH) return false;
  return true;
}

/** validService: [a-z0-9][a-z0-9._-]{0,63}, the form every service name has. */
export function validService(name: string): boolean {
  return /^[a-z0-9][a-z0-9._-]{0,63}$/.test(name);
}

function validCode(code: string): boolean {
  return /^[a-z][a-z0-9_]{0,31}$/.test(code);
}

function isWellFormed(s: string): boolean {
  return !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(s);
}

/** RequestError: a request the SDK refuses to build. */
export class RequestError extends Error {}

/** encodeRequest returns the UTF-8 JSON of one request. */
export function encodeRequest(id: string, service: string, data: Uint8Array): Uint8Array {
  if (!validId(id)) throw new RequestError("peapod: invalid request id");
  if (!validService(service)) throw new RequestError(`peapod: invalid service name ${JSON.stringify(service.slice(0, 80))}`);
  return utf8(JSON.stringify({ v: 1, id, service, data: toBase64(data) }));
}

/** Reply is a provider's answer: data for a success, code and message for a failure. */
export type Reply =
  | { id: string; ok: true; data: Uint8Array }
  | { id: string; ok: false; code: string; message: string };

/** ReplyError: a message that is not a valid reply. */
export class ReplyError extends Error {}

/**
 * parseReply reads one reply as strictly as the Go requester: valid UTF-8,
 * one JSON object, no member twice, "v" exactly 1, canonical base64.
 */
export function parseReply(body: Uint8Array): Reply {
  const fail = (why: string): never => {
    throw new ReplyError(`peapod: reply: ${why}`);
  };
  let text: string;
  try {
    text = decodeUTF8(body);
  } catch {
    return fail("not valid UTF-8");
  }
  let v: JsonValue;
  try {
    v = parseJSON(text, "note");
  } catch (e) {
    return fail((e as Error).message);
  }
  if (!isObject(v)) return fail("not a JSON object");
  if (withDuplicates.has(v)) return fail("a member appears twice");
  const version = v.get("v");
  if (!(version instanceof JsonNumber) || version.raw !== "1") return fail('"v" is not 1');
  const id = v.get("id");
  if (typeof id !== "string") return fail('"id" missing or not a string');
  if (id !== "" && !validId(id)) return fail('invalid "id"');
  const status = v.get("status");
  const data = v.get("data");
  const error = v.get("error");
  if (status === "ok") {
    if (error !== undefined) return fail('"error" in a success');
    if (typeof data !== "string") return fail('"data" missing or not a string');
    const bytes = fromBase64(data);
    if (bytes === undefined) return fail('"data" is not canonical padded base64');
    return { id, ok: true, data: bytes };
  }
  if (status === "error") {
    if (data !== undefined) return fail('"data" in a failure');
    if (!isObject(error)) return fail('"error" missing or not an object');
    if (withDuplicates.has(error as JsonObject)) return fail('a member of "error" appears twice');
    const code = error.get("code");
    const message = error.get("message");
    if (typeof code !== "string" || !validCode(code)) return fail('invalid error "code"');
    if (typeof message !== "string") return fail('error "message" missing or not a string');
    return { id, ok: false, code, message };
  }
  return fail('"status" missing or unknown');
}
