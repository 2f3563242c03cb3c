import assert from "node:assert/strict";
import {
  jsonPointerLocations,
  locateJsonError,
  locatePointer,
  parseJsonLocated,
} from "../../agent/core/json_location.ts";

Deno.test("locateJsonError() finds the line and column of the first syntax error", () => {
  const rows: [string, number, number, RegExp][] = [
    ['{"a": 1,}', 1, 9, /^trailing comma before \}$/],
    ["[1, 2,]\n", 1, 7, /^trailing comma before \]$/],
    ['{\n  "a" 1\n}', 2, 7, /^expected ':' after property name, got "1"$/],
    ['{"a": tru}', 1, 7, /^unexpected "tru", expected a value$/],
    ['{"a": "x\ny"}', 1, 9, /^control character in string/],
    ['{"a": "x\ty"}', 1, 9, /^control character in string/],
    ['{"a": "b\\q"}', 1, 9, /^bad escape in string$/],
    ['{"a": "\\u12x4"}', 1, 8, /^bad \\u escape in string$/],
    ['"abc', 1, 5, /^unterminated string$/],
    ["{} {}", 1, 4, /^unexpected "\{" after the JSON value$/],
    ['{"a": 01}', 1, 8, /^expected ',' or '\}' after property value, got "1"$/],
    ["[1 2]", 1, 4, /^expected ',' or '\]' after array item, got "2"$/],
    ['{"a": "x"\n "b": 1}', 2, 2, /^expected ',' or '\}' after property value, got a string$/],
    ["{a: 1}", 1, 2, /^expected a double-quoted property name, got "a"$/],
    ["{'a': 1}", 1, 2, /^expected a double-quoted property name, got "'a'"$/],
    ['{"a": 1.}', 1, 7, /^malformed number "1\."$/],
    ['{"a": NaN}', 1, 7, /^unexpected "NaN", expected a value$/],
    ["", 1, 1, /^unexpected end of input, expected a value$/],
    ["\n\n  // comment\n{}", 3, 3, /^comments are not allowed in JSON$/],
    ["\ufeff{}", 1, 1, /byte-order mark/],
  ];
  for (const [text, line, column, msg] of rows) {
    const e = locateJsonError(text);
    assert.ok(e, JSON.stringify(text));
    assert.deepEqual([e.line, e.column], [line, column], JSON.stringify(text));
    assert.match(e.message, msg, JSON.stringify(text));
  }
  assert.equal(locateJsonError('{"a": [1, -2.5e3, "\\u00e9", true, null]}'), null);
  assert.deepEqual(parseJsonLocated("[1]"), { ok: true, value: [1] });
});

Deno.test("locateJsonError() says where a file cut short ends and what was due there", () => {
  const rows: [string, RegExp][] = [
    ["{", /^expected a double-quoted property name, got end of input$/],
    ['{"a": 1', /^expected ',' or '\}' after property value, got end of input$/],
    ['{"a": 1,', /^expected a double-quoted property name, got end of input$/],
    ['{"a"', /^expected ':' after property name, got end of input$/],
    ['{"a": [1, 2', /^expected ',' or '\]' after array item, got end of input$/],
    ["[1,", /^unexpected end of input, expected a value$/],
    ["[\n", /^unexpected end of input, expected a value$/],
  ];
  for (const [text, msg] of rows) {
    const e = locateJsonError(text);
    assert.ok(e, JSON.stringify(text));
    assert.equal(e.offset, text.length, JSON.stringify(text));
    assert.match(e.message, msg, JSON.stringify(text));
  }
});

Deno.test("parseJsonLocated() returns the value or the located error, never throws", () => {
  assert.deepEqual(parseJsonLocated('{"a": [1, {"b": null}]}'), { ok: true, value: { a: [1, { b: null }] } });
  const r = parseJsonLocated('{\n  "a": 1,\n}');
  assert.equal(r.ok, false);
  if (!r.ok) {
    assert.deepEqual([r.error.line, r.error.column, r.error.message], [3, 1, "trailing comma before }"]);
  }
});

Deno.test("jsonPointerLocations() places members at their key and a missing field at its parent", () => {
  const text =
    '{\n  "name": "x",\n  "stages": [\n    {"name": "a", "packages": ["p>=1", "q==2"]}\n  ],\n  "g": -1.5e3\n}';
  const at = jsonPointerLocations(text);
  assert.deepEqual(at.get(""), { line: 1, column: 1 });
  assert.deepEqual(at.get("/name"), { line: 2, column: 3 });
  assert.deepEqual(at.get("/stages/0"), { line: 4, column: 5 });
  assert.deepEqual(at.get("/stages/0/packages/1"), { line: 4, column: 40 });
  assert.deepEqual(at.get("/g"), { line: 6, column: 3 });
  assert.deepEqual(locatePointer(at, "/stages/0/no_deps"), { line: 4, column: 5 });
  assert.equal(jsonPointerLocations("{").size, 0);
  assert.equal(jsonPointerLocations('{"a": 1,}').size, 0);
});

Deno.test("jsonPointerLocations() escapes ~ and / in keys and keeps a repeated key's first place", () => {
  const at = jsonPointerLocations('{"a/b~c": 1,\n"d": 1,\n"d": 2}');
  assert.deepEqual(at.get("/a~1b~0c"), { line: 1, column: 2 });
  assert.deepEqual(at.get("/d"), { line: 2, column: 1 });
  assert.equal(locatePointer(at, "/x/y"), at.get(""));
});
