/** cachecontrol's serialized responses (pip's http cache): `cc=4,` + msgpack, read by @msgpack/msgpack. */

type Msgpack = typeof import("@msgpack/msgpack");
/** Loaded on first use: loading it costs tens of ms, and only a scan of a pip cache reads msgpack. */
let msgpack: Promise<Msgpack> | null = null;

interface CachedResponse {
  status: number | null;
  contentLength: number | null;
  /** Content-Encoding set: the stored body is the encoded one, lengths still match, but be lenient. */
  compressed: boolean;
  body: Uint8Array;
}

/** Decodes a cachecontrol entry (`cc=4,` + msgpack). Returns the problem in words when it cannot. */
export async function decodeCachedResponse(raw: Uint8Array): Promise<CachedResponse | string> {
  const prefix = new TextDecoder().decode(raw.subarray(0, 5));
  if (prefix !== "cc=4,") return `no cc=4 prefix`;
  const { decode } = await (msgpack ??= import("@msgpack/msgpack"));
  let value: unknown;
  try {
    value = decode(raw.subarray(5), { mapKeyConverter: keyText });
  } catch (e) {
    return msgpackProblem(e);
  }
  const resp = (value as Record<string, unknown> | null)?.response as Record<string, unknown> | undefined;
  if (!resp || typeof resp !== "object") return "no response record";
  const headers = (resp.headers ?? {}) as Record<string, unknown>;
  let contentLength: number | null = null;
  let compressed = false;
  for (const [k, v] of Object.entries(headers)) {
    const key = k.toLowerCase();
    if (key === "content-length" && typeof v === "string" && /^\d+$/.test(v.trim())) {
      contentLength = Number(v);
    }
    if (key === "content-encoding" && typeof v === "string" && v !== "identity") compressed = true;
  }
  const body = resp.body instanceof Uint8Array ? resp.body : new Uint8Array();
  return { status: typeof resp.status === "number" ? resp.status : null, contentLength, compressed, body };
}

/** Map keys as text; cachecontrol writes str keys, but an older writer may have left bytes. */
function keyText(key: unknown): string | number {
  if (typeof key === "string" || typeof key === "number") return key;
  return key instanceof Uint8Array ? new TextDecoder().decode(key) : String(key);
}

/** The decoder's failure in the words heal reports use: short (a torn write), trailing bytes, or garbage. */
function msgpackProblem(e: unknown): string {
  if (e instanceof RangeError) {
    // "Extra N of M byte(s) found at buffer[P]": a whole value followed by leftovers.
    const extra = /^Extra (\d+) of/.exec(e.message);
    if (extra) return `${extra[1]} trailing bytes`;
    // Reads past the end surface as "Insufficient data" or the DataView's own bounds error.
    return "msgpack data ends early";
  }
  // DecodeError: a type byte msgpack does not define, a malformed extension.
  return `msgpack: ${e instanceof Error ? e.message : String(e)}`;
}
