/**
 * JSON Schema (draft 2020-12) validation by @cfworker/json-schema, with issues worded for someone editing a
 * profile: a JSON pointer to the field ("/stages/2/packages/0") and the rule in plain words, and for an
 * unknown field the nearest allowed name. The library decides validity; this adapter only rebuilds its
 * output (a pre-order list where an applicator's unit comes before its subschemas' units) into a tree and
 * words each failed keyword from the schema and the value, because the library's sentences ("Instance does
 * not match any subschemas.") are written for schema authors. Annotations ("description", "title") are
 * ignored, so the same schema files serve editors and mlagent.
 */
import {
  deepCompareStrict,
  dereference,
  escapePointer,
  type OutputUnit,
  type Schema,
  validate,
} from "@cfworker/json-schema";
import { closestMatch } from "./did_you_mean.ts";

export { closestMatch, editDistance } from "./did_you_mean.ts";

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

type Lookup = Record<string, Schema | boolean>;

const NOTHING_ALLOWED = "no value is allowed here";

/** Keywords whose unit only says "a subschema failed"; the units after it say what. */
const APPLICATORS = new Set([
  "$ref",
  "$recursiveRef",
  "properties",
  "patternProperties",
  "additionalProperties",
  "unevaluatedProperties",
  "propertyNames",
  "dependentSchemas",
  "dependencies",
  "prefixItems",
  "items",
  "additionalItems",
  "unevaluatedItems",
  "contains",
  "anyOf",
  "allOf",
  "oneOf",
  "if",
]);

/** Dereferencing walks the whole schema; the profile schema is validated many times per run. */
const lookups = new WeakMap<object, Lookup>();

/** Validates `value` against `schema`; returns every issue found (empty when valid), in document order. */
export function validateJson(schema: JsonSchema, value: unknown): SchemaIssue[] {
  if (schema === true) return [];
  if (schema === false) return [{ path: "", keyword: "false", message: NOTHING_ALLOWED }];
  let lookup = lookups.get(schema);
  if (!lookup) {
    lookup = dereference(schema);
    lookups.set(schema, lookup);
  }
  let units: OutputUnit[];
  try {
    const result = validate(value, schema, "2020-12", lookup, false);
    if (result.valid) return [];
    units = result.errors;
  } catch (e) {
    // The library writes pointers with encodeURI, which throws on a lone surrogate (JSON allows "\ud800").
    if (e instanceof URIError) {
      return [{ path: "", keyword: "propertyNames", message: "a field name is not valid Unicode" }];
    }
    throw refProblem(e);
  }
  const wording = new Wording(schema, lookup, value);
  const tree = buildTree(withoutTypeEchoes(placeFalseSchemas(units)));
  return inDocumentOrder(render(tree, wording, false), value);
}

/** Type name as JSON Schema sees it ("integer" is also a "number"). */
export function jsonType(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (typeof value === "number") return Number.isInteger(value) ? "integer" : "number";
  return typeof value; // string, boolean, object
}

/** A bad $ref is a bug in the schema, not in the document: say which one in our words. */
function refProblem(e: unknown): unknown {
  const ref = e instanceof Error ? /^Unresolved \$ref "([^"]*)"/.exec(e.message)?.[1] : undefined;
  if (ref === undefined) return e;
  const localOnly = ref.startsWith("#") ? "" : ' (only local $ref, "#/$defs/...", is supported)';
  return new Error(`jsonschema: $ref "${ref}" does not resolve${localOnly}`);
}

/**
 * The library files a `false` subschema's unit with the instance location where the schema location
 * belongs; file it under the applicator unit just before it (as a keyword "false" of that subschema), so it
 * nests like any other subschema's units.
 */
function placeFalseSchemas(units: OutputUnit[]): OutputUnit[] {
  return units.map((u, i) => {
    if (u.keyword !== "false" || i === 0) return u;
    const before = units[i - 1];
    const last = u.instanceLocation.slice(u.instanceLocation.lastIndexOf("/") + 1);
    switch (before.keyword) {
      case "properties":
      case "prefixItems":
        return { ...u, keywordLocation: `${before.keywordLocation}/${last}/false` };
      case "$ref":
      case "additionalProperties":
      case "unevaluatedProperties":
      case "propertyNames":
      case "items":
      case "additionalItems":
      case "unevaluatedItems":
        return { ...u, keywordLocation: `${before.keywordLocation}/false` };
      default:
        return u;
    }
  });
}

/** Once a value has the wrong type, the other rules at that level only repeat it: keep the type error alone. */
function withoutTypeEchoes(units: OutputUnit[]): OutputUnit[] {
  const typeErrors = units.filter((u) => u.keyword === "type");
  const echoes = (u: OutputUnit, t: OutputUnit) =>
    u !== t &&
    u.keywordLocation.startsWith(t.keywordLocation.slice(0, -"type".length)) &&
    (u.instanceLocation === t.instanceLocation || u.instanceLocation.startsWith(`${t.instanceLocation}/`));
  return units.filter((u) => !typeErrors.some((t) => echoes(u, t)));
}

