/**
 * A real network filesystem for tests: a private sshd (Debian's openssh-server) on 127.0.0.1 exporting one
 * directory, and N sshfs mounts of it, each a separate client with its own FUSE mount and caches, mounted
 * with NFS-like close-to-open behaviour (attr_timeout=0, entry_timeout=0, auto_cache).
 *
 * ```ts
 * // Needs root, /dev/fuse and the sshfs + openssh-server packages (.ci/run installs them where missing).
 * Deno.test({ name: "...", ignore: !sshfsAvailable(), fn: async () => {
 *   await using fs = await startSshfs({ clients: 3 });
 *   await Deno.writeTextFile(`${fs.mounts[0]}/a`, "x");   // read back through fs.mounts[1], or fs.export
 * }});
 * ```
 * What these mounts do, observed here (Debian 12, OpenSSH 9.2, sshfs 3.7.3; tests/infra/sshfs_test.ts):
 * - flock(2) (and fcntl locks) are local to each mount: a lock through one mount does not exclude another,
 *   as on many NFS and Lustre setups, so cross-host mutual exclusion there needs leases.
 * - link(2) works by default, through OpenSSH's hardlink@openssh.com extension, but every file reads as
 *   st_nlink 1 (SFTP has no link count). With `hardLinks: false` (sshfs -o disable_hardlink, as with an
 *   SFTP server lacking that extension) link(2) fails with EPERM ("Operation not permitted").
 * - O_CREAT|O_EXCL and mkdir are atomic across mounts (EEXIST); rename between two mounts is EXDEV.
 * - /proc/self/mountinfo shows fstype `fuse.sshfs`.
 * Nothing outside the harness's temp dir is changed, except /run/sshd (sshd's privilege separation dir),
 * created when missing and left in place. Dispose unmounts, stops every process it started and removes the dir.
 */
import {
  type Daemon,
  descendantsOf,
  findExecutable,
  freePort,
  isAlive,
  pollUntil,
  runBounded,
  runOk,
  spawnDaemon,
  stopDaemon,
  tailOf,
} from "./daemon.ts";

export interface SshfsOptions {
  /** How many separate sshfs clients mount the export (default 2). */
  clients?: number;
  /** false mounts with `-o disable_hardlink`: link(2) then fails with EPERM (default true). */
  hardLinks?: boolean;
  /** More sshfs `-o` options, e.g. ["reconnect"]. */
  mountOptions?: string[];
}

export interface Sshfs extends AsyncDisposable {
  /** The harness's temp dir (keys, configs, logs, export, mount points). */
  dir: string;
  /** The exported directory as the server sees it (a plain local dir). */
  export: string;
  /** One mount point per client, in order. */
  mounts: string[];
  /** The sshd's port on 127.0.0.1. */
  port: number;
  /** sshd's pid and each sshfs client's, to prove none is left after dispose. */
  pids: number[];
  /** sshd's log (connections accepted, errors). */
  sshdLog(): Promise<string>;
  /** Unmounts, stops sshd and removes `dir`; what `await using` calls. */
  stop(): Promise<void>;
}

/** The NFS-like mount options issue 12 asks for: no attribute or entry caching, data cache dropped on change. */
export const NFS_LIKE_OPTIONS = ["attr_timeout=0", "entry_timeout=0", "auto_cache", "no_contain_symlinks"];

const SSHD = "/usr/sbin/sshd";

/** Why the harness cannot run here, or undefined when it can (root, /dev/fuse, the packages' programs). */
export function sshfsUnavailableReason(): string | undefined {
  if (Deno.uid() !== 0) return "needs root (a private sshd and FUSE mounts)";
  try {
    if (!Deno.statSync("/dev/fuse").isCharDevice) return "/dev/fuse is not a character device";
  } catch {
    return "no /dev/fuse";
  }
  try {
    Deno.statSync(SSHD);
  } catch {
    return `no ${SSHD} (apt-get install openssh-server)`;
  }
  for (const prog of ["sshfs", "ssh", "ssh-keygen"]) {
    if (!findExecutable(prog)) return `no ${prog} on PATH (apt-get install sshfs openssh-client)`;
  }
  if (!fusermount()) return "no fusermount3 or fusermount (apt-get install fuse3)";
  return undefined;
}

/** Whether startSshfs can run here; tests use `ignore: !sshfsAvailable()`. */
export function sshfsAvailable(): boolean {
  return sshfsUnavailableReason() === undefined;
}

function fusermount(): string | undefined {
  return findExecutable("fusermount3") ?? findExecutable("fusermount");
}

