/** The machine's real Python interpreters: those on PATH and pyenv's installed versions (its shims hide the rest). */

export interface MachinePython {
  executable: string;
  version: string;
}

const NAMES = ["python3", "python3.13", "python3.12", "python3.11", "python3.10", "python3.9"];

/** A command's stdout, or null when it cannot be started or fails. */
async function stdoutOf(program: string, args: string[]): Promise<string | null> {
  try {
    const r = await new Deno.Command(program, { args, stdout: "piped", stderr: "null" }).output();
    return r.code === 0 ? new TextDecoder().decode(r.stdout) : null;
  } catch {
    return null;
  }
}

/** pyenv's installed versions (PYENV_ROOT, else ~/.pyenv). */
function pyenvPythons(): string[] {
  const root = Deno.env.get("PYENV_ROOT") ?? `${Deno.env.get("HOME")}/.pyenv`;
  try {
    return [...Deno.readDirSync(`${root}/versions`)].map((e) => `${root}/versions/${e.name}/bin/python3`);
  } catch {
    return [];
  }
}

/** Every distinct interpreter that can create a venv (has venv and ensurepip). */
export async function pythonsWithVenv(): Promise<MachinePython[]> {
  const out = new Map<string, MachinePython>();
  for (const name of [...NAMES, ...pyenvPythons()]) {
    const text = await stdoutOf(name, [
      "-c",
      "import sys, venv, ensurepip; print(sys.executable); print('%d.%d.%d' % sys.version_info[:3])",
    ]);
    if (!text) continue;
    const [exe, version] = text.trim().split("\n");
    const real = await Deno.realPath(exe).catch(() => exe);
    if (!out.has(real)) out.set(real, { executable: real, version });
  }
  return [...out.values()];
}

const pipVersion = (wheel: string) => (wheel.match(/pip-([\d.]+)-/)?.[1] ?? "0").split(".").map(Number);

/** pip's own wheels bundled with each interpreter's ensurepip, newest pip first. */
export async function bundledPipWheels(): Promise<string[]> {
  const wheels = new Set<string>();
  for (const py of await pythonsWithVenv()) {
    const text = await stdoutOf(py.executable, [
      "-c",
      "import ensurepip, glob, os; print('\\n'.join(glob.glob(os.path.join(os.path.dirname(ensurepip.__file__), '_bundled', 'pip-*.whl'))))",
    ]);
    for (const w of (text ?? "").split("\n")) if (w) wheels.add(w);
  }
  return [...wheels].sort((a, b) => {
    const [x, y] = [pipVersion(a), pipVersion(b)];
    for (let i = 0; i < Math.max(x.length, y.length); i++) {
      if ((x[i] ?? 0) !== (y[i] ?? 0)) return (y[i] ?? 0) - (x[i] ?? 0);
    }
    return 0;
  });
}
