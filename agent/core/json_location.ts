/**
 * Where a JSON text first goes wrong, as line and column. V8's JSON.parse messages give a position for
 * some errors and none for others ("Unexpected token ']', ... is not valid JSON"), so a small scanner
 * finds the offset itself and users always get file:line:column.
 */

export interface JsonErrorLocation {
  /** 1-based. */
  line: number;
  /** 1-based, in characters. */
  column: number;
  offset: number;
  message: string;
}

/** Parses JSON; on failure returns where and why instead of throwing. */
export function parseJsonLocated(
  text: string,
): { ok: true; value: unknown } | { ok: false; error: JsonErrorLocation } {
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (e) {
    const found = locateJsonError(text);
    if (found) return { ok: false, error: found };
    // The scanner accepted what V8 rejected: report V8's words at the end of the text.
    const at = locationOf(text, text.length);
    return { ok: false, error: { ...at, offset: text.length, message: (e as Error).message } };
  }
}

/** The first syntax error in `text`, or null when it is valid JSON. */
export function locateJsonError(text: string): JsonErrorLocation | null {
  let i = 0;
  class Stop extends Error {
    constructor(readonly offset: number, message: string) {
      super(message);
    }
  }
  const fail = (msg: string, at = i): never => {
    throw new Stop(at, msg);
  };
  const ws = () => {
    while (i < text.length && " \t\n\r".includes(text[i])) i++;
  };
  const describeHere = () => (i >= text.length ? "end of input" : `${JSON.stringify(text[i])}`);
  const literal = (word: string) => {
    if (text.startsWith(word, i)) i += word.length;
    else fail(`unexpected ${describeHere()}`);
  };
  const string = () => {
    i++; // opening quote
    while (i < text.length) {
      const c = text[i];
      if (c === '"') {
        i++;
        return;
      }
      if (c === "\\") {
        const n = text[i + 1];
        if (n === "u") {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) fail("bad \\u escape in string");
          i += 6;
        } else if (n !== undefined && `"\\/bfnrt`.includes(n)) i += 2;
        else fail("bad escape in string");
      } else if (c < " ") {
        fail("control character in string (newlines must be written \\n)");
      } else i++;
    }
    fail("unterminated string");
  };
  const number = () => {
    const m = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(text.slice(i));
    if (!m || m[0] === "-" || m[0] === "") fail(`unexpected ${describeHere()}`);
    i += m![0].length;
  };
  const value = (): void => {
    ws();
    const c = text[i];
    if (c === "{") return object();
    if (c === "[") return array();
    if (c === '"') return string();
    if (c === "t") return literal("true");
    if (c === "f") return literal("false");
    if (c === "n") return literal("null");
    if (c === "-" || (c >= "0" && c <= "9")) return number();
    fail(
      i >= text.length
        ? "unexpected end of input, expected a value"
        : `unexpected ${describeHere()}, expected a value`,
    );
  };
  const object = () => {
    i++;
    ws();
    if (text[i] === "}") {
      i++;
      return;
    }
    for (;;) {
      ws();
      if (text[i] !== '"') {
        fail(
          text[i] === "}"
            ? "trailing comma before }"
            : `expected a double-quoted property name, got ${describeHere()}`,
        );
      }
      string();
      ws();
      if (text[i] !== ":") fail(`expected ':' after property name, got ${describeHere()}`);
      i++;
      value();
      ws();
      if (text[i] === ",") {
        i++;
        continue;
      }
      if (text[i] === "}") {
        i++;
        return;
      }
      fail(`expected ',' or '}' after property value, got ${describeHere()}`);
    }
  };
  const array = () => {
    i++;
    ws();
    if (text[i] === "]") {
      i++;
      return;
    }
    for (;;) {
      ws();
      if (text[i] === "]") fail("trailing comma before ]");
      value();
      ws();
      if (text[i] === ",") {
        i++;
        continue;
      }
      if (text[i] === "]") {
        i++;
        return;
      }
      fail(`expected ',' or ']' after array item, got ${describeHere()}`);
    }
  };
  try {
    if (text.charCodeAt(0) === 0xfeff) i = 1;
    value();
    ws();
    if (i < text.length) fail(`unexpected ${describeHere()} after the JSON value`);
    return null;
  } catch (e) {
    if (!(e instanceof Stop)) throw e;
    return { ...locationOf(text, e.offset), offset: e.offset, message: e.message };
  }
}

function locationOf(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let k = 0; k < offset && k < text.length; k++) {
    if (text[k] === "\n") {
      line++;
      lineStart = k + 1;
    }
  }
  return { line, column: offset - lineStart + 1 };
}

/**
 * Line and column of every value in a valid JSON text, by JSON pointer ("" is the root). For object members
 * the position is the member's key, so "unknown field" and "bad value" both point at the line a user edits.
 * Returns an empty map for invalid JSON.
 */
export function jsonPointerLocations(text: string): Map<string, { line: number; column: number }> {
  const out = new Map<string, { line: number; column: number }>();
  if (locateJsonError(text) !== null) return out;
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  const ws = () => {
    while (i < text.length && " \t\n\r".includes(text[i])) i++;
  };
  const readString = (): string => {
    const start = i;
    i++;
    while (text[i] !== '"') i += text[i] === "\\" ? 2 : 1;
    i++;
    return JSON.parse(text.slice(start, i));
  };
  const escape = (key: string) => key.replace(/~/g, "~0").replace(/\//g, "~1");
  const value = (pointer: string, at: number | null): void => {
    ws();
    if (!out.has(pointer)) out.set(pointer, locationOf(text, at ?? i));
    const c = text[i];
    if (c === "{") {
      i++;
      ws();
      if (text[i] === "}") return void i++;
      for (;;) {
        ws();
        const keyAt = i;
        const key = readString();
        ws();
        i++; // ':'
        value(`${pointer}/${escape(key)}`, keyAt);
        ws();
        if (text[i++] === "}") return;
      }
    }
    if (c === "[") {
      i++;
      ws();
      if (text[i] === "]") return void i++;
      for (let n = 0;; n++) {
        value(`${pointer}/${n}`, null);
        ws();
        if (text[i++] === "]") return;
      }
    }
    if (c === '"') return void readString();
    const m = /^(?:true|false|null|-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)/.exec(
      text.slice(i, i + 400),
    );
    i += m ? m[0].length : 1;
  };
  value("", null);
  return out;
}

/** The location of `pointer`, or of its nearest ancestor that exists (a missing field points at its parent). */
export function locatePointer(
  locations: Map<string, { line: number; column: number }>,
  pointer: string,
): { line: number; column: number } | null {
  for (let p = pointer;; p = p.slice(0, p.lastIndexOf("/"))) {
    const at = locations.get(p);
    if (at) return at;
    if (p === "") return null;
  }
}
