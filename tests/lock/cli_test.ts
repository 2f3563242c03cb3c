/**
 * `mlagent lock` at its edges, with real processes and files: long lock names, a bad MLAGENT_LOCK_DIR,
 * waited_for_other, one JSON document while the command prints, shell exit codes, and each subcommand's help.
 */
import assert from "node:assert/strict";
import { LOCK_SUBCOMMANDS, lockSubcommandFlags } from "../../agent/commands/lock.ts";
import { runMlagent } from "../support/cli.ts";
import { tempDir } from "../support/env.ts";
import { fileExists, lockVars, spawnMlagent, waitUntil } from "../support/lock_helpers.ts";

const noStack = (stderr: string) => assert.doesNotMatch(stderr, /\n\s+at |internal error/, stderr);

Deno.test("a lock name of 100 CJK characters (300 bytes) works, on one hashed file every process finds", async () => {
  await using dir = await tempDir();
  const vars = lockVars(dir.path);
  const name = "数".repeat(100);
  const marker = `${dir.path}/holding`;
  const holder = spawnMlagent(["lock", "run", name, "--", "sh", "-c", `touch '${marker}'; exec sleep 10`], {
    env: vars,
  });
  try {
    await waitUntil("the holder runs its command", () => fileExists(marker));
    const busy = await runMlagent(["lock", "run", name, "--no-wait", "--", "true"], { env: vars });
    assert.equal(busy.code, 3, busy.stderr);
    const check = await runMlagent(["lock", "check", name], { env: vars });
    assert.equal(check.code, 3, check.stderr);
    const files = [...Deno.readDirSync(`${dir.path}/locks`)].map((e) => e.name).filter((n) =>
      n.endsWith(".lock")
    );
    assert.equal(files.length, 1, files.join(", "));
    assert.ok(new TextEncoder().encode(files[0]).length <= 128 + 5, files[0]);
    assert.match(files[0], /^数+~[0-9a-f]{16}\.lock$/);
    // The owner record keeps the full name.
    const list = await runMlagent(["lock", "list", "--json"], { env: vars });
    const locks = list.json<{ locks: { owner: { name: string } | null }[] }>().locks;
    assert.equal(locks[0].owner?.name, name);
  } finally {
    holder.child.kill("SIGTERM");
    await holder.done;
  }
  const r = await runMlagent(["lock", "run", name, "--", "sh", "-c", 'printf %s "$MLAGENT_LOCK_NAME"'], {
    env: vars,
  });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, name);
  // The lease mode's longest file names (a claim moved aside, with the host name) fit too.
  const lease = await runMlagent(["lock", "run", name, "--mode", "lease", "--", "true"], { env: vars });
  assert.equal(lease.code, 0, lease.stderr);

  const huge = await runMlagent(["lock", "run", "数".repeat(400), "--", "true"], { env: vars });
  assert.equal(huge.code, 2);
  assert.match(
    huge.stderr,
    /^error: bad lock name "数+\.\.\.": is 1200 bytes long, more than the limit of 1024\n/,
  );
  noStack(huge.stderr);
});

Deno.test("MLAGENT_LOCK_DIR that is a file, under a file, not writable or open to others: exit 2 naming it", async () => {
  await using dir = await tempDir();
  const d = dir.path;
  await Deno.writeTextFile(`${d}/afile`, "x");
  await Deno.mkdir(`${d}/readonly`, { mode: 0o500 });
  await Deno.chmod(`${d}/readonly`, 0o500);
  await Deno.mkdir(`${d}/open`);
  await Deno.chmod(`${d}/open`, 0o777);
  const rows: [string, RegExp][] = [
    [`${d}/afile`, /is a file, not a directory/],
    [`${d}/afile/locks`, new RegExp(`lies under ${d}/afile, which is a file`)],
    [`${d}/readonly`, /is not writable \(mode 500\)/],
    [
      `${d}/open/locks`,
      new RegExp(`${d}/open is writable by every user \\(mode 777\\) without the sticky bit`),
    ],
  ];
  for (const [lockDir, why] of rows) {
    for (const args of [["run", "x", "--", "true"], ["list"], ["check", "x"], ["clear"]]) {
      const r = await runMlagent(["lock", ...args], { env: { ...lockVars(d), MLAGENT_LOCK_DIR: lockDir } });
      assert.equal(r.code, 2, `${lockDir} ${args[0]}: ${r.stderr}`);
      const [first, hint] = r.stderr.trim().split("\n");
      assert.ok(first.startsWith("error: ") && first.includes(lockDir), first);
      assert.match(first, /lock directory \(MLAGENT_LOCK_DIR\)/);
      assert.match(first, why);
      assert.match(hint, /^hint: /);
      noStack(r.stderr);
    }
  }
});

