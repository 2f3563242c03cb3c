/**
 * Leases on a real network filesystem: one directory exported by a private sshd and mounted by three sshfs
 * clients (tests/support/sshfs.ts), each standing for a host, with contenders under `unshare --uts` host
 * names. Mounted with hard links (OpenSSH's extension: link(2) works, the link count always reads 1) and
 * without (`-o disable_hardlink`: link(2) fails with EPERM, as on SFTP servers lacking the extension).
 */
import assert from "node:assert/strict";
import { runMlagent } from "../support/cli.ts";
import { tempDir } from "../support/env.ts";
import {
  canUnshareUts,
  fileExists,
  lockRunSh,
  lockVars,
  readOr,
  spawnMlagent,
  waitUntil,
} from "../support/lock_helpers.ts";
import { sshfsAvailable, startSshfs } from "../support/sshfs.ts";

const ready = sshfsAvailable() && await canUnshareUts();

/** "begin ID FENCING" ... "end ID" pairs, never overlapping; returns [id, fencing] in order. */
function sections(log: string): [string, number][] {
  const lines = log.split("\n").filter(Boolean);
  const out: [string, number][] = [];
  for (let i = 0; i < lines.length; i += 2) {
    const b = lines[i].match(/^begin (\S+) (\d+)$/);
    const e = lines[i + 1]?.match(/^end (\S+)$/);
    if (!b || !e || b[1] !== e[1]) throw new Error(`critical sections overlap at line ${i + 1}:\n${log}`);
    out.push([b[1], Number(b[2])]);
  }
  return out;
}

const work = (log: string, id: string) =>
  `echo "begin ${id} $MLAGENT_LOCK_FENCING" >> '${log}'; sleep 0.1; echo "end ${id}" >> '${log}'`;

