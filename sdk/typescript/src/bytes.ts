// Byte helpers that behave the same in Node and in browsers.

const encoder = new TextEncoder();
const strictDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

export function utf8(s: string): Uint8Array {
  return encoder.encode(s);
}

/** decodeUTF8 decodes strictly: invalid UTF-8 is an error, not U+FFFD. */
export function decodeUTF8(b: Uint8Array): string {
  return strictDecoder.decode(b);
}

export function toBase64(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i += 0x8000) {
    s += String.fromCharCode(...b.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

const base64Pattern = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * fromBase64 decodes canonical standard base64 with padding (RFC 4648 §4):
 * no line breaks, no missing padding, no stray bits. It returns undefined
 * for anything else.
 */
export function fromBase64(s: string): Uint8Array | undefined {
  if (!base64Pattern.test(s)) return undefined;
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return toBase64(out) === s ? out : undefined;
}

export function toBase64URL(b: Uint8Array): string {
  return toBase64(b).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export function toHex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

const alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/** toBase58 encodes with the Bitcoin alphabet, as Nym writes keys. */
export function toBase58(b: Uint8Array): string {
  const digits: number[] = [];
  for (const byte of b) {
    let carry = byte;
    for (let j = 0; j < digits.length; j++) {
      carry += digits[j] << 8;
      digits[j] = carry % 58;
      carry = (carry / 58) | 0;
    }
    while (carry > 0) {
      digits.push(carry % 58);
      carry = (carry / 58) | 0;
    }
  }
  let out = "";
  for (let k = 0; k < b.length && b[k] === 0; k++) out += "1";
  for (let k = digits.length - 1; k >= 0; k--) out += alphabet[digits[k]];
  return out;
}

/**
 * fromBase58 decodes a key of exactly size bytes, in canonical form only
 * (one text per value, as package address in Go requires). It returns a
 * reason when the text is not such a key.
 */
export function fromBase58(s: string, size: number): Uint8Array | string {
  if (s === "") return "empty";
  if (s.length > Math.floor((size * 138) / 100) + 1) return `too long for a ${size}-byte key`;
  const bytes: number[] = [];
  for (const ch of s) {
    const v = alphabet.indexOf(ch);
    if (v < 0) return `invalid base58 character ${JSON.stringify(ch)}`;
    let carry = v;
    for (let j = 0; j < bytes.length; j++) {
      carry += bytes[j] * 58;
      bytes[j] = carry & 0xff;
      carry >>= 8;
    }
    while (carry > 0) {
      bytes.push(carry & 0xff);
      carry >>= 8;
    }
  }
  for (let k = 0; k < s.length && s[k] === "1"; k++) bytes.push(0);
  const out = Uint8Array.from(bytes.reverse());
  if (out.length !== size) return `decodes to ${out.length} bytes, want ${size}`;
  if (toBase58(out) !== s) return "not in canonical base58 form";
  return out;
}
