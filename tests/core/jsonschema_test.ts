import assert from "node:assert/strict";
import { closestMatch, type JsonSchema, validateJson } from "../../agent/core/jsonschema.ts";
import { PROFILE_SCHEMA } from "../../profiles/mod.ts";

const paths = (schema: JsonSchema, value: unknown) =>
  validateJson(schema, value).map((i) => `${i.path} ${i.keyword}`);

Deno.test("validateJson() accepts a value that meets every keyword", () => {
  const schema = {
    type: "object",
    required: ["a"],
    additionalProperties: false,
    properties: {
      a: { type: "string", pattern: "^x", minLength: 2 },
      b: { type: "integer", minimum: 1, maximum: 5 },
      c: { type: "array", items: { enum: ["p", "q"] }, minItems: 1, uniqueItems: true },
      d: { const: true },
    },
  };
  assert.deepEqual(validateJson(schema, { a: "xy", b: 3, c: ["p", "q"], d: true }), []);
});

Deno.test("validateJson() reports each failing keyword at its JSON pointer", () => {
  const schema = {
    type: "object",
    required: ["name", "n"],
    properties: {
      n: { type: "number", minimum: 0 },
      tags: { type: "array", items: { type: "string", pattern: "^[a-z]+$" }, minItems: 1 },
      mode: { enum: ["fast", "slow"] },
      v: { const: 1 },
    },
  };
  assert.deepEqual(paths(schema, { n: -1, tags: ["ok", "Bad", 3], mode: "medium", v: 2 }), [
    "/name required",
    "/n minimum",
    "/tags/1 pattern",
    "/tags/2 type",
    "/mode enum",
    "/v const",
  ]);
});

Deno.test("validateJson() treats integers as numbers but not numbers as integers", () => {
  assert.deepEqual(validateJson({ type: "number" }, 3), []);
  assert.deepEqual(paths({ type: "integer" }, 3.5), [" type"]);
  assert.deepEqual(paths({ type: "object" }, []), [" type"]);
  assert.deepEqual(paths({ type: "array" }, null), [" type"]);
  assert.deepEqual(validateJson({ type: ["string", "null"] }, null), []);
});

Deno.test("validateJson() names unknown fields, the closest allowed one and all allowed ones", () => {
  const schema = {
    type: "object",
    additionalProperties: false,
    properties: { no_build_isolation: { type: "boolean" }, packages: { type: "array" } },
  };
  const [issue] = validateJson(schema, { no_build_isolaton: true });
  assert.equal(issue.path, "/no_build_isolaton");
  assert.equal(issue.keyword, "additionalProperties");
  assert.match(issue.message, /unknown field "no_build_isolaton" \(did you mean "no_build_isolation"\?\)/);
  assert.match(issue.message, /allowed: no_build_isolation, packages/);
});

Deno.test("validateJson() checks additionalProperties schemas and propertyNames", () => {
  const schema = {
    type: "object",
    propertyNames: { pattern: "^[A-Z_]+$" },
    additionalProperties: { type: "string" },
  };
  assert.deepEqual(paths(schema, { MAX_JOBS: 4, "bad-name": "x" }), [
    "/MAX_JOBS type",
    "/bad-name pattern",
  ]);
});

Deno.test("validateJson() follows $ref into $defs, recursively", () => {
  const schema = {
    $defs: {
      node: {
        type: "object",
        required: ["id"],
        properties: { id: { type: "string" }, children: { type: "array", items: { $ref: "#/$defs/node" } } },
      },
    },
    $ref: "#/$defs/node",
  };
  assert.deepEqual(
    validateJson(schema, { id: "a", children: [{ id: "b", children: [{ id: 1 }] }] }).map((i) => i.path),
    [
      "/children/0/children/0/id",
    ],
  );
  assert.throws(() => validateJson({ $ref: "#/$defs/missing" }, 1), /does not resolve/);
  assert.throws(() => validateJson({ $ref: "other.json#/x" }, 1), /only local \$ref/);
});

