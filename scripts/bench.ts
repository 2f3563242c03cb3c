/**
 * `deno task bench`: every benchmark in scripts/bench/*.ts, each printing ratios measured side by side in
 * this one run (machines are shared and noisy; absolute times mean little). Pass names to run a subset:
 * `deno task bench lock download`.
 * Each module exports `run(): Promise<BenchRow[]>`.
 */
export interface BenchRow {
  name: string;
  /** The measured value (ratio or absolute). */
  value: number;
  unit: string;
  /** The target, e.g. "<= 2" or "< 300 ms". */
  target: string;
  met: boolean;
  detail?: string;
}

const dir = new URL("./bench/", import.meta.url);
const names: string[] = [];
for await (const e of Deno.readDir(dir)) {
  if (e.isFile && e.name.endsWith(".ts")) names.push(e.name.slice(0, -3));
}
names.sort();
const wanted = Deno.args.length ? names.filter((n) => Deno.args.includes(n)) : names;
const rows: BenchRow[] = [];
for (const name of wanted) {
  const mod = await import(new URL(`${name}.ts`, dir).href);
  console.error(`bench: ${name} ...`);
  try {
    for (const row of await mod.run() as BenchRow[]) {
      rows.push(row);
      console.log(
        `${row.met ? "ok  " : "MISS"} ${row.name.padEnd(58)} ${String(+row.value.toFixed(3)).padStart(9)} ${
          row.unit.padEnd(6)
        } target ${row.target}${row.detail ? `  (${row.detail})` : ""}`,
      );
    }
  } catch (e) {
    console.log(`FAIL ${name}: ${e instanceof Error ? e.message : e}`);
  }
}
console.log(`${rows.filter((r) => r.met).length} of ${rows.length} targets met`);
