/** The machine's real Python interpreters, found the way a user's PATH finds them (pyenv shims resolved). */

export interface FoundPython {
  executable: string;
  version: string;
}

const NAMES = ["python3", "python3.13", "python3.12", "python3.11", "python3.10", "python3.9"];

/** Every distinct interpreter among python3 and python3.9 ... python3.13 on PATH that can create a venv. */
export async function pythonsWithVenv(): Promise<FoundPython[]> {
  const out = new Map<string, FoundPython>();
  for (const name of NAMES) {
    const r = await new Deno.Command(name, {
      args: [
        "-c",
        "import sys, venv, ensurepip; print(sys.executable); print('%d.%d.%d' % sys.version_info[:3])",
      ],
      stdout: "piped",
      stderr: "null",
    }).output().catch(() => null);
    if (!r || r.code !== 0) continue;
    const [exe, version] = new TextDecoder().decode(r.stdout).trim().split("\n");
    const real = await Deno.realPath(exe).catch(() => exe);
    if (!out.has(real)) out.set(real, { executable: real, version });
  }
  return [...out.values()];
}

/** pip's own wheels bundled with each interpreter's ensurepip, newest pip first. */
export async function bundledPipWheels(): Promise<string[]> {
  const wheels: string[] = [];
  for (const py of await pythonsWithVenv()) {
    const r = await new Deno.Command(py.executable, {
      args: [
        "-c",
        "import ensurepip, glob, os; print('\\n'.join(glob.glob(os.path.join(os.path.dirname(ensurepip.__file__), '_bundled', 'pip-*.whl'))))",
      ],
      stdout: "piped",
      stderr: "null",
    }).output().catch(() => null);
    if (r?.code === 0) wheels.push(...new TextDecoder().decode(r.stdout).split("\n").filter(Boolean));
  }
  const version = (w: string) => (w.match(/pip-([\d.]+)-/)?.[1] ?? "0").split(".").map(Number);
  return [...new Set(wheels)].sort((a, b) => {
    const [x, y] = [version(a), version(b)];
    for (let i = 0; i < Math.max(x.length, y.length); i++) {
      if ((x[i] ?? 0) !== (y[i] ?? 0)) return (y[i] ?? 0) - (x[i] ?? 0);
    }
    return 0;
  });
}
