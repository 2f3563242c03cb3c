/**
 * Progress the way uv, pip and `hf` show it. On a terminal: one line per active transfer or stage, redrawn
 * in place (a spinner and the elapsed time where there is no fraction), with log lines printed above it.
 * Off a terminal (a batch log, a pipe): never a redraw, but a plain line every 10% or every 30 s, so a job's
 * log shows life without drowning in it. Nothing with --quiet or --no-progress.
 */

export interface ProgressRow {
  /** What is happening now, after the row's label: "1.2 GiB/4.0 GiB 210 MiB/s ETA 14s". */
  update(text: string, fraction?: number): void;
  /** Ends the row; `final` (if any) is logged as a normal line. */
  done(final?: string): void;
}

export interface Progress {
  row(label: string): ProgressRow;
}

/** The board that owns the terminal's last lines: every other stderr line goes through printLine. */
export interface Board extends Progress {
  /** Prints a log line above the live rows (erasing and redrawing them on a terminal). */
  printLine(line: string): void;
}

export interface BoardDeps {
  /** Raw stderr output: no newline added. */
  writeRaw(text: string): void;
  /** A heartbeat or final line, as the log prints info (so --quiet and captured logs apply). */
  info(line: string): void;
  isTerminal: boolean;
  /** False with --quiet, --no-progress: rows show nothing (final lines still go to info). */
  enabled: boolean;
  now(): number;
  every(ms: number, fn: () => void): () => void;
}

const SPINNER = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
const HEARTBEAT_MS = 30_000;
const REDRAW_MS = 120;

interface RowState {
  label: string;
  text: string;
  fraction: number | undefined;
  started: number;
  lastLine: number;
  lastDecile: number;
}

/** "1m05s", "12s". */
export function formatElapsed(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
}

export function makeBoard(deps: BoardDeps): Board {
  const rows = new Set<RowState>();
  let drawn = 0;
  let frame = 0;
  let stopTicker: (() => void) | null = null;
  const live = deps.enabled && deps.isTerminal;
  const render = (r: RowState) => {
    const spin = r.fraction === undefined ? `${SPINNER[frame % SPINNER.length]} ` : "";
    const took = r.fraction === undefined ? ` (${formatElapsed(deps.now() - r.started)})` : "";
    return `${spin}${r.label}${r.text ? ` ${r.text}` : ""}${took}`;
  };
  /** Moves to the first row and clears every drawn line, leaving the cursor there. */
  const erase = () => {
    if (!drawn) return "";
    let out = `\x1b[${drawn}A`;
    for (let i = 0; i < drawn; i++) out += "\r\x1b[2K\n";
    out += `\x1b[${drawn}A`;
    drawn = 0;
    return out;
  };
  const draw = () => {
    let out = "";
    for (const r of rows) out += `\r\x1b[2K${render(r)}\n`;
    drawn = rows.size;
    return out;
  };
  const tick = () => {
    frame++;
    if (live) {
      deps.writeRaw(erase() + draw());
      return;
    }
    const now = deps.now();
    for (const r of rows) {
      if (now - r.lastLine < HEARTBEAT_MS) continue;
      r.lastLine = now;
      deps.info(
        r.fraction === undefined
          ? `${r.label}: still running after ${formatElapsed(now - r.started)}`
          : `${r.label} ${r.text}`,
      );
    }
  };
  const syncTicker = () => {
    if (!stopTicker && rows.size) stopTicker = deps.every(live ? REDRAW_MS : 1000, tick);
    if (stopTicker && !rows.size) {
      stopTicker();
      stopTicker = null;
    }
  };
  return {
    printLine(line) {
      deps.writeRaw(live && drawn ? `${erase()}${line}\n${draw()}` : `${line}\n`);
    },
    row(label) {
      if (!deps.enabled) return { update() {}, done: (final) => final && deps.info(final) };
      const r: RowState = {
        label,
        text: "",
        fraction: undefined,
        started: deps.now(),
        lastLine: deps.now(),
        lastDecile: 0,
      };
      rows.add(r);
      syncTicker();
      return {
        update(text, fraction) {
          r.text = text;
          r.fraction = fraction;
          if (live || fraction === undefined) return;
          const decile = Math.floor(Math.min(1, Math.max(0, fraction)) * 10);
          if (decile > r.lastDecile && decile < 10) {
            r.lastDecile = decile;
            r.lastLine = deps.now();
            deps.info(`${label} ${text}`);
          }
        },
        done(final) {
          if (!rows.delete(r)) return;
          if (live) deps.writeRaw(erase() + draw());
          if (final) deps.info(final);
          syncTicker();
        },
      };
    },
  };
}

/** Progress that shows nothing (tests that do not look at it). */
export const NO_PROGRESS: Progress = { row: () => ({ update() {}, done() {} }) };