for (const hardLinks of [true, false]) {
  const method = hardLinks ? "link" : "exclusive";
  Deno.test({
    name: `leases on sshfs ${
      hardLinks ? "with" : "without"
    } hard links: claims by ${method}, one holder at a time across mounts, a killed holder broken only once stale`,
    ignore: !ready,
    sanitizeResources: false,
    async fn(t) {
      // sshfs keeps its own attribute cache (dir_cache, 20 s) and, with auto_cache, serves a file's old pages
      // until those attributes change: a heartbeat rewritten through one mount could read unchanged through
      // another for 20 s. NFS revalidates on open (close-to-open); these two options give sshfs the same, so
      // the short test TTL (2 s) stays above what the filesystem may serve stale. (With sshfs's defaults,
      // keep MLAGENT_LOCK_TTL above dcache_timeout: the default 60 s is.)
      await using fs = await startSshfs({
        clients: 3,
        hardLinks,
        mountOptions: ["dir_cache=no", "noauto_cache"],
      });
      await using local = await tempDir();
      // Each "host" reaches the shared venv root through its own mount and has its own node-local lock dir.
      const vars = (i: number) => ({
        ...lockVars(`${local.path}/host${i}`),
        MLAGENT_ROOT: `${fs.mounts[i % fs.mounts.length]}/venvs`,
        MLAGENT_LOCK_TTL: "2",
      });
      const log = `${local.path}/sections.log`;

      await t.step("six contenders on three mounts never both hold, and fencing keeps growing", async () => {
        const procs = Array.from(
          { length: 6 },
          (_, i) =>
            spawnMlagent(lockRunSh("venv:shared", work(log, `host-${i}`)), {
              env: vars(i),
              host: `host-${i}`,
            }),
        );
        const results = await Promise.all(procs.map((p) => p.done));
        for (const r of results) {
          assert.equal(r.code, 0, r.stderr);
          assert.doesNotMatch(r.stderr, /Operation not permitted|os error/);
        }
        const order = sections(await readOr(log));
        assert.deepEqual(order.map(([id]) => id).sort(), Array.from({ length: 6 }, (_, i) => `host-${i}`));
        const fences = order.map(([, f]) => f);
        assert.deepEqual(fences, [...fences].sort((a, b) => a - b), `fencing out of order: ${fences}`);
        assert.equal(new Set(fences).size, 6, `fencing repeated: ${fences}`);
        assert.equal((await Deno.readTextFile(`${fs.export}/venvs/.mlagent-claim-method`)).trim(), method);
      });

      await t.step(`lock list on another mount shows the holder and claim "${method}"`, async () => {
        const marker = `${local.path}/holding`;
        const holder = spawnMlagent(lockRunSh("venv:listed", `touch '${marker}'; sleep 30`), {
          env: vars(0),
          host: "host-a",
          detached: true,
        });
        try {
          await waitUntil("host-a holds the lock", () => fileExists(marker));
          const r = await runMlagent(["lock", "list", "--json"], { env: vars(1) });
          assert.equal(r.code, 0, r.stderr);
          const lock = r.json<{ locks: { name: string; status: string; mode: string; claim: string }[] }>()
            .locks.find((l) => l.name === "venv:listed");
          assert.deepEqual([lock?.status, lock?.mode, lock?.claim], ["held-remote", "lease", method]);
          const text = await runMlagent(["lock", "list"], { env: vars(1) });
          assert.match(text.stdout, new RegExp(`venv:listed .*claim=${method}`));
        } finally {
          Deno.kill(-holder.pid, "SIGTERM");
          await holder.done;
        }
      });

      await t.step(
        "a live holder on one mount is respected from another past the TTL (its heartbeats are seen)",
        async () => {
          const order = `${local.path}/order.log`;
          const marker = `${local.path}/holding-live`;
          const holder = spawnMlagent(
            lockRunSh("venv:live", `touch '${marker}'; sleep 4; echo holder >> '${order}'`),
            { env: vars(0), host: "host-a" },
          );
          await waitUntil("host-a holds the lock", () => fileExists(marker));
          const waiter = spawnMlagent(lockRunSh("venv:live", `echo waiter >> '${order}'`), {
            env: vars(1),
            host: "host-b",
          });
          const [h, w] = await Promise.all([holder.done, waiter.done]);
          assert.equal(h.code, 0, h.stderr);
          assert.equal(w.code, 0, w.stderr);
          assert.doesNotMatch(w.stderr, /broke stale lock/);
          assert.deepEqual((await readOr(order)).trim().split("\n"), ["holder", "waiter"]);
        },
      );

      await t.step(
        "a SIGKILLed holder on one mount is broken from another only once seen unchanged for the TTL",
        async () => {
          const marker = `${local.path}/holding-k`;
          const acquired = `${local.path}/acquired-k`;
          const holder = spawnMlagent(lockRunSh("venv:killed", `touch '${marker}'; exec sleep 30`), {
            env: vars(0),
            host: "host-a",
            detached: true,
          });
          await waitUntil("host-a holds the lock", () => fileExists(marker));
          const before = Number((await readOr(`${fs.export}/venvs/killed.lock.fence`)).trim());
          Deno.kill(-holder.pid, "SIGKILL");
          const killedAt = Date.now();
          const waiter = spawnMlagent(
            lockRunSh("venv:killed", `echo "$MLAGENT_LOCK_FENCING" > '${acquired}'`),
            { env: vars(2), host: "host-c" },
          );
          await waitUntil("host-c acquires", async () => (await readOr(acquired)).trim() !== "", 20_000);
          const waited = Date.now() - killedAt;
          const w = await waiter.done;
          assert.equal(w.code, 0, w.stderr);
          assert.ok(waited >= 1_800, `host-c got in ${waited} ms after the kill, before the TTL (2 s)`);
          assert.match(
            w.stderr,
            /broke stale lock "venv:killed" \(stale-expired: no change from host-a seen here/,
          );
          assert.ok(
            Number((await readOr(acquired)).trim()) > before,
            "fencing grows past the broken holder's",
          );
          await holder.done;
        },
      );
    },
  });
}