/** Mount points (unescaped) of every sshfs mount at or below `dir`, from /proc/self/mountinfo. */
export function sshfsMountsUnder(dir: string): string[] {
  const found: string[] = [];
  for (const line of Deno.readTextFileSync("/proc/self/mountinfo").split("\n")) {
    const m = mountinfoEntry(line);
    if (m && m.fstype === "fuse.sshfs" && (m.mountPoint === dir || m.mountPoint.startsWith(dir + "/"))) {
      found.push(m.mountPoint);
    }
  }
  return found;
}

/** One mountinfo line's mount point and fstype (fields after " - " start with the fstype). */
export function mountinfoEntry(line: string): { mountPoint: string; fstype: string } | undefined {
  const [left, right] = line.split(" - ");
  if (!right) return undefined;
  const mountPoint = left.split(" ")[4]?.replace(
    /\\([0-7]{3})/g,
    (_, o) => String.fromCharCode(parseInt(o, 8)),
  );
  return mountPoint ? { mountPoint, fstype: right.split(" ")[0] } : undefined;
}

/**
 * Kills the mounts' server without unmounting them, as an NFS server dies: every process below sshd (the
 * sessions and their sftp-servers) is stopped, so each call that needs the server waits for ever. The
 * returned function lets them go on (safe to call twice); the test calls it before its sshfs is disposed.
 * After `rescueMs` the server comes back by itself: a process stuck in the mount cannot even be killed, so a
 * regression then fails the test's time checks instead of hanging the suite.
 */
export function freezeServer(fs: Sshfs, rescueMs = 15_000): () => void {
  const frozen = descendantsOf(fs.pids[0]);
  if (frozen.length === 0) throw new Error("no sftp-server runs below sshd: nothing to freeze");
  for (const p of frozen) Deno.kill(p, "SIGSTOP");
  const thaw = () => {
    clearTimeout(rescue);
    for (const p of frozen) {
      try {
        Deno.kill(p, "SIGCONT");
      } catch { /* gone */ }
    }
  };
  const rescue = setTimeout(thaw, rescueMs);
  return thaw;
}