Deno.test("validateJson() anyOf passes when one branch passes and explains the nearest branch otherwise", () => {
  const schema = { anyOf: [{ type: "string" }, { type: "object", required: ["url"] }] };
  assert.deepEqual(validateJson(schema, "x"), []);
  assert.deepEqual(validateJson(schema, { url: "u" }), []);
  assert.deepEqual(paths(schema, {}), ["/url required"]);
  assert.deepEqual(paths({ oneOf: [{ type: "number" }, { type: "integer" }] }, 1), [" oneOf"]);
});

Deno.test("validateJson() escapes ~ and / in pointer segments", () => {
  const schema = { type: "object", additionalProperties: { type: "string" } };
  assert.deepEqual(paths(schema, { "a/b~c": 1 }), ["/a~1b~0c type"]);
});

Deno.test("validateJson() ignores annotations", () => {
  const schema = { $schema: "x", title: "t", description: "d", examples: [1], type: "number" };
  assert.deepEqual(validateJson(schema, 2), []);
  assert.deepEqual(validateJson(true, 2), []);
  assert.deepEqual(paths(false, 2), [" false"]);
});

Deno.test("the profile schema uses only keywords validateJson() words in its own phrases", () => {
  const known = new Set([
    "$schema",
    "$id",
    "$ref",
    "$defs",
    "title",
    "description",
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "enum",
    "const",
    "pattern",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "uniqueItems",
    "anyOf",
    "oneOf",
    "propertyNames",
  ]);
  const seen = new Set<string>();
  const walk = (node: unknown, inMap: boolean) => {
    if (Array.isArray(node)) return node.forEach((n) => walk(n, false));
    if (node === null || typeof node !== "object") return;
    for (const [k, v] of Object.entries(node)) {
      if (!inMap) seen.add(k);
      walk(v, !inMap && (k === "properties" || k === "$defs"));
    }
  };
  walk(PROFILE_SCHEMA, false);
  assert.deepEqual([...seen].filter((k) => !known.has(k)), []);
  assert.equal(PROFILE_SCHEMA.$schema, "https://json-schema.org/draft/2020-12/schema");
});

Deno.test("validateJson() resolves $ref to the root and checks minProperties", () => {
  const tree = { type: "object", minProperties: 1, additionalProperties: { $ref: "#" } };
  assert.deepEqual(validateJson(tree, { a: { b: { c: {} } } }).map((i) => `${i.path} ${i.keyword}`), [
    "/a/b/c minProperties",
  ]);
});

Deno.test("validateJson() lists every missing required field and every repeated item", () => {
  const schema = {
    type: "object",
    required: ["name", "stages", "python"],
    properties: { tags: { type: "array", uniqueItems: true } },
  };
  assert.deepEqual(
    validateJson(schema, { stages: [], tags: ["a", "b", "a", { x: 1 }, { x: 1 }, "a"] }).map((i) =>
      `${i.path} ${i.message}`
    ),
    [
      '/name required property "name" is missing',
      '/python required property "python" is missing',
      "/tags/2 duplicates item 0",
      "/tags/4 duplicates item 3",
      "/tags/5 duplicates item 0",
    ],
  );
});

Deno.test("validateJson() reports a wrong type alone, not the rules that could only apply to the right one", () => {
  const schema = { type: "object", properties: { mode: { type: "string", enum: ["fast"], minLength: 9 } } };
  assert.deepEqual(validateJson(schema, { mode: 3 }), [
    { path: "/mode", keyword: "type", message: "must be string, got integer" },
  ]);
  assert.deepEqual(validateJson({ type: ["string", "null"] }, 1.5), [
    { path: "", keyword: "type", message: "must be string or null, got number" },
  ]);
});

