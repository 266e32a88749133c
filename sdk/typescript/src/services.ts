// Helpers for the example services: echo and kv (examples/kvstore).
import { decodeUTF8, utf8 } from "./bytes.js";
import type { CallOptions, Client } from "./client.js";
import { PeapodError, ProviderError } from "./errors.js";

/** echo sends data to the provider's "echo" service and returns what comes back. */
export async function echo(client: Client, data: Uint8Array | string, opts?: CallOptions): Promise<Uint8Array> {
  return client.call("echo", data, opts);
}

/** The result of kv.list: the keys, sorted, and whether more matched than one reply holds. */
export interface KVList {
  keys: string[];
  truncated: boolean;
}

async function kvCall(client: Client, request: object, opts?: CallOptions): Promise<Record<string, unknown>> {
  const reply = await client.call("kv", JSON.stringify(request), opts);
  const v = JSON.parse(decodeUTF8(reply));
  if (typeof v !== "object" || v === null) throw new PeapodError("bad_reply", "kv: the reply is not a JSON object");
  return v;
}

/** kv is the client side of the kv service: a store shared by all its requesters. */
export const kv = {
  /** put stores value under key. */
  async put(client: Client, key: string, value: string, opts?: CallOptions): Promise<void> {
    await kvCall(client, { op: "put", key, value }, opts);
  },
  /** get returns the value of key, or undefined when the store has none. */
  async get(client: Client, key: string, opts?: CallOptions): Promise<string | undefined> {
    try {
      const r = await kvCall(client, { op: "get", key }, opts);
      if (typeof r.value !== "string") throw new PeapodError("bad_reply", "kv: a get reply without a value");
      return r.value;
    } catch (e) {
      if (e instanceof ProviderError && e.code === "not_found") return undefined;
      throw e;
    }
  },
  /** delete removes key (a missing key is not an error). */
  async delete(client: Client, key: string, opts?: CallOptions): Promise<void> {
    await kvCall(client, { op: "delete", key }, opts);
  },
  /** list returns the keys that start with prefix (all keys without one). */
  async list(client: Client, prefix?: string, opts?: CallOptions): Promise<KVList> {
    const r = await kvCall(client, prefix === undefined ? { op: "list" } : { op: "list", prefix }, opts);
    const keys = r.keys;
    if (!Array.isArray(keys) || !keys.every((k) => typeof k === "string")) {
      throw new PeapodError("bad_reply", "kv: a list reply without keys");
    }
    return { keys, truncated: r.truncated === true };
  },
};

/** text decodes a reply's data as UTF-8. */
export function text(data: Uint8Array): string {
  return decodeUTF8(data);
}

export { utf8 as bytes };
