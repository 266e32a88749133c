import { DescriptorError } from "./errors.js";
import { Descriptor, MAX_DESCRIPTOR_SIZE, WELL_KNOWN_PATH, decodeKey, verifyDescriptor } from "./descriptor.js";
import { TrustStore, providerId } from "./trust.js";
import { toBase58 } from "./bytes.js";
import { checkAuthorities, refuseOtherAuthorities } from "./authorities.js";

export interface DiscoverOptions {
  /** The provider's key (base58, as it prints it, or 32 bytes): any other is refused. */
  pinnedKey?: string | Uint8Array;
  /**
   * Remembers the key on first use and refuses another key later
   * ("key_changed"). In Node, FileTrustStore from "@peapod/sdk/node"; in
   * a browser, LocalStorageTrustStore.
   */
  trustStore?: TrustStore;
  /**
   * The URL of the directory of the network you use (your client's; the
   * authorities' URLs separated by commas, in any order, for a network of
   * several): a
   * descriptor naming another network is refused ("network_mismatch")
   * before its key is remembered, since its network section picks the
   * gateway that sees your address and every mixnode.
   */
  directory?: string;
  /** Receives warnings (first use, nothing pinned over http); default console.warn. */
  onWarning?: (message: string) => void;
  /**
   * The directory authorities you trust (base58 keys, as `mixnet local` or
   * the network's operator prints them): a provider whose descriptor names
   * other authorities, or a lower threshold, is refused with an
   * AuthoritiesMismatchError (code "other_authorities") before its key is
   * remembered. Default: trust the descriptor's.
   */
  authorities?: (string | Uint8Array)[];
  /** The threshold of those authorities (signatures a topology needs); default 0, a majority. */
  threshold?: number;
  /** Cancels the fetch. */
  signal?: AbortSignal;
  /** The time to check validity against; default now. */
  now?: Date;
  /** The fetch to use; default globalThis.fetch. */
  fetch?: typeof fetch;
}

/** Provider is a discovered provider: its verified descriptor and how it was trusted. */
export interface Provider extends Descriptor {
  /** The provider URL the descriptor came from. */
  url: string;
  /** How the key was checked: pinned by the caller, remembered from an earlier use, or neither. */
  trust: "pinned" | "remembered" | "first_use" | "none";
}

/**
 * discover fetches the provider's descriptor from its HTTP endpoint
 * (url + /.well-known/peapod.json), verifies it and returns the provider.
 * It throws a DescriptorError when the descriptor cannot be fetched or is
 * refused (an AuthoritiesMismatchError when its network names other
 * directory authorities than opts.authorities).
 */
export async function discover(url: string, opts: DiscoverOptions = {}): Promise<Provider> {
  const warn = opts.onWarning ?? ((m: string) => console.warn(m));
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new DescriptorError("fetch", `provider URL ${JSON.stringify(url)} is not a URL`);
  }
  if ((u.protocol !== "http:" && u.protocol !== "https:") || u.host === "") {
    throw new DescriptorError("fetch", `provider URL ${JSON.stringify(url)} is not an http(s) URL`);
  }
  const trusted = opts.authorities === undefined ? undefined : checkAuthorities(opts.authorities, opts.threshold ?? 0);
  const id = providerId(u);
  const target = id + WELL_KNOWN_PATH;
  const doc = await fetchDocument(target, opts);

  const remembered = opts.pinnedKey === undefined ? await opts.trustStore?.get(id) : undefined;
  let d: Descriptor;
  try {
    d = await verifyDescriptor(doc, { now: opts.now, pinnedKey: opts.pinnedKey ?? remembered });
  } catch (e) {
    if (e instanceof DescriptorError && e.code === "key_mismatch" && remembered !== undefined) {
      const seen = await verifyDescriptor(doc, { now: opts.now }).then((x) => x.keyText, () => "another key");
      throw new DescriptorError(
        "key_changed",
        `THE PROVIDER'S KEY CHANGED: ${id} was signed by ${remembered} before and now by ${seen}. ` +
          `This is what a substituted descriptor looks like. If the provider changed its key on purpose, ` +
          `remove it from ${opts.trustStore!.where} and discover again.`,
      );
    }
    throw e;
  }
  if (opts.directory !== undefined) checkNetwork(id, d, opts.directory);
  const net = d.network;
  if (trusted) refuseOtherAuthorities(id, trusted, net.authorities && { keys: net.authorities, threshold: net.threshold ?? 0 });
  let trust: Provider["trust"] = "none";
  if (opts.pinnedKey !== undefined) {
    trust = "pinned";
  } else if (remembered !== undefined) {
    trust = "remembered";
  } else if (opts.trustStore) {
    await opts.trustStore.set(id, d.keyText);
    trust = "first_use";
    warn(`peapod: first use of ${id}: its key is ${d.keyText} (remembered in ${opts.trustStore.where}; pin it with pinnedKey)`);
  } else {
    warn(`peapod: ${id} is signed by ${d.keyText}; nothing is pinned or remembered (pass pinnedKey or a trustStore)`);
  }
  if ((trust === "first_use" || trust === "none") && u.protocol !== "https:") {
    warn(`peapod: warning: nothing is pinned and ${id} is not https: whoever serves it could hand you another provider`);
  }
  if (net.type === "peapod" && !net.authorities) {
    warn(
      trusted
        ? `peapod: ${id}'s network names no directory authorities: only your mixnet client's own authorities check its topology`
        : `peapod: ${id}'s network names no directory authorities: its topology is not signed, and whoever answers on ${net.directory} chooses your routes`,
    );
  }
  if (!d.selfCertifying && opts.pinnedKey === undefined) {
    warn(`peapod: warning: the descriptor is signed by ${d.keyText}, which is not its address's key; pin it once you know it is the provider's`);
  }
  return { ...d, url: id, trust };
}

