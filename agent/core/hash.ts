/**
 * SHA-256 of short things (profile and plan fingerprints, long lock names), synchronously and without
 * node:crypto: loading node:crypto (and the Node layer under it) cost every hot command about 30 ms of its
 * start-up, for hashes of a few hundred bytes (`deno task bench startup`). Files and downloads are hashed by
 * node:crypto, loaded where they are hashed.
 */
import { sha1 } from "@noble/hashes/legacy.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex } from "@noble/hashes/utils.js";

const utf8 = new TextEncoder();

/** Hex SHA-256 of a string's UTF-8 bytes, or of bytes. */
export function sha256Hex(data: string | Uint8Array): string {
  return bytesToHex(sha256(typeof data === "string" ? utf8.encode(data) : data));
}

/** Standard base64 of the SHA-1 of a string's UTF-8 bytes (huggingface_hub's names for partial files). */
export function sha1Base64(text: string): string {
  return btoa(String.fromCharCode(...sha1(utf8.encode(text))));
}

type NodeCrypto = typeof import("node:crypto");
let nodeCrypto: Promise<NodeCrypto> | null = null;

/**
 * node:crypto, for hashing files and streams (native, with the CPU's SHA instructions: gigabytes, where a
 * script hash does tens of megabytes a second). Loaded on first use, never at start-up.
 */
export function loadNodeCrypto(): Promise<NodeCrypto> {
  return nodeCrypto ??= import("node:crypto");
}