/** Starts sshd and mounts `clients` sshfs clients of its export; dispose undoes all of it. */
export async function startSshfs(opts: SshfsOptions = {}): Promise<Sshfs> {
  const why = sshfsUnavailableReason();
  if (why) throw new Error(`sshfs harness unavailable: ${why}`);
  const clients = opts.clients ?? 2;
  const dir = await Deno.makeTempDir({ prefix: "mlagent-sshfs-" });
  // Other users (tests that switch uid with setpriv) must reach the mounts; allow_other lets them through FUSE.
  await Deno.chmod(dir, 0o755);
  const exportDir = `${dir}/export`;
  await Deno.mkdir(exportDir, { mode: 0o755 });
  await Deno.chmod(exportDir, 0o755);
  const mounts = Array.from({ length: clients }, (_, i) => `${dir}/mnt${i}`);
  for (const m of mounts) await Deno.mkdir(m);

  let sshd: Daemon | undefined;
  const clientsUp: Daemon[] = [];
  const port = freePort();
  const cleanup = async () => {
    const problems: string[] = [];
    for (const [i, m] of mounts.entries()) {
      if (sshfsMountsUnder(m).length === 0) continue;
      const r = await runBounded([fusermount()!, "-u", m], { timeoutMs: 5000 });
      if (r.code !== 0 || sshfsMountsUnder(m).length > 0) {
        // Busy (a test left a file open there) or the client hung: detach it lazily instead.
        const lazy = await runBounded(["umount", "-l", m], { timeoutMs: 5000 });
        if (lazy.code !== 0) problems.push(`cannot unmount ${m}: ${lazy.stderr.trim() || r.stderr.trim()}`);
      }
      // sshfs -f exits once unmounted; give it a moment before stopping it by force.
      const client = clientsUp[i];
      if (client) await Promise.race([client.exited, new Promise((r) => setTimeout(r, 1000))]);
    }
    for (const c of clientsUp) await stopDaemon(c, 1000);
    if (sshd) await stopDaemon(sshd);
    const left = [...clientsUp, ...(sshd ? [sshd] : [])].filter((d) => isAlive(d.pid));
    if (left.length) problems.push(`still running: ${left.map((d) => `${d.name} pid ${d.pid}`).join(", ")}`);
    // Never recurse into a mount that is still there: that would delete the export through it.
    if (sshfsMountsUnder(dir).length === 0) await Deno.remove(dir, { recursive: true }).catch(() => {});
    else problems.push(`left ${dir} in place: still mounted`);
    if (problems.length) throw new Error(`sshfs harness cleanup: ${problems.join("; ")}`);
  };

  try {
    await runOk([
      "ssh-keygen",
      "-q",
      "-t",
      "ed25519",
      "-N",
      "",
      "-C",
      "mlagent-test-host",
      "-f",
      `${dir}/host_key`,
    ]);
    await runOk([
      "ssh-keygen",
      "-q",
      "-t",
      "ed25519",
      "-N",
      "",
      "-C",
      "mlagent-test-client",
      "-f",
      `${dir}/client_key`,
    ]);
    const clientPub = (await Deno.readTextFile(`${dir}/client_key.pub`)).trim();
    // restrict: no shell, no forwarding; the sftp subsystem still runs.
    await Deno.writeTextFile(`${dir}/authorized_keys`, `restrict ${clientPub}\n`, { mode: 0o600 });
    await Deno.writeTextFile(
      `${dir}/sshd_config`,
      [
        `Port ${port}`,
        "ListenAddress 127.0.0.1",
        `HostKey ${dir}/host_key`,
        `AuthorizedKeysFile ${dir}/authorized_keys`,
        `PidFile ${dir}/sshd.pid`,
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        // The keys live in a temp dir, not a home dir with the modes sshd insists on.
        "StrictModes no",
        "PrintMotd no",
        // Many clients connect at once; the default (10:30:100) starts dropping unauthenticated ones at 10.
        "MaxStartups 100",
        "Subsystem sftp internal-sftp",
        "",
      ].join("\n"),
    );
    // sshd's privilege separation dir; the package's init script would create it, and there is none here.
    await Deno.mkdir("/run/sshd", { recursive: true, mode: 0o755 });
    // sshd re-executes itself per connection, so it must be started by absolute path.
    sshd = await spawnDaemon("sshd", [SSHD, "-D", "-e", "-f", `${dir}/sshd_config`], `${dir}/sshd.log`);
    const daemon = sshd;
    await pollUntil(async () => {
      if (daemon.hasExited()) throw new Error(`sshd exited at start:\n${await tailOf(daemon.log)}`);
      try {
        (await Deno.connect({ hostname: "127.0.0.1", port })).close();
        return true;
      } catch {
        return undefined;
      }
    }, {
      timeoutMs: 10_000,
      onTimeout: async () =>
        new Error(`sshd not listening on 127.0.0.1:${port} after 10 s:\n${await tailOf(daemon.log)}`),
    });

    const options = [
      ...NFS_LIKE_OPTIONS,
      // Root mounts; allow_other lets tests running as other uids use the mounts too.
      "allow_other",
      `port=${port}`,
      `IdentityFile=${dir}/client_key`,
      "IdentitiesOnly=yes",
      "StrictHostKeyChecking=no",
      "UserKnownHostsFile=/dev/null",
      "BatchMode=yes",
      "LogLevel=ERROR",
      ...(opts.hardLinks === false ? ["disable_hardlink"] : []),
      ...(opts.mountOptions ?? []),
    ];
    // Each client in the foreground (-f) so the harness owns its process; -F /dev/null ignores ~/.ssh/config.
    for (const [i, m] of mounts.entries()) {
      clientsUp.push(
        await spawnDaemon(
          `sshfs client ${i}`,
          ["sshfs", "-f", "-F", "/dev/null", "-o", options.join(","), `root@127.0.0.1:${exportDir}`, m],
          `${dir}/sshfs${i}.log`,
        ),
      );
    }
    for (const [i, m] of mounts.entries()) {
      const client = clientsUp[i];
      await pollUntil(async () => {
        if (sshfsMountsUnder(m).includes(m)) return true;
        if (client.hasExited()) {
          throw new Error(
            `sshfs client ${i} exited before mounting ${m}:\n${await tailOf(
              client.log,
            )}\nsshd:\n${await tailOf(
              `${dir}/sshd.log`,
            )}`,
          );
        }
        return undefined;
      }, {
        timeoutMs: 15_000,
        onTimeout: async () =>
          new Error(`sshfs client ${i} did not mount ${m} within 15 s:\n${await tailOf(client.log)}`),
      });
    }
  } catch (e) {
    await cleanup().catch(() => {});
    throw e;
  }

  let stopped: Promise<void> | undefined;
  const stop = () => (stopped ??= cleanup());
  return {
    dir,
    export: exportDir,
    mounts,
    port,
    pids: [sshd!.pid, ...clientsUp.map((c) => c.pid)],
    sshdLog: () => Deno.readTextFile(`${dir}/sshd.log`),
    stop,
    [Symbol.asyncDispose]: stop,
  };
}