Deno.test("lock run --json: waited_for_other is true for the one that waited, false for the holder", async () => {
  await using dir = await tempDir();
  const vars = lockVars(dir.path);
  const marker = `${dir.path}/first`;
  const first = spawnMlagent(
    ["lock", "run", "w", "--json", "--", "sh", "-c", `touch '${marker}'; sleep 1`],
    { env: vars },
  );
  await waitUntil("the first runs its command", () => fileExists(marker));
  const second = spawnMlagent(["lock", "run", "w", "--json", "--", "true"], { env: vars });
  const [a, b] = await Promise.all([first.done, second.done]);
  assert.equal(a.code, 0, a.stderr);
  assert.equal(b.code, 0, b.stderr);
  const ja = JSON.parse(a.stdout);
  const jb = JSON.parse(b.stdout);
  assert.equal(ja.waited_for_other, false);
  assert.equal(ja.waited_ms, 0);
  assert.equal(jb.waited_for_other, true);
  assert.ok(jb.waited_ms > 100, `${jb.waited_ms}`);
  // A lock taken free, right after someone let it go, was no wait.
  const third = await runMlagent(["lock", "run", "w", "--json", "--", "true"], { env: vars });
  assert.equal(third.json<{ waited_for_other: boolean }>().waited_for_other, false);
});

Deno.test("lock run --json: stdout is one JSON document while the command prints; its stdout goes to stderr", async () => {
  await using dir = await tempDir();
  const vars = lockVars(dir.path);
  const r = await runMlagent(
    ["lock", "run", "j", "--json", "--", "sh", "-c", 'echo "{not json"; echo to-stderr >&2; exit 4'],
    { env: vars },
  );
  assert.equal(r.code, 4, r.stderr);
  const doc = r.json<{ ok: boolean; exit_code: number; name: string }>();
  assert.deepEqual([doc.ok, doc.exit_code, doc.name], [false, 4, "j"]);
  assert.match(r.stderr, /\{not json\n/);
  assert.match(r.stderr, /to-stderr\n/);
  // Without --json the command's stdout is ours, untouched.
  const plain = await runMlagent(["lock", "run", "j", "--", "sh", "-c", "echo hello"], { env: vars });
  assert.equal(plain.stdout, "hello\n");
});

Deno.test("lock run exit codes as a shell: 127 not found, 126 not executable, 128+N killed by signal N", async () => {
  await using dir = await tempDir();
  const vars = lockVars(dir.path);
  const d = dir.path;
  await Deno.writeTextFile(`${d}/script`, "#!/bin/sh\necho hi\n", { mode: 0o644 });
  await Deno.chmod(`${d}/script`, 0o644);
  await Deno.mkdir(`${d}/bin`);
  await Deno.writeTextFile(`${d}/bin/tool`, "#!/bin/sh\n", { mode: 0o644 });
  await Deno.chmod(`${d}/bin/tool`, 0o644);
  const rows: [string, string[], Record<string, string>, number, RegExp | null][] = [
    [
      "not on PATH",
      ["no-such-command-xyz"],
      {},
      127,
      /^error: lock run: command not found: no-such-command-xyz$/,
    ],
    ["a missing path", [`${d}/missing`], {}, 127, /no such file/],
    ["a file without x", [`${d}/script`], {}, 126, /permission denied \(not executable\)/],
    ["on PATH without x", ["tool"], { PATH: `${d}/bin:/usr/bin:/bin` }, 126, /tool is not executable/],
    ["a directory", [d], {}, 126, /is a directory/],
    ["SIGKILL", ["sh", "-c", "kill -KILL $$"], {}, 137, null],
    ["SIGTERM", ["sh", "-c", "kill -TERM $$"], {}, 143, null],
    ["exit 42", ["sh", "-c", "exit 42"], {}, 42, null],
  ];
  for (const [what, cmd, extra, code, line] of rows) {
    for (const json of [false, true]) {
      const r = await runMlagent(["lock", "run", "codes", ...(json ? ["--json"] : []), "--", ...cmd], {
        env: { ...vars, ...extra },
      });
      assert.equal(r.code, code, `${what}: ${r.stderr}`);
      noStack(r.stderr);
      if (line) {
        const lines = r.stderr.trim().split("\n");
        assert.equal(lines.length, 2, `${what}: one line and a hint\n${r.stderr}`);
        assert.match(lines[0], line, what);
        assert.match(lines[1], /^hint: /, what);
      }
      if (json) r.json();
    }
  }
  assert.equal((await runMlagent(["lock", "check", "codes"], { env: vars })).code, 0, "the lock is free");
});

Deno.test("lock help: every subcommand's help lists every flag its parser takes; a typo suggests the subcommand", async () => {
  const main = await runMlagent(["lock", "--help"]);
  assert.equal(main.code, 0);
  for (const sub of LOCK_SUBCOMMANDS) {
    const r = await runMlagent(["lock", sub, "--help"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^Usage: mlagent lock ${sub}`));
    for (const flag of [...lockSubcommandFlags(sub), "--json"]) {
      assert.ok(r.stdout.includes(flag), `lock ${sub} --help lacks ${flag}`);
      assert.ok(main.stdout.includes(flag), `lock --help lacks ${flag}`);
    }
  }
  // A flag of another subcommand is refused, naming the subcommand.
  const wrong = await runMlagent(["lock", "list", "--yes"]);
  assert.equal(wrong.code, 2);
  assert.match(wrong.stderr, /^error: lock list: .*--yes/);
  const typo = await runMlagent(["lock", "lsit"]);
  assert.equal(typo.code, 2);
  assert.match(typo.stderr, /^error: lock: unknown subcommand "lsit"; did you mean "list"\?\nhint: /);
  noStack(typo.stderr);
});
