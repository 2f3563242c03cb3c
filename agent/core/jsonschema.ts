/**
 * A small JSON Schema (draft 2020-12) validator for the subset mlagent's schemas use: type, properties,
 * required, additionalProperties (false or a schema), propertyNames, minProperties, items, enum, const, pattern,
 * minimum, maximum, exclusiveMinimum, minLength, maxLength, minItems, maxItems, uniqueItems, anyOf/oneOf, and
 * $ref to "#" or "#/$defs/...". Keywords outside the subset are
 * ignored (like "description", "title", "$schema"), so the same files serve editors and mlagent.
 * Errors carry a JSON-pointer-like path ("/stages/2/packages/0") so a user can find the field.
 */

export interface SchemaIssue {
  /** "/a/0/b"; "" is the document root. */
  path: string;
  /** The rule that failed, in words ("required property \"name\" is missing"). */
  message: string;
  /** The keyword that failed (type, required, additionalProperties, ...). */
  keyword: string;
}

// deno-lint-ignore no-explicit-any
export type JsonSchema = Record<string, any> | boolean;

/** Validates `value` against `schema`; returns every issue found (empty when valid). */
export function validateJson(schema: JsonSchema, value: unknown): SchemaIssue[] {
  const issues: SchemaIssue[] = [];
  const root = typeof schema === "object" ? schema : {};
  check(root, schema, value, "", issues);
  return issues;
}

/** Type name as JSON Schema sees it ("integer" is also a "number"). */
export function jsonType(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (typeof value === "number") return Number.isInteger(value) ? "integer" : "number";
  return typeof value; // string, boolean, object
}

function matchesType(value: unknown, type: string): boolean {
  const t = jsonType(value);
  return t === type || (type === "number" && t === "integer");
}

function resolveRef(root: JsonSchema, ref: string): JsonSchema {
  if (ref === "#") return root;
  if (!ref.startsWith("#/")) throw new Error(`jsonschema: only local $ref is supported, got "${ref}"`);
  // deno-lint-ignore no-explicit-any
  let node: any = root;
  for (const raw of ref.slice(2).split("/")) {
    const key = raw.replace(/~1/g, "/").replace(/~0/g, "~");
    node = node?.[key];
    if (node === undefined) throw new Error(`jsonschema: $ref "${ref}" does not resolve`);
  }
  return node;
}

function pointer(path: string, key: string | number): string {
  return `${path}/${String(key).replace(/~/g, "~0").replace(/\//g, "~1")}`;
}

function describe(value: unknown): string {
  const s = JSON.stringify(value);
  return s === undefined ? String(value) : s.length > 60 ? s.slice(0, 57) + "..." : s;
}