interface UnitNode {
  unit: OutputUnit;
  children: UnitNode[];
}

function buildTree(units: OutputUnit[]): UnitNode[] {
  const roots: UnitNode[] = [];
  const open: UnitNode[] = [];
  for (const unit of units) {
    while (open.length > 0 && !unit.keywordLocation.startsWith(`${open.at(-1)!.unit.keywordLocation}/`)) {
      open.pop();
    }
    const node = { unit, children: [] };
    (open.at(-1)?.children ?? roots).push(node);
    if (APPLICATORS.has(unit.keyword)) open.push(node);
  }
  return roots;
}

/** `names`: the values under test are field names (inside propertyNames), not the values at the paths. */
function render(nodes: UnitNode[], w: Wording, names: boolean): SchemaIssue[] {
  return nodes.flatMap((node) => renderNode(node, w, names));
}

function renderNode(node: UnitNode, w: Wording, names: boolean): SchemaIssue[] {
  const { unit, children } = node;
  const path = instancePath(unit.instanceLocation);
  switch (unit.keyword) {
    case "additionalProperties":
      if (children.length === 1 && children[0].unit.keyword === "false") {
        return [w.unknownField(unit, children[0].unit)];
      }
      return render(children, w, names);
    case "propertyNames":
      return render(children, w, true).map((i) => ({ ...i, message: `field name ${i.message}` }));
    case "anyOf": {
      // The branch that got furthest explains best: one whose type matched beats one that failed on type.
      const score = (r: SchemaIssue[]) =>
        r.length + (r.some((i) => i.keyword === "type" && i.path === path) ? 1000 : 0);
      const results = [...branches(node).values()].map((b) => render(b, w, names));
      if (results.length === 0) {
        return [{ path, keyword: "anyOf", message: "matches none of the allowed forms" }];
      }
      return results.reduce((a, b) => (score(b) < score(a) ? b : a));
    }
    case "oneOf": {
      const forms = (w.schemaHolding(unit.keywordLocation)?.oneOf ?? []).length;
      const message = branches(node).size === forms
        ? "matches none of the allowed forms"
        : "matches more than one form";
      return [{ path, keyword: "oneOf", message }];
    }
    case "if":
      return []; // the then/else units follow it as siblings (their locations are not under "if")
    default:
      // An applicator that failed without a subschema unit (contains) is worded like any other keyword.
      return children.length > 0 ? render(children, w, names) : w.leaf(unit, path, names);
  }
}

/** The units under an anyOf/oneOf unit, by the index of the subschema they failed in. */
function branches(node: UnitNode): Map<string, UnitNode[]> {
  const at = `${node.unit.keywordLocation}/`;
  const out = new Map<string, UnitNode[]>();
  for (const child of node.children) {
    const index = child.unit.keywordLocation.slice(at.length).split("/")[0];
    out.set(index, [...(out.get(index) ?? []), child]);
  }
  return out;
}

/** Words one failed keyword from the schema that holds it and the value it judged. */
class Wording {
  /** `required` units come one per missing field; the first one words them all. */
  private worded = new Set<string>();

  constructor(private root: Schema, private lookup: Lookup, private value: unknown) {}

  leaf(unit: OutputUnit, path: string, names: boolean): SchemaIssue[] {
    const keyword = unit.keyword;
    const s = this.schemaHolding(unit.keywordLocation);
    const value = names ? lastSegment(path) : this.valueAt(path);
    const issue = (message: string, at = path) => ({ path: at, keyword, message });
    if (keyword === "false") return [issue(NOTHING_ALLOWED)];
    const limit = s?.[keyword];
    switch (s === null ? "" : keyword) {
      case "type":
        return [issue(`must be ${[limit].flat().join(" or ")}, got ${jsonType(value)}`)];
      case "const":
        return [issue(`must be ${describe(limit)}, got ${describe(value)}`)];
      case "enum":
        return [
          issue(`must be one of ${(limit as unknown[]).map(describe).join(", ")}, got ${describe(value)}`),
        ];
      case "minLength":
        return [issue(`must be at least ${limit} characters`)];
      case "maxLength":
        return [issue(`must be at most ${limit} characters`)];
      case "pattern":
        return [issue(`must match ${limit}, got ${describe(value)}`)];
      case "minimum":
        return [issue(`must be >= ${limit}, got ${value}`)];
      case "maximum":
        return [issue(`must be <= ${limit}, got ${value}`)];
      case "exclusiveMinimum":
        return [issue(`must be > ${limit}, got ${value}`)];
      case "exclusiveMaximum":
        return [issue(`must be < ${limit}, got ${value}`)];
      case "multipleOf":
        return [issue(`must be a multiple of ${limit}, got ${value}`)];
      case "minItems":
        return [issue(`must have at least ${limit} item${limit === 1 ? "" : "s"}`)];
      case "maxItems":
        return [issue(`must have at most ${limit} item${limit === 1 ? "" : "s"}`)];
      case "minProperties":
        return [issue(`must have at least ${limit} field${limit === 1 ? "" : "s"}`)];
      case "maxProperties":
        return [issue(`must have at most ${limit} field${limit === 1 ? "" : "s"}`)];
      case "uniqueItems": {
        // The library stops at the first pair; name every repeat so each can be found.
        const items = value as unknown[];
        return items.flatMap((item, i) => {
          const j = items.findIndex((other, k) => k < i && deepCompareStrict(other, item));
          return j < 0 ? [] : [issue(`duplicates item ${j}`, pointer(path, i))];
        });
      }
      case "format":
        return [issue(`must be a valid ${limit}, got ${describe(value)}`)];
      case "not":
        return [issue(`must not match the excluded form, got ${describe(value)}`)];
      case "contains":
        return [issue("has no item of the required form")];
      case "required": {
        const once = `${unit.keywordLocation} ${unit.instanceLocation}`;
        if (this.worded.has(once)) return [];
        this.worded.add(once);
        const obj = value as Record<string, unknown>;
        return (limit as string[]).filter((key) => !Object.hasOwn(obj, key)).map((key) =>
          issue(`required property "${key}" is missing`, pointer(path, key))
        );
      }
      default:
        return [issue(unit.error)];
    }
  }

