import assert from "node:assert/strict";
import { encode } from "@msgpack/msgpack";
import { decodeCachedResponse } from "../../agent/cache/cachecontrol.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const entry = (value: unknown, tail: number[] = []) =>
  new Uint8Array([...enc("cc=4,"), ...encode(value), ...tail]);
const response = {
  response: {
    body: enc("wheel bytes"),
    headers: { "Content-Length": "11", "Content-Encoding": "gzip" },
    status: 200,
    version: 11,
    reason: "OK",
    decode_content: false,
  },
  vary: {},
};

Deno.test("decodeCachedResponse() reads status, length, encoding and the inline body", async () => {
  const r = await decodeCachedResponse(entry(response));
  assert.ok(typeof r !== "string", String(r));
  assert.deepEqual([r.status, r.contentLength, r.compressed], [200, 11, true]);
  assert.equal(new TextDecoder().decode(r.body), "wheel bytes");
});

Deno.test("decodeCachedResponse() reads a record whose map keys were written as bytes", async () => {
  // msgpack bin8 keys: {b"response": {b"status": 304}}
  const raw = new Uint8Array([
    ...enc("cc=4,"),
    0x81,
    0xc4,
    8,
    ...enc("response"),
    0x81,
    0xc4,
    6,
    ...enc("status"),
    0xcd,
    0x01,
    0x30,
  ]);
  const r = await decodeCachedResponse(raw);
  assert.ok(typeof r !== "string", String(r));
  assert.deepEqual([r.status, r.contentLength, r.body.length], [304, null, 0]);
});

Deno.test("decodeCachedResponse() names what is wrong with a torn, padded or foreign entry", async () => {
  const whole = entry(response);
  for (const cut of [6, 20, whole.length - 1]) {
    assert.equal(
      await decodeCachedResponse(whole.subarray(0, cut)),
      "msgpack data ends early",
      `cut at ${cut}`,
    );
  }
  assert.equal(await decodeCachedResponse(entry(response, [0, 0, 0])), "3 trailing bytes");
  assert.match(
    await decodeCachedResponse(new Uint8Array([...enc("cc=4,"), 0xc1])) as string,
    /^msgpack: .*0xc1/,
  );
  assert.equal(await decodeCachedResponse(enc("cc=2,")), "no cc=4 prefix");
  assert.equal(await decodeCachedResponse(new Uint8Array()), "no cc=4 prefix");
  assert.equal(await decodeCachedResponse(entry({ vary: {} })), "no response record");
  assert.equal(await decodeCachedResponse(entry([1, 2])), "no response record");
});