function check(root: JsonSchema, schema: JsonSchema, value: unknown, path: string, out: SchemaIssue[]): void {
  if (schema === true) return;
  if (schema === false) {
    out.push({ path, keyword: "false", message: "no value is allowed here" });
    return;
  }
  const push = (keyword: string, message: string) => out.push({ path, keyword, message });

  if (typeof schema.$ref === "string") {
    check(root, resolveRef(root, schema.$ref), value, path, out);
  }

  if (schema.type !== undefined) {
    const types: string[] = Array.isArray(schema.type) ? schema.type : [schema.type];
    if (!types.some((t) => matchesType(value, t))) {
      push("type", `must be ${types.join(" or ")}, got ${jsonType(value)}`);
      return; // further keywords would only repeat the type error
    }
  }

  if ("const" in schema && !deepEqual(schema.const, value)) {
    push("const", `must be ${describe(schema.const)}, got ${describe(value)}`);
  }
  if (Array.isArray(schema.enum) && !schema.enum.some((e: unknown) => deepEqual(e, value))) {
    push("enum", `must be one of ${schema.enum.map(describe).join(", ")}, got ${describe(value)}`);
  }

  if (Array.isArray(schema.anyOf)) {
    const results = schema.anyOf.map((s: JsonSchema) => collect(root, s, value, path));
    if (!results.some((r: SchemaIssue[]) => r.length === 0)) {
      // The branch that got furthest explains best: one whose type matched beats one that failed on type.
      const score = (r: SchemaIssue[]) =>
        r.length + (r.some((i) => i.keyword === "type" && i.path === path) ? 1000 : 0);
      const best = results.reduce((a: SchemaIssue[], b: SchemaIssue[]) => (score(b) < score(a) ? b : a));
      out.push(...best);
    }
  }
  if (Array.isArray(schema.oneOf)) {
    const passing = schema.oneOf.filter((s: JsonSchema) => collect(root, s, value, path).length === 0);
    if (passing.length !== 1) {
      push(
        "oneOf",
        passing.length === 0 ? "matches none of the allowed forms" : "matches more than one form",
      );
    }
  }

  if (typeof value === "string") {
    if (typeof schema.minLength === "number" && [...value].length < schema.minLength) {
      push("minLength", `must be at least ${schema.minLength} characters`);
    }
    if (typeof schema.maxLength === "number" && [...value].length > schema.maxLength) {
      push("maxLength", `must be at most ${schema.maxLength} characters`);
    }
    if (typeof schema.pattern === "string" && !new RegExp(schema.pattern, "u").test(value)) {
      push("pattern", `must match ${schema.pattern}, got ${describe(value)}`);
    }
  }

  if (typeof value === "number") {
    if (typeof schema.minimum === "number" && value < schema.minimum) {
      push("minimum", `must be >= ${schema.minimum}, got ${value}`);
    }
    if (typeof schema.maximum === "number" && value > schema.maximum) {
      push("maximum", `must be <= ${schema.maximum}, got ${value}`);
    }
    if (typeof schema.exclusiveMinimum === "number" && value <= schema.exclusiveMinimum) {
      push("exclusiveMinimum", `must be > ${schema.exclusiveMinimum}, got ${value}`);
    }
  }

  if (Array.isArray(value)) {
    if (typeof schema.minItems === "number" && value.length < schema.minItems) {
      push("minItems", `must have at least ${schema.minItems} item${schema.minItems === 1 ? "" : "s"}`);
    }
    if (typeof schema.maxItems === "number" && value.length > schema.maxItems) {
      push("maxItems", `must have at most ${schema.maxItems} items`);
    }
    if (schema.uniqueItems === true) {
      for (let i = 0; i < value.length; i++) {
        for (let j = 0; j < i; j++) {
          if (deepEqual(value[i], value[j])) {
            out.push({ path: pointer(path, i), keyword: "uniqueItems", message: `duplicates item ${j}` });
          }
        }
      }
    }
    if (schema.items !== undefined) {
      value.forEach((v, i) => check(root, schema.items, v, pointer(path, i), out));
    }
  }

  if (jsonType(value) === "object") {
    const obj = value as Record<string, unknown>;
    const props: Record<string, JsonSchema> = schema.properties ?? {};
    if (Array.isArray(schema.required)) {
      for (const key of schema.required) {
        if (!(key in obj)) {
          out.push({
            path: pointer(path, key),
            keyword: "required",
            message: `required property "${key}" is missing`,
          });
        }
      }
    }
    for (const [key, v] of Object.entries(obj)) {
      if (key in props) {
        check(root, props[key], v, pointer(path, key), out);
      } else if (schema.additionalProperties === false) {
        const allowed = Object.keys(props);
        out.push({
          path: pointer(path, key),
          keyword: "additionalProperties",
          message: `unknown field "${key}"${closestHint(key, allowed)}; allowed: ${allowed.join(", ")}`,
        });
      } else if (typeof schema.additionalProperties === "object") {
        check(root, schema.additionalProperties, v, pointer(path, key), out);
      }
    }
    const count = Object.keys(obj).length;
    if (typeof schema.minProperties === "number" && count < schema.minProperties) {
      push(
        "minProperties",
        `must have at least ${schema.minProperties} field${schema.minProperties === 1 ? "" : "s"}`,
      );
    }
    if (typeof schema.propertyNames === "object") {
      for (const key of Object.keys(obj)) {
        for (const issue of collect(root, schema.propertyNames, key, pointer(path, key))) {
          out.push({ ...issue, message: `field name ${issue.message}` });
        }
      }
    }
  }
}

function collect(root: JsonSchema, schema: JsonSchema, value: unknown, path: string): SchemaIssue[] {
  const out: SchemaIssue[] = [];
  check(root, schema, value, path, out);
  return out;
}

function closestHint(word: string, candidates: string[]): string {
  const best = closestMatch(word, candidates);
  return best ? ` (did you mean "${best}"?)` : "";
}

/** The candidate nearest to `word` by edit distance, when it is near enough to be a likely typo. */
export function closestMatch(word: string, candidates: string[]): string | null {
  let best: string | null = null;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  const limit = Math.max(2, Math.floor(word.length / 3));
  return best !== null && bestDistance <= limit ? best : null;
}

/** Levenshtein distance. */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length];
}

function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  return ka.every((k) => deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}
