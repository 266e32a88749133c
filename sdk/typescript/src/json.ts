// A strict JSON reader. JSON.parse cannot say that a member appeared twice
// (it keeps the last), nor tell the number 1 from 1.0, and both matter here:
// a signed descriptor must read the same in every verifier, and the request
// protocol's "v" must be exactly the JSON text 1. This reader keeps numbers
// as their text and objects as Maps (no prototype to pollute).

/** A JSON number, kept as its text. */
export class JsonNumber {
  constructor(readonly raw: string) {}
  get value(): number {
    return Number(this.raw);
  }
}

export type JsonObject = Map<string, JsonValue>;
export type JsonValue = null | boolean | string | JsonNumber | JsonValue[] | JsonObject;

/** Objects in which a member appeared twice, when duplicates are noted. */
export const withDuplicates = new WeakSet<JsonObject>();

const maxDepth = 512;

/** Thrown for text that is not one well-formed JSON value. */
export class JsonSyntaxError extends Error {}

/**
 * parseJSON reads exactly one JSON value, with whitespace around it and
 * nothing else. With duplicates "refuse", a member that appears twice in
 * any object is an error; with "note", the object is added to
 * withDuplicates and its last value kept.
 */
export function parseJSON(text: string, duplicates: "refuse" | "note"): JsonValue {
  let i = 0;
  const fail = (what: string): never => {
    throw new JsonSyntaxError(`${what} at offset ${i}`);
  };
  const ws = () => {
    for (;;) {
      const c = text.charCodeAt(i);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) i++;
      else return;
    }
  };
  const str = (): string => {
    i++; // the opening quote
    let out = "";
    let start = i;
    for (;;) {
      if (i >= text.length) fail("unterminated string");
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        out += text.slice(start, i);
        i++;
        return out;
      }
      if (c < 0x20) fail("control character in a string");
      if (c !== 0x5c) {
        i++;
        continue;
      }
      out += text.slice(start, i);
      const e = text[i + 1];
      i += 2;
      switch (e) {
        case '"': out += '"'; break;
        case "\\": out += "\\"; break;
        case "/": out += "/"; break;
        case "b": out += "\b"; break;
        case "f": out += "\f"; break;
        case "n": out += "\n"; break;
        case "r": out += "\r"; break;
        case "t": out += "\t"; break;
        case "u": {
          const hex = text.slice(i, i + 4);
          if (!/^[0-9a-fA-F]{4}$/.test(hex)) fail("invalid \\u escape");
          out += String.fromCharCode(parseInt(hex, 16));
          i += 4;
          break;
        }
        default:
          fail("invalid escape");
      }
      start = i;
    }
  };
  const numberPattern = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
  const value = (depth: number): JsonValue => {
    if (depth > maxDepth) fail("nested too deeply");
    ws();
    const c = text[i];
    if (c === "{") {
      i++;
      const obj: JsonObject = new Map();
      ws();
      if (text[i] === "}") {
        i++;
        return obj;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail("expected a member name");
        const key = str();
        ws();
        if (text[i] !== ":") fail("expected ':'");
        i++;
        const v = value(depth + 1);
        if (obj.has(key)) {
          if (duplicates === "refuse") throw new JsonSyntaxError(`member "${key.slice(0, 40)}" appears twice`);
          withDuplicates.add(obj);
        }
        obj.set(key, v);
        ws();
        if (text[i] === ",") {
          i++;
          continue;
        }
        if (text[i] === "}") {
          i++;
          return obj;
        }
        fail("expected ',' or '}'");
      }
    }
    if (c === "[") {
      i++;
      const arr: JsonValue[] = [];
      ws();
      if (text[i] === "]") {
        i++;
        return arr;
      }
      for (;;) {
        arr.push(value(depth + 1));
        ws();
        if (text[i] === ",") {
          i++;
          continue;
        }
        if (text[i] === "]") {
          i++;
          return arr;
        }
        fail("expected ',' or ']'");
      }
    }
    if (c === '"') return normalizeSurrogates(str());
    for (const [word, v] of [["true", true], ["false", false], ["null", null]] as const) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return v;
      }
    }
    numberPattern.lastIndex = i;
    const m = numberPattern.exec(text);
    if (!m) return fail("expected a value");
    i += m[0].length;
    return new JsonNumber(m[0]);
  };
  const v = value(0);
  ws();
  if (i !== text.length) fail("data after the JSON value");
  return v;
}

// normalizeSurrogates replaces lone surrogates (from \u escapes) with
// U+FFFD, as Go's decoder does, so that both read the same string.
function normalizeSurrogates(s: string): string {
  return s.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, "\uFFFD");
}

/** The member name of an object, or undefined when it is absent. */
export function member(obj: JsonObject, name: string): JsonValue | undefined {
  return obj.get(name);
}

export function isObject(v: JsonValue | undefined): v is JsonObject {
  return v instanceof Map;
}
