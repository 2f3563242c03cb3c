/** A strict Prometheus text-format (0.0.4) parser for tests of `status --format prometheus` and `fleet`. */
import assert from "node:assert/strict";

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/**
 * The exposition format as node_exporter's textfile collector reads it: HELP and TYPE at most once per
 * family and before its samples, a family's samples together, valid names, escaped label values, float
 * values, no duplicate series, a final newline. Throws naming the line on any violation.
 */
export function parseExposition(text: string): { samples: Sample[]; types: Map<string, string> } {
  assert.ok(text.endsWith("\n"), "the file ends with a newline");
  const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
  const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
  const types = new Map<string, string>();
  const helps = new Set<string>();
  const finished = new Set<string>();
  const series = new Set<string>();
  const samples: Sample[] = [];
  let current: string | null = null;
  const enter = (family: string, n: number) => {
    if (current !== family) {
      if (finished.has(family)) throw new Error(`line ${n}: family ${family} is split`);
      if (current) finished.add(current);
      current = family;
    }
  };
  text.slice(0, -1).split("\n").forEach((line, i) => {
    const n = i + 1;
    if (line === "") throw new Error(`line ${n}: empty line`);
    if (line.startsWith("#")) {
      const m = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
      if (!m) throw new Error(`line ${n}: bad comment ${line}`);
      const [, kind, name, rest] = m;
      if (!NAME.test(name)) throw new Error(`line ${n}: bad metric name ${name}`);
      enter(name, n);
      if (kind === "HELP") {
        if (helps.has(name)) throw new Error(`line ${n}: second HELP for ${name}`);
        helps.add(name);
      } else {
        if (types.has(name)) throw new Error(`line ${n}: second TYPE for ${name}`);
        if (samples.some((s) => s.name === name)) throw new Error(`line ${n}: TYPE after samples of ${name}`);
        if (!["counter", "gauge", "histogram", "summary", "untyped"].includes(rest)) {
          throw new Error(`line ${n}: bad type ${rest}`);
        }
        types.set(name, rest);
      }
      return;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)( -?\d+)?$/.exec(line);
    if (!m) throw new Error(`line ${n}: not a sample: ${line}`);
    const [, name, , body, raw] = m;
    enter(name, n);
    const labels: Record<string, string> = {};
    if (body) {
      const re = /([^=,]+)="((?:[^"\\]|\\["\\n])*)"(,|$)/y;
      let pos = 0;
      while (pos < body.length) {
        re.lastIndex = pos;
        const lm = re.exec(body);
        if (!lm) throw new Error(`line ${n}: bad labels at ${body.slice(pos)}`);
        if (!LABEL.test(lm[1])) throw new Error(`line ${n}: bad label name ${lm[1]}`);
        if (lm[1] in labels) throw new Error(`line ${n}: label ${lm[1]} twice`);
        labels[lm[1]] = lm[2].replace(/\\(["\\n])/g, (_, c) => (c === "n" ? "\n" : c));
        pos = re.lastIndex;
      }
    }
    const value = raw === "+Inf" ? Infinity : raw === "-Inf" ? -Infinity : raw === "NaN" ? NaN : Number(raw);
    if (!["+Inf", "-Inf", "NaN"].includes(raw) && !/^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(raw)) {
      throw new Error(`line ${n}: bad value ${raw}`);
    }
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
    if (series.has(key)) throw new Error(`line ${n}: duplicate series ${key}`);
    series.add(key);
    samples.push({ name, labels, value });
  });
  for (const s of samples) assert.ok(types.has(s.name), `${s.name} has a TYPE`);
  return { samples, types };
}
