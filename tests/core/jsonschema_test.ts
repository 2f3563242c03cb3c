import assert from "node:assert/strict";
import { closestMatch, editDistance, type JsonSchema, validateJson } from "../../agent/core/jsonschema.ts";
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

Deno.test("validateJson() ignores annotations and keywords outside the subset", () => {
  const schema = { $schema: "x", title: "t", description: "d", examples: [1], type: "number" };
  assert.deepEqual(validateJson(schema, 2), []);
  assert.deepEqual(validateJson(true, 2), []);
  assert.deepEqual(paths(false, 2), [" false"]);
});

Deno.test("the profile schema uses only keywords validateJson() understands", () => {
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

Deno.test("editDistance() and closestMatch() find likely typos and nothing for unrelated words", () => {
  assert.equal(editDistance("kitten", "sitting"), 3);
  assert.equal(editDistance("", "abc"), 3);
  assert.equal(closestMatch("yolo5", ["yolo", "hunyuan-video-i2v"]), "yolo");
  assert.equal(closestMatch("hunyuan-video", ["yolo", "hunyuan-video-i2v"]), "hunyuan-video-i2v");
  assert.equal(closestMatch("stable-diffusion", ["yolo", "morphic-frames-to-video"]), null);
});

Deno.test("validateJson() resolves $ref to the root and checks minProperties", () => {
  const tree = { type: "object", minProperties: 1, additionalProperties: { $ref: "#" } };
  assert.deepEqual(validateJson(tree, { a: { b: { c: {} } } }).map((i) => `${i.path} ${i.keyword}`), [
    "/a/b/c minProperties",
  ]);
});
