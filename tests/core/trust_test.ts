/**
 * Other local users: directories another user owns or can write into are refused before mlagent reads or
 * runs anything in them, and a missing HOME is taken from the password database, never guessed under /tmp.
 * Real directories, chowned to other uids (the tests run as root).
 */
import assert from "node:assert/strict";
import { untrustedDirProblem } from "../../agent/core/trust.ts";
import { home } from "../../agent/core/paths.ts";
import { MlagentError } from "../../agent/core/errors.ts";
import { groupHasOthers, parseGroup, parsePasswd } from "../../agent/core/users.ts";
import { runMlagent } from "../support/cli.ts";
import { hermeticVars, tempDir, testEnv } from "../support/env.ts";

const OTHER = 4242;

async function etcFixture(dir: string): Promise<string> {
  const etc = `${dir}/etc`;
  await Deno.mkdir(etc);
  await Deno.writeTextFile(
    `${etc}/passwd`,
    [
      "root:x:0:0:root:/root:/bin/bash",
      `alice:x:${OTHER}:${OTHER}:Alice:/home/alice:/bin/bash`,
      "bob:x:4243:5000:Bob:/home/bob:/bin/bash",
      "broken line",
      "",
    ].join("\n"),
  );
  await Deno.writeTextFile(
    `${etc}/group`,
    ["root:x:0:", `alice:x:${OTHER}:`, "project:x:5000:bob,carol", "solo:x:6000:bob", ""].join("\n"),
  );
  return etc;
}

Deno.test("parsePasswd() and parseGroup() read the databases and skip malformed lines", () => {
  assert.deepEqual(parsePasswd("root:x:0:0:root:/root:/bin/sh\nnope\nu:x:1:2:U:/h/u:/bin/sh"), [
    { name: "root", uid: 0, gid: 0, home: "/root" },
    { name: "u", uid: 1, gid: 2, home: "/h/u" },
  ]);
  assert.deepEqual(parseGroup("g:x:7:a, b\nbad"), [{ name: "g", gid: 7, members: ["a", "b"] }]);
});

Deno.test("groupHasOthers() tells a user private group from a shared one", async () => {
  await using d = await tempDir();
  const env = testEnv({ etcRoot: await etcFixture(d.path) });
  assert.equal(groupHasOthers(env, OTHER, OTHER), false, "alice's own group");
  assert.equal(groupHasOthers(env, 5000, 4243), true, "project: bob's primary group with carol in it");
  assert.equal(groupHasOthers(env, 6000, 4243), false, "solo lists only bob");
  assert.equal(groupHasOthers(env, 7777, OTHER), true, "an unknown group is assumed shared");
});

Deno.test("untrustedDirProblem() refuses dirs (or parents) another user owns or may write, and accepts sticky and own ones", async () => {
  await using d = await tempDir();
  const env = testEnv({ etcRoot: await etcFixture(d.path) });
  const mk = async (rel: string, mode: number, uid = 0, gid = 0) => {
    const p = `${d.path}/${rel}`;
    await Deno.mkdir(p, { recursive: true });
    await Deno.chmod(p, mode);
    await Deno.chown(p, uid, gid);
    return p;
  };
  await Deno.chmod(d.path, 0o755);
  const own = await mk("own", 0o755);
  const planted = await mk("planted", 0o755, OTHER, OTHER);
  const world = await mk("world", 0o777);
  const sticky = await mk("sticky", 0o1777);
  const shared = await mk("shared", 0o775, 0, 5000);
  const privateGroup = await mk("upg", 0o775, 0, 0);
  const rows: [string, RegExp | null][] = [
    [`${own}/venvs`, null],
    [`${planted}/venvs`, /planted is owned by alice \(uid 4242\), not by you/],
    [planted, /owned by alice/],
    [`${world}/venvs`, /world is writable by every user \(mode 777\) without the sticky bit/],
    [`${sticky}/venvs`, null],
    [`${shared}/venvs`, /shared is writable by its group \(mode 775\), which has other members/],
    [`${privateGroup}/venvs`, null],
  ];
  for (const [path, want] of rows) {
    const why = untrustedDirProblem(env, path);
    if (want) assert.match(why ?? "", want, path);
    else assert.equal(why, null, path);
  }
  // A dir inside a sticky dir that another user created first is theirs: refused.
  const squatted = await mk("sticky/mlagent-0", 0o755, OTHER, OTHER);
  assert.match(untrustedDirProblem(env, `${squatted}/venvs`) ?? "", /owned by alice/);
});

Deno.test("home() takes HOME, else the passwd entry, and refuses to guess", async () => {
  await using d = await tempDir();
  const etcRoot = await etcFixture(d.path);
  const vars = hermeticVars({ HOME: undefined });
  assert.equal(home(testEnv({ etcRoot, vars: { ...vars, HOME: "/home/x" } })), "/home/x");
  assert.equal(home(testEnv({ etcRoot, vars, uid: OTHER })), "/home/alice");
  assert.throws(
    () => home(testEnv({ etcRoot, vars, uid: 9999 })),
    (e) =>
      e instanceof MlagentError && e.exitCode === 2 &&
      /HOME is unset and uid 9999 has no entry/.test(e.message),
  );
});

Deno.test("install and status refuse a venv root another user planted (exit 2 naming it and its owner)", async () => {
  await using d = await tempDir();
  await Deno.chmod(d.path, 0o755);
  const planted = `${d.path}/planted`;
  await Deno.mkdir(`${planted}/venvs/yolo/bin`, { recursive: true });
  await Deno.chown(planted, OTHER, OTHER);
  const vars = { MLAGENT_ROOT: `${planted}/venvs`, MLAGENT_STATE_DIR: `${d.path}/state` };
  for (const argv of [["install", "yolo", "--dry-run", "--no-models"], ["status"], ["verify", "yolo"]]) {
    const r = await runMlagent(argv, { env: vars });
    assert.equal(r.code, 2, `${argv.join(" ")}: ${r.stderr}`);
    assert.match(
      r.stderr,
      /refusing the venv( root)? \S*planted\S*: \S*planted is owned by uid 4242, not by you/,
    );
    assert.doesNotMatch(r.stderr, /at \S+\.ts:\d+/, "no stack trace");
  }
});
