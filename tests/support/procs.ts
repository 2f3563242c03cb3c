/** Whether processes still run, read from /proc. PID 1 here does not reap orphans: a zombie counts as dead. */

function stateFields(pid: string): string[] | null {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  } catch {
    return null;
  }
}

const live = (f: string[] | null) => !!f && f[0] !== "Z" && f[0] !== "X";

/** A live process in process group `pgid`. */
export function groupAlive(pgid: number): boolean {
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    const f = stateFields(e.name);
    if (live(f) && Number(f![2]) === pgid) return true;
  }
  return false;
}

/** Whether `pid` runs (not a zombie). */
export function processAlive(pid: number): boolean {
  return live(stateFields(String(pid)));
}

/** Waits until `path` holds a number (a pid or pgid a test fixture wrote), up to `timeoutMs`. */
export async function waitForNumberIn(path: string, timeoutMs = 60_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const n = Number(await Deno.readTextFile(path).catch(() => "")) || 0;
    if (n) return n;
    if (Date.now() > deadline) throw new Error(`${path} got no number within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
