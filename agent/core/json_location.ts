/**
 * Where a JSON text goes wrong, and where each of its values sits, as line and column. V8's JSON.parse
 * gives a position for some errors and none for others ("Unexpected token ']', ... is not valid JSON"), so
 * jsonc-parser, held to strict JSON (no comments, no trailing commas, no empty text), finds the offsets and
 * this adapter words its error codes for someone fixing a profile by hand.
 */
import {
  type Node,
  type ParseError,
  type ParseOptions,
  parseTree,
  printParseErrorCode,
  visit,
} from "jsonc-parser";

export interface JsonErrorLocation {
  /** 1-based. */
  line: number;
  /** 1-based, in characters. */
  column: number;
  offset: number;
  message: string;
}

const STRICT_JSON: ParseOptions = {
  disallowComments: true,
  allowTrailingComma: false,
  allowEmptyContent: false,
};

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
    const at = lineColumn(text)(text.length);
    return { ok: false, error: { ...at, offset: text.length, message: (e as Error).message } };
  }
}

/** What the parser expects next: the syntax error is worded from it, whatever token broke it. */
type Expecting = "value" | "name" | "colon" | "comma-or-brace" | "comma-or-bracket" | "end";

interface FirstError {
  code: string;
  offset: number;
  length: number;
  expecting: Expecting;
}

/** The first syntax error in `text`, or null when it is valid JSON. */
export function locateJsonError(text: string): JsonErrorLocation | null {
  let first: FirstError | null = null;
  const open: ("object" | "array")[] = [];
  let expecting: Expecting = "value";
  const valueDone = () => {
    const inside = open.at(-1);
    expecting = inside === "object" ? "comma-or-brace" : inside === "array" ? "comma-or-bracket" : "end";
  };
  visit(text, {
    onObjectBegin: () => {
      open.push("object");
      expecting = "name";
    },
    onArrayBegin: () => {
      open.push("array");
      expecting = "value";
    },
    onObjectEnd: () => {
      open.pop();
      valueDone();
    },
    onArrayEnd: () => {
      open.pop();
      valueDone();
    },
    onObjectProperty: () => void (expecting = "colon"),
    onLiteralValue: valueDone,
    onSeparator: (sep) => void (expecting = sep === ":" || open.at(-1) === "array" ? "value" : "name"),
    onError: (code, offset, length) => {
      first ??= { code: printParseErrorCode(code), offset, length, expecting };
    },
  }, STRICT_JSON);
  if (first === null) return null;
  const { offset, message } = explain(text, first);
  return { ...lineColumn(text)(offset), offset, message };
}

/** The parser's error in words, at the character a user has to change. */
function explain(text: string, e: FirstError): { offset: number; message: string } {
  const at = (message: string, offset = e.offset) => ({ offset, message });
  const got = describeToken(text, e.offset, e.length);
  // A bad number or string where a value or name may stand is wrong inside; elsewhere it is misplaced.
  const tokenMayStand = e.expecting === "value" || e.expecting === "name";
  switch (e.code) {
    case "InvalidNumberFormat":
    case "UnexpectedEndOfNumber":
      if (tokenMayStand) return at(`malformed number ${got}`);
      break;
    case "InvalidCommentToken":
    case "UnexpectedEndOfComment":
      return at("comments are not allowed in JSON");
    case "UnexpectedEndOfString":
    case "InvalidUnicode":
    case "InvalidEscapeCharacter":
    case "InvalidCharacter":
      if (tokenMayStand) return stringProblem(text, e.offset);
      break;
  }
  if (e.offset === 0 && text.startsWith("\ufeff")) {
    return at("byte-order mark (U+FEFF) before the JSON value; save the file as UTF-8 without BOM");
  }
  const before = text.slice(0, e.offset).trimEnd().at(-1);
  // The parser closes the container before it reports the missing bracket, so the code says what was due.
  if (e.code === "CloseBraceExpected") {
    return before === "{"
      ? at(`expected a double-quoted property name, got ${got}`)
      : at(`expected ',' or '}' after property value, got ${got}`);
  }
  if (e.code === "CloseBracketExpected") {
    if (before !== "[") return at(`expected ',' or ']' after array item, got ${got}`);
    if (e.offset >= text.length) return at("unexpected end of input, expected a value");
    return at(`unexpected ${got}, expected a value`);
  }
  const afterComma = before === ",";
  switch (e.expecting) {
    case "value":
      if (afterComma && text[e.offset] === "]") return at("trailing comma before ]");
      if (e.offset >= text.length) return at("unexpected end of input, expected a value");
      return at(`unexpected ${got}, expected a value`);
    case "name":
      if (afterComma && text[e.offset] === "}") return at("trailing comma before }");
      return at(`expected a double-quoted property name, got ${got}`);
    case "colon":
      return at(`expected ':' after property name, got ${got}`);
    case "comma-or-brace":
      return at(`expected ',' or '}' after property value, got ${got}`);
    case "comma-or-bracket":
      return at(`expected ',' or ']' after array item, got ${got}`);
    case "end":
      return at(`unexpected ${got} after the JSON value`);
  }
}

