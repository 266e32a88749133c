// Node-only parts of the SDK: a trust store in a file.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";

import type { TrustStore } from "./trust.js";

/**
 * FileTrustStore keeps remembered provider keys in a JSON file, the format
 * the Go client keeps in its data folder (known_providers.json):
 *
 *     {"v":1,"providers":{"http://127.0.0.1:8080":"<base58 key>"}}
 *
 * so a Node app can share the file of the `client run` it talks to. The
 * file is written atomically with mode 0600.
 */
export class FileTrustStore implements TrustStore {
  constructor(readonly where: string) {}

  get(provider: string): string | undefined {
    return this.read()[provider];
  }

  set(provider: string, key: string): void {
    const providers = { ...this.read(), [provider]: key };
    mkdirSync(dirname(this.where), { recursive: true, mode: 0o700 });
    const tmp = `${this.where}.tmp-${process.pid}`;
    writeFileSync(tmp, JSON.stringify({ v: 1, providers }, null, 2) + "\n", { mode: 0o600 });
    renameSync(tmp, this.where);
  }

  private read(): Record<string, string> {
    let text: string;
    try {
      text = readFileSync(this.where, "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return {};
      throw e;
    }
    const v = JSON.parse(text);
    if (v?.v !== 1 || typeof v.providers !== "object" || v.providers === null) {
      throw new Error(`peapod: ${this.where} is not a file of known provider keys`);
    }
    return v.providers;
  }
}