  /** A field that `additionalProperties: false` refused: the nearest allowed name and all allowed names. */
  unknownField(additional: OutputUnit, refused: OutputUnit): SchemaIssue {
    const path = instancePath(refused.instanceLocation);
    const key = lastSegment(path);
    const allowed = Object.keys(this.schemaHolding(additional.keywordLocation)?.properties ?? {});
    const best = closestMatch(key, allowed);
    const hint = best ? ` (did you mean "${best}"?)` : "";
    return {
      path,
      keyword: "additionalProperties",
      message: `unknown field "${key}"${hint}; allowed: ${allowed.join(", ")}`,
    };
  }

  /**
   * The schema object that holds the keyword at `keywordLocation`. The location is the path the validator
   * took, so a "$ref" step follows the reference the way the library resolved it.
   */
  // deno-lint-ignore no-explicit-any
  schemaHolding(keywordLocation: string): Record<string, any> | null {
    // deno-lint-ignore no-explicit-any
    let node: any = this.root;
    const segments = keywordLocation.split("/").slice(1, -1);
    for (const segment of segments.map((s) => unescapeSegment(decodeURIComponent(s)))) {
      node = segment === "$ref" && typeof node?.$ref === "string"
        ? this.lookup[node.__absolute_ref__ ?? node.$ref]
        : node?.[segment];
    }
    return node !== null && typeof node === "object" ? node : null;
  }

  private valueAt(path: string): unknown {
    let node = this.value;
    for (const segment of path.split("/").slice(1).map(unescapeSegment)) {
      node = (node as Record<string, unknown>)?.[segment];
    }
    return node;
  }
}

/** The library's locations are "#" + a URI-encoded JSON pointer; ours are the pointer. */
function instancePath(location: string): string {
  return decodeURIComponent(location.slice(1));
}

function unescapeSegment(segment: string): string {
  return segment.replace(/~1/g, "/").replace(/~0/g, "~");
}

function lastSegment(path: string): string {
  return unescapeSegment(path.slice(path.lastIndexOf("/") + 1));
}

function pointer(path: string, key: string | number): string {
  return `${path}/${escapePointer(String(key))}`;
}

function describe(value: unknown): string {
  const s = JSON.stringify(value);
  return s === undefined ? String(value) : s.length > 60 ? s.slice(0, 57) + "..." : s;
}

/** Issues in the order their fields appear in the document, so the first one is the first a user meets. */
function inDocumentOrder(issues: SchemaIssue[], value: unknown): SchemaIssue[] {
  const rank = new Map<string, number>();
  const walk = (v: unknown, path: string) => {
    rank.set(path, rank.size);
    if (Array.isArray(v)) v.forEach((item, i) => walk(item, pointer(path, i)));
    else if (v !== null && typeof v === "object") {
      for (const [k, item] of Object.entries(v)) walk(item, pointer(path, k));
    }
  };
  walk(value, "");
  // A missing field ranks with its parent, ahead of the parent's members.
  const rankOf = (path: string): number => {
    for (let p = path; p !== ""; p = p.slice(0, p.lastIndexOf("/"))) {
      const r = rank.get(p);
      if (r !== undefined) return r;
    }
    return 0;
  };
  return issues
    .map((issue, n) => ({ issue, n, r: rankOf(issue.path) }))
    .sort((a, b) => a.r - b.r || a.n - b.n)
    .map((x) => x.issue);
}
