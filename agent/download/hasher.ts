import type { Env } from "../core/env.ts";
import { loadNodeCrypto } from "../core/hash.ts";

type Hash = ReturnType<Awaited<ReturnType<typeof loadNodeCrypto>>["createHash"]>;

/**
 * sha256 (or git blob sha1) of a file being written: bytes written at the cursor are hashed on the way;
 * whatever the cursor has not reached (a resumed prefix, later ranges) is read back from disk at the end.
 */
export class InlineHasher {
  cursor = 0;
  /** Set while bytes are read back from disk: a chunk fed meanwhile is left for the next read-back. */
  private catchingUp = false;
  private constructor(readonly algo: "sha256" | "git-sha1", private readonly h: Hash) {}
  static async create(algo: "sha256" | "git-sha1", size: number): Promise<InlineHasher> {
    const h = (await loadNodeCrypto()).createHash(algo === "sha256" ? "sha256" : "sha1");
    if (algo === "git-sha1") h.update(`blob ${size}\0`);
    return new InlineHasher(algo, h);
  }
  feed(offset: number, chunk: Uint8Array) {
    if (offset !== this.cursor || this.catchingUp) return;
    this.h.update(chunk);
    this.cursor += chunk.length;
  }
  /** Hashes [cursor, upTo) from the file; every byte of it must already be written. */
  async catchUp(env: Env, path: string, upTo: number, signal?: AbortSignal) {
    if (this.cursor >= upTo || this.catchingUp) return;
    this.catchingUp = true;
    const file = await env.fs.open(path, { read: true }).catch((e) => {
      this.catchingUp = false;
      throw e;
    });
    try {
      await file.seek(this.cursor, Deno.SeekMode.Start);
      const buf = new Uint8Array(4 << 20);
      while (this.cursor < upTo) {
        if (signal?.aborted) throw signal.reason;
        const n = await file.read(buf.subarray(0, Math.min(buf.length, upTo - this.cursor)));
        if (n === null) break;
        this.h.update(buf.subarray(0, n));
        this.cursor += n;
      }
    } finally {
      this.catchingUp = false;
      file.close();
    }
  }
  async digest(env: Env, path: string, size: number, signal?: AbortSignal): Promise<string> {
    await this.catchUp(env, path, size, signal);
    return this.h.digest("hex");
  }
}