Deno.test("validateJson() words each rule with the limit and the value it saw", () => {
  const schema = {
    type: "object",
    properties: {
      a: { minimum: 1 },
      b: { maximum: 5 },
      c: { exclusiveMinimum: 0 },
      d: { minLength: 2 },
      e: { maxLength: 1 },
      f: { pattern: "^[a-z]+$" },
      g: { minItems: 1 },
      h: { maxItems: 1 },
      i: { enum: ["x", 2] },
      j: { const: "cu121" },
      k: { minProperties: 1 },
    },
  };
  const value = { a: 0, b: 6, c: 0, d: "x", e: "xy", f: "A", g: [], h: [1, 2], i: "y", j: "cu118", k: {} };
  assert.deepEqual(validateJson(schema, value).map((i) => `${i.path} ${i.message}`), [
    "/a must be >= 1, got 0",
    "/b must be <= 5, got 6",
    "/c must be > 0, got 0",
    "/d must be at least 2 characters",
    "/e must be at most 1 characters",
    '/f must match ^[a-z]+$, got "A"',
    "/g must have at least 1 item",
    "/h must have at most 1 item",
    '/i must be one of "x", 2, got "y"',
    '/j must be "cu121", got "cu118"',
    "/k must have at least 1 field",
  ]);
});

Deno.test("validateJson() names field-name rule failures and unknown fields inside $ref and anyOf", () => {
  const schema = {
    $defs: {
      stage: { type: "object", additionalProperties: false, properties: { name: {}, packages: {} } },
    },
    type: "object",
    properties: {
      env: { type: "object", propertyNames: { pattern: "^[A-Z_]+$" } },
      stage: { $ref: "#/$defs/stage" },
      source: { anyOf: [{ type: "string" }, { $ref: "#/$defs/stage" }] },
    },
  };
  const issues = validateJson(schema, {
    env: { "max-jobs": "4" },
    stage: { name: "a", pakages: [] },
    source: { nme: "b" },
  });
  assert.deepEqual(issues.map((i) => `${i.path} ${i.keyword}: ${i.message}`), [
    '/env/max-jobs pattern: field name must match ^[A-Z_]+$, got "max-jobs"',
    '/stage/pakages additionalProperties: unknown field "pakages" (did you mean "packages"?); allowed: name, packages',
    '/source/nme additionalProperties: unknown field "nme" (did you mean "name"?); allowed: name, packages',
  ]);
});

Deno.test("validateJson() puts issues in document order, a missing field with its parent", () => {
  const schema = {
    type: "object",
    required: ["z"],
    propertyNames: { maxLength: 3 },
    properties: { b: { type: "string" }, a: { type: "string" } },
  };
  assert.deepEqual(paths(schema, { a: 1, long: 1, b: 2 }), [
    "/z required",
    "/a type",
    "/long maxLength",
    "/b type",
  ]);
});

Deno.test("validateJson() points at fields whose names need escaping or percent-encoding", () => {
  const schema = { type: "object", additionalProperties: { type: "string" } };
  assert.deepEqual(paths(schema, { "a b%41#é": 1 }), ["/a b%41#é type"]);
  assert.deepEqual(paths({ type: "object", additionalProperties: false }, { "\ud800": 1 }), [
    " propertyNames",
  ]);
});

Deno.test("jsonschema.ts still offers closestMatch() to the callers that import it from there", () => {
  assert.equal(closestMatch("verfy", ["verify", "stages"]), "verify");
});

Deno.test("validateJson() words keywords the mlagent schemas do not use yet", () => {
  const messages = (schema: JsonSchema, value: unknown) => validateJson(schema, value).map((i) => i.message);
  assert.deepEqual(messages({ contains: { type: "string" } }, [1]), ["has no item of the required form"]);
  assert.deepEqual(messages({ not: { const: "x" } }, "x"), ['must not match the excluded form, got "x"']);
  assert.deepEqual(messages({ if: { type: "string" }, then: { minLength: 3 } }, "x"), [
    "must be at least 3 characters",
  ]);
  assert.deepEqual(messages({ allOf: [{ minimum: 3 }, { maximum: 0 }] }, 1), [
    "must be >= 3, got 1",
    "must be <= 0, got 1",
  ]);
  assert.deepEqual(messages({ type: "object", properties: { a: false } }, { a: 1 }), [
    "no value is allowed here",
  ]);
});
