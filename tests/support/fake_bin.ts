/**
 * Fake executables (#!/bin/sh) in a temp PATH dir: print a fixture, exit with a code, or hang, and log
 * their argv so a test can prove what was called and how often.
 */

export interface FakeSpec {
  /** File whose bytes go to stdout. */
  stdoutFile?: string;
  stdout?: string;
  stderr?: string;
  exitCode?: number;
  /** Sleep this long before answering (a hanging nvidia-smi). */
  sleepS?: number;
  /** Only answer like this when the argv contains this string; other calls exit 1 ("unsupported"). */
  whenArgsContain?: string;
}

const q = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

/**
 * Writes `dir/name` answering per the first spec whose whenArgsContain matches (a spec without it matches all).
 * Each call appends its argv to `dir/name.calls`.
 */
export async function writeFakeBin(dir: string, name: string, specs: FakeSpec | FakeSpec[]): Promise<string> {
  const list = Array.isArray(specs) ? specs : [specs];
  const path = `${dir}/${name}`;
  const lines = ["#!/bin/sh", `printf '%s\\n' "$*" >> ${q(path + ".calls")}`, 'args=" $* "'];
  for (const s of list) {
    const body: string[] = [];
    if (s.sleepS) body.push(`sleep ${s.sleepS}`);
    if (s.stdoutFile) body.push(`cat ${q(s.stdoutFile)}`);
    if (s.stdout !== undefined) body.push(`printf '%s' ${q(s.stdout)}`);
    if (s.stderr !== undefined) body.push(`printf '%s' ${q(s.stderr)} >&2`);
    body.push(`exit ${s.exitCode ?? 0}`);
    if (s.whenArgsContain !== undefined) {
      lines.push(`case "$args" in *${q(s.whenArgsContain)}*)`, ...body.map((b) => "  " + b), ";;", "esac");
    } else {
      lines.push(...body);
    }
  }
  lines.push("exit 1");
  await Deno.writeTextFile(path, lines.join("\n") + "\n", { mode: 0o755 });
  return path;
}

/** The argv lines a fake was called with. */
export async function fakeCalls(dir: string, name: string): Promise<string[]> {
  try {
    return (await Deno.readTextFile(`${dir}/${name}.calls`)).split("\n").filter(Boolean);
  } catch {
    return [];
  }
}