/** The parser flags a whole string token; point at the character inside it that is wrong. */
function stringProblem(text: string, start: number): { offset: number; message: string } {
  for (let k = start + 1; k < text.length;) {
    const c = text[k];
    if (c === '"') break;
    if (c === "\\") {
      const n = text[k + 1];
      if (n === "u") {
        if (!/^[0-9a-fA-F]{4}$/.test(text.slice(k + 2, k + 6))) {
          return { offset: k, message: "bad \\u escape in string" };
        }
        k += 6;
      } else if (n !== undefined && `"\\/bfnrt`.includes(n)) k += 2;
      else return { offset: k, message: "bad escape in string" };
    } else if (c < " ") {
      return { offset: k, message: "control character in string (newlines must be written \\n)" };
    } else k++;
  }
  return { offset: text.length, message: "unterminated string" };
}

/** What stands at `offset`, as a user would call it: end of input, a string, a word, or one character. */
function describeToken(text: string, offset: number, length: number): string {
  if (offset >= text.length) return "end of input";
  if (text[offset] === '"') return "a string";
  const word = /^[^\s{}[\]:,"]+/.exec(text.slice(offset, offset + Math.max(length, 1)));
  const shown = word ? word[0] : text[offset];
  return JSON.stringify(shown.length > 20 ? `${shown.slice(0, 17)}...` : shown);
}

/** A function from offset to 1-based line and column (columns in UTF-16 units, as editors count). */
function lineColumn(text: string): (offset: number) => { line: number; column: number } {
  const starts = [0];
  for (let k = text.indexOf("\n"); k !== -1; k = text.indexOf("\n", k + 1)) starts.push(k + 1);
  return (offset) => {
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (starts[mid] <= offset) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo + 1, column: offset - starts[lo] + 1 };
  };
}

/**
 * Line and column of every value in a valid JSON text, by JSON pointer ("" is the root). For object members
 * the position is the member's key, so "unknown field" and "bad value" both point at the line a user edits.
 * Returns an empty map for invalid JSON.
 */
export function jsonPointerLocations(text: string): Map<string, { line: number; column: number }> {
  const out = new Map<string, { line: number; column: number }>();
  const errors: ParseError[] = [];
  const root = parseTree(text, errors, STRICT_JSON);
  if (errors.length > 0 || root === undefined) return out;
  const locate = lineColumn(text);
  const escape = (key: string) => key.replace(/~/g, "~0").replace(/\//g, "~1");
  const walk = (node: Node, pointer: string, offset: number): void => {
    // A repeated key keeps its first position, as a reader scanning down the file finds it.
    if (!out.has(pointer)) out.set(pointer, locate(offset));
    if (node.type === "object") {
      for (const member of node.children ?? []) {
        const [key, value] = member.children ?? [];
        if (key && value) walk(value, `${pointer}/${escape(String(key.value))}`, member.offset);
      }
    } else if (node.type === "array") {
      (node.children ?? []).forEach((item, i) => walk(item, `${pointer}/${i}`, item.offset));
    }
  };
  walk(root, "", root.offset);
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
