/**
 * The runner's sessions: every child gets a session of its own (a timeout kills its whole group), except the
 * system's own leaf programs asked for with LEAF, which start directly; a wrapper of the same name elsewhere
 * on PATH still gets its session, so its children go with it.
 */
import assert from "node:assert/strict";
import { LEAF } from "../../agent/core/run.ts";
import { processesWithVar } from "../support/daemon.ts";
import { hermeticVars, tempDir, testEnv } from "../support/env.ts";

/** Field 6 of /proc/PID/stat: the session id. */
function sessionOf(pid: number | "self"): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[3]);
}

/** Reads the child's session 100 ms after it started (setsid(1) makes the session just after the spawn). */
function sessionLater(into: { sid?: number }) {
  return {
    onSpawn: (c: { pid: number }) =>
      void setTimeout(() => {
        into.sid = sessionOf(c.pid);
      }, 100),
  };
}

Deno.test("a LEAF run of a system program starts in mlagent's session; any other child in its own", async () => {
  const env = testEnv({ vars: hermeticVars({ PATH: "/usr/bin:/bin" }) });
  // sleep, found in /usr/bin as stat is, lives long enough for its session to be read.
  const plain: { sid?: number } = {};
  assert.equal((await env.run(["sleep", "0.3"], sessionLater(plain))).kind, "exited");
  assert.notEqual(plain.sid, undefined);
  assert.notEqual(plain.sid, sessionOf("self"), "a child gets a session of its own");
  const leaf: { sid?: number } = {};
  assert.equal((await env.run(["sleep", "0.3"], { ...LEAF, ...sessionLater(leaf) })).kind, "exited");
  assert.equal(leaf.sid, sessionOf("self"), "a system leaf starts directly, in our session");
});

Deno.test("a LEAF program that PATH finds outside /usr/bin and /bin (a wrapper) keeps its session: a timeout takes its children too", async () => {
  await using d = await tempDir();
  const marker = crypto.randomUUID();
  // A site's `stat` wrapper that starts a child and hangs, as a stat on a dead mount would.
  await Deno.writeTextFile(`${d.path}/stat`, "#!/bin/sh\nsleep 30\n", { mode: 0o755 });
  const env = testEnv({ vars: hermeticVars({ PATH: `${d.path}:/usr/bin:/bin`, RUN_TEST_MARK: marker }) });
  const wrapper: { sid?: number } = {};
  const r = await env.run(["stat", "-c", "%F", "--", "/"], {
    ...LEAF,
    timeoutMs: 500,
    ...sessionLater(wrapper),
  });
  assert.equal(r.kind, "timed-out");
  assert.notEqual(wrapper.sid, undefined);
  assert.notEqual(wrapper.sid, sessionOf("self"));
  const end = Date.now() + 5000;
  while (processesWithVar("RUN_TEST_MARK", marker).length && Date.now() < end) {
    await new Promise((res) => setTimeout(res, 25));
  }
  assert.deepEqual(processesWithVar("RUN_TEST_MARK", marker), [], "the wrapper's sleep went with it");
});
