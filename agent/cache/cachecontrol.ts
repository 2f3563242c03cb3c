/** cachecontrol's serialized responses (pip's http cache): a small msgpack reader. */

interface CachedResponse {
  status: number | null;
  contentLength: number | null;
  /** Content-Encoding set: the stored body is the encoded one, lengths still match, but be lenient. */
  compressed: boolean;
  body: Uint8Array;
}

/** Decodes a cachecontrol entry (`cc=4,` + msgpack). Returns the problem in words when it cannot. */
export function decodeCachedResponse(raw: Uint8Array): CachedResponse | string {
  const prefix = new TextDecoder().decode(raw.subarray(0, 5));
  if (prefix !== "cc=4,") return `no cc=4 prefix`;
  let value: unknown;
  try {
    const r = new MsgpackReader(raw, 5);
    value = r.read();
    if (r.pos !== raw.length) return `${raw.length - r.pos} trailing bytes`;
  } catch (e) {
    return (e as Error).message;
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

class MsgpackReader {
  private view: DataView;
  constructor(private buf: Uint8Array, public pos: number) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }
  private need(n: number) {
    if (this.pos + n > this.buf.length) throw new Error("msgpack data ends early");
  }
  private bytes(n: number): Uint8Array {
    this.need(n);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
  private u(n: 1 | 2 | 4): number {
    this.need(n);
    const v = n === 1
      ? this.view.getUint8(this.pos)
      : n === 2
      ? this.view.getUint16(this.pos)
      : this.view.getUint32(this.pos);
    this.pos += n;
    return v;
  }
  private str(n: number) {
    return new TextDecoder().decode(this.bytes(n));
  }
  private map(n: number) {
    const o: Record<string, unknown> = {};
    for (let i = 0; i < n; i++) {
      const k = this.read();
      o[typeof k === "string" ? k : k instanceof Uint8Array ? new TextDecoder().decode(k) : String(k)] = this
        .read();
    }
    return o;
  }
  private arr(n: number) {
    const a: unknown[] = [];
    for (let i = 0; i < n; i++) a.push(this.read());
    return a;
  }
  read(): unknown {
    const t = this.u(1);
    if (t <= 0x7f) return t;
    if (t >= 0xe0) return t - 0x100;
    if ((t & 0xf0) === 0x80) return this.map(t & 0x0f);
    if ((t & 0xf0) === 0x90) return this.arr(t & 0x0f);
    if ((t & 0xe0) === 0xa0) return this.str(t & 0x1f);
    switch (t) {
      case 0xc0:
        return null;
      case 0xc2:
        return false;
      case 0xc3:
        return true;
      case 0xc4:
        return this.bytes(this.u(1));
      case 0xc5:
        return this.bytes(this.u(2));
      case 0xc6:
        return this.bytes(this.u(4));
      case 0xca:
        this.need(4);
        return this.view.getFloat32((this.pos += 4) - 4);
      case 0xcb:
        this.need(8);
        return this.view.getFloat64((this.pos += 8) - 8);
      case 0xcc:
        return this.u(1);
      case 0xcd:
        return this.u(2);
      case 0xce:
        return this.u(4);
      case 0xcf:
        this.need(8);
        return Number(this.view.getBigUint64((this.pos += 8) - 8));
      case 0xd0:
        this.need(1);
        return this.view.getInt8((this.pos += 1) - 1);
      case 0xd1:
        this.need(2);
        return this.view.getInt16((this.pos += 2) - 2);
      case 0xd2:
        this.need(4);
        return this.view.getInt32((this.pos += 4) - 4);
      case 0xd3:
        this.need(8);
        return Number(this.view.getBigInt64((this.pos += 8) - 8));
      case 0xd9:
        return this.str(this.u(1));
      case 0xda:
        return this.str(this.u(2));
      case 0xdb:
        return this.str(this.u(4));
      case 0xdc:
        return this.arr(this.u(2));
      case 0xdd:
        return this.arr(this.u(4));
      case 0xde:
        return this.map(this.u(2));
      case 0xdf:
        return this.map(this.u(4));
      default:
        throw new Error(`unsupported msgpack type 0x${t.toString(16)}`);
    }
  }
}