/**
 * checkNetwork throws "network_mismatch" unless d names the peapod network
 * whose directory is directory (URLs compared as provider ids are).
 */
function checkNetwork(id: string, d: Descriptor, directory: string): void {
  const want = directoryIds(directory);
  if (want === undefined) {
    throw new TypeError(`peapod: directory ${JSON.stringify(directory)} is not an http(s) URL or a list of them`);
  }
  let got = d.network.type === "peapod" ? d.network.directory : undefined;
  if (got !== undefined && directoryIds(got) === want) return;
  got ??= `a ${d.network.type} network`;
  throw new DescriptorError(
    "network_mismatch",
    `THE PROVIDER'S NETWORK IS NOT YOURS: the descriptor of ${id} points at ${got}, and you use the directory ${want}. ` +
      `Nothing was sent. A descriptor substituted on the way looks like this; if the provider moved networks, ` +
      `check its key with its operator and use its directory.`,
  );
}

/**
 * directoryIds returns the provider ids of a directory's URLs (a network of
 * several authorities lists them separated by commas), sorted, each once,
 * joined by commas; undefined when one is not an http(s) URL.
 */
function directoryIds(s: string): string | undefined {
  const ids: string[] = [];
  for (const part of s.split(",")) {
    const id = httpId(part.trim());
    if (id === undefined) return undefined;
    if (!ids.includes(id)) ids.push(id);
  }
  return ids.sort().join(",");
}

/** httpId is providerId of an http(s) URL, or undefined for anything else. */
function httpId(s: string): string | undefined {
  try {
    const u = new URL(s);
    return (u.protocol === "http:" || u.protocol === "https:") && u.host !== "" ? providerId(u) : undefined;
  } catch {
    return undefined;
  }
}

async function fetchDocument(target: string, opts: DiscoverOptions): Promise<Uint8Array> {
  const f = opts.fetch ?? globalThis.fetch;
  let resp: Response;
  try {
    resp = await f(target, { signal: opts.signal, redirect: "error", cache: "no-store" });
  } catch (e) {
    if (opts.signal?.aborted) throw opts.signal.reason;
    throw new DescriptorError("fetch", `fetching ${target}: ${(e as Error).message}`, { cause: e });
  }
  if (resp.status !== 200) {
    throw new DescriptorError("fetch", `fetching ${target}: answered ${resp.status} ${resp.statusText}`);
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = resp.body!.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > MAX_DESCRIPTOR_SIZE) {
      await reader.cancel();
      throw new DescriptorError("malformed", `${target}: more than ${MAX_DESCRIPTOR_SIZE} bytes`);
    }
    chunks.push(value);
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** keyText returns the base58 text of a key given as text or bytes. */
export function keyText(key: string | Uint8Array): string {
  return toBase58(decodeKey(key));
}
