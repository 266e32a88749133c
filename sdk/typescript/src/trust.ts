// Trust on first use: remembering a provider's key after the first
// discovery, so that a substituted descriptor is refused later.

/**
 * TrustStore remembers the key (base58) each provider URL was seen with.
 * Keys are provider URLs as providerId returns them. The methods may be
 * synchronous or return promises.
 */
export interface TrustStore {
  get(provider: string): string | undefined | Promise<string | undefined>;
  set(provider: string, key: string): void | Promise<void>;
  /** Where the keys are kept, for messages (a file name, "localStorage"). */
  readonly where: string;
}

/** MemoryTrustStore remembers keys for the life of the object. */
export class MemoryTrustStore implements TrustStore {
  readonly where = "memory";
  private keys = new Map<string, string>();
  get(provider: string): string | undefined {
    return this.keys.get(provider);
  }
  set(provider: string, key: string): void {
    this.keys.set(provider, key);
  }
}

/** LocalStorageTrustStore keeps keys in a browser's localStorage. */
export class LocalStorageTrustStore implements TrustStore {
  readonly where = "localStorage";
  constructor(
    private storage: Storage = globalThis.localStorage,
    private prefix = "peapod.provider-key:",
  ) {}
  get(provider: string): string | undefined {
    return this.storage.getItem(this.prefix + provider) ?? undefined;
  }
  set(provider: string, key: string): void {
    this.storage.setItem(this.prefix + provider, key);
  }
}

/**
 * providerId is the name a provider URL is remembered under, the same in
 * every peapod tool (the Go client, both SDKs): scheme and host in lower
 * case, the port unless it is the scheme's default, the path without a
 * trailing slash; no query, no fragment.
 */
export function providerId(url: URL): string {
  const path = url.pathname.replace(/\/+$/, "");
  return `${url.protocol}//${url.host}${path}`;
}
