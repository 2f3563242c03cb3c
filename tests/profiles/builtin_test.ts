import assert from "node:assert/strict";
import { lintProfile, loadProfile, parseRequirement, type Profile } from "../../agent/profiles/mod.ts";
import { BUILTIN_PROFILES } from "../../profiles/mod.ts";
import { FIXTURES, testEnv } from "../support/env.ts";

const NAMES = Object.keys(BUILTIN_PROFILES);
const load = (name: string) => loadProfile(testEnv(), name);

function pins(p: Profile): Map<string, string> {
  const out = new Map<string, string>();
  for (const s of p.stages) {
    for (const text of s.packages) {
      const r = parseRequirement(text);
      out.set(r.name, r.version ?? `${r.url}@${r.ref}`);
    }
  }
  return out;
}

Deno.test("built-in profiles are lint-clean, without warnings, and keyed by their own name", () => {
  assert.deepEqual(NAMES, ["hunyuan-video-i2v", "morphic-frames-to-video", "yolo"]);
  for (const [name, value] of Object.entries(BUILTIN_PROFILES)) {
    // Unpinned model revisions are a warning until the built-ins are pinned (issue 13); nothing else may show.
    const issues = lintProfile(value, name).filter((i) => !/^\/models\/\d+\/revision$/.test(i.path));
    assert.deepEqual(issues, [], name);
    assert.equal((value as Profile).name, name);
  }
});

Deno.test("built-in profiles say where every stage's pins came from", async () => {
  for (const name of NAMES) {
    const p = await load(name);
    for (const s of p.stages) assert.ok(p.sources?.[s.name], `${name}: stage ${s.name} has no sources entry`);
  }
});

Deno.test("built-in CUDA variants exist for the pinned torch per the PyTorch wheel table", async () => {
  const csv = Deno.readTextFileSync(`${FIXTURES}/compat/pytorch_cuda_wheel_variants.csv`).trim().split(
    "\n",
  );
  const header = csv[0].split(",");
  const table = new Map(
    csv.slice(1).map((line) => {
      const cells = line.split(",");
      return [cells[0], Object.fromEntries(header.map((h, i) => [h, cells[i]]))];
    }),
  );
  const indexes = Deno.readTextFileSync(`${FIXTURES}/compat/pytorch_index_urls.txt`).split("\n")
    .filter((l) => l.startsWith("https://"));
  for (const name of NAMES) {
    const p = await load(name);
    const torch = pins(p).get("torch")!;
    const row = table.get(torch.split(".").slice(0, 2).join("."));
    assert.ok(row, `${name}: torch ${torch} not in the wheel table`);
    for (const v of p.cuda_variants) {
      assert.notEqual(row[v.name], "no", `${name}: torch ${torch} has no ${v.name} wheels`);
      assert.ok(indexes.includes(v.index_url), `${name}: ${v.index_url} is not a PyTorch index`);
    }
  }
});

Deno.test("built-in torch, torchvision and torchaudio pins are released together", async () => {
  const pairs: Record<string, [string, string]> = {
    "2.4.0": ["0.19.0", "2.4.0"],
    "2.5.0": ["0.20.0", "2.5.0"],
    "2.5.1": ["0.20.1", "2.5.1"],
  };
  for (const name of NAMES) {
    const pin = pins(await load(name));
    const [vision, audio] = pairs[pin.get("torch")!];
    assert.equal(pin.get("torchvision"), vision, name);
    if (pin.has("torchaudio")) assert.equal(pin.get("torchaudio"), audio, name);
  }
});

Deno.test("hunyuan-video-i2v keeps every exact pin of the upstream requirements.txt", async () => {
  // Tencent-Hunyuan/HunyuanVideo-I2V requirements.txt on main 1481c1d5 (last changed at d158e1d), its exact pins.
  const upstream = {
    "opencv-python": "4.9.0.80",
    "diffusers": "0.31.0",
    "accelerate": "1.1.1",
    "pandas": "2.0.3",
    "numpy": "1.24.4",
    "einops": "0.7.0",
    "tqdm": "4.66.2",
    "loguru": "0.7.2",
    "imageio": "2.34.0",
    "imageio-ffmpeg": "0.5.1",
    "safetensors": "0.4.3",
    "peft": "0.13.2",
    "transformers": "4.39.3",
    "tokenizers": "0.15.0",
    "deepspeed": "0.15.1",
    "pyarrow": "14.0.1",
    "tensorboard": "2.19.0",
  };
  const pin = pins(await load("hunyuan-video-i2v"));
  for (const [pkg, version] of Object.entries(upstream)) assert.equal(pin.get(pkg), version, pkg);
  assert.equal(pin.get("torch"), "2.4.0");
  assert.equal(pin.get("flash-attn"), "2.6.3");
  assert.match(pin.get("clip")!, /^git\+https:\/\/github\.com\/openai\/CLIP\.git@[0-9a-f]{40}$/);
});

Deno.test("flash-attn stages build without isolation after torch and ninja, with MAX_JOBS", async () => {
  for (
    const [name, version] of [["hunyuan-video-i2v", "2.6.3"], ["morphic-frames-to-video", "2.7.0.post2"]]
  ) {
    const p = await load(name);
    const at = p.stages.findIndex((s) => s.packages.some((x) => parseRequirement(x).name === "flash-attn"));
    const stage = p.stages[at];
    assert.deepEqual(stage.packages, [`flash-attn==${version}`], name);
    assert.equal(stage.no_build_isolation, true, name);
    assert.equal(stage.builds_extensions, true, name);
    assert.match(stage.env?.MAX_JOBS ?? "", /^[1-9][0-9]*$/, name);
    assert.equal(p.builds_extensions, true, name);
    const before = new Set(
      p.stages.slice(0, at).flatMap((s) => s.packages.map((x) => parseRequirement(x).name)),
    );
    for (const dep of ["torch", "ninja", "packaging", "wheel", "setuptools"]) {
      assert.ok(
        before.has(dep),
        `${name}: ${dep}`,
      );
    }
  }
});

Deno.test("GPU profiles verify torchvision's C++ ops and CUDA; yolo needs no GPU and carries no GPU stack", async () => {
  for (const name of ["hunyuan-video-i2v", "morphic-frames-to-video"]) {
    const p = await load(name);
    assert.equal(p.gpu.required, true);
    assert.ok(p.verify.some((v) => v.code.includes("torchvision.ops.nms")), name);
    assert.ok(p.verify.some((v) => v.requires_gpu && v.code.includes("torch.cuda.is_available()")), name);
  }
  const yolo = await load("yolo");
  assert.equal(yolo.gpu.required, false);
  assert.equal(yolo.builds_extensions, false);
  const pin = pins(yolo);
  for (const heavy of ["deepspeed", "vllm", "flash-attn", "xfuser"]) assert.ok(!pin.has(heavy), heavy);
  for (const pkg of ["ultralytics", "fastapi", "uvicorn", "opencv-python-headless"]) {
    assert.ok(pin.has(pkg), pkg);
  }
});

Deno.test("built-in models name the repos the upstream recipes download", async () => {
  const repos = async (name: string) => (await load(name)).models.map((m) => m.repo);
  assert.deepEqual(await repos("hunyuan-video-i2v"), [
    "tencent/HunyuanVideo-I2V",
    "xtuner/llava-llama-3-8b-v1_1-transformers",
    "openai/clip-vit-large-patch14",
  ]);
  assert.deepEqual(await repos("morphic-frames-to-video"), [
    "Wan-AI/Wan2.2-I2V-A14B",
    "morphic/Wan2.2-frames-to-video",
  ]);
  for (const name of NAMES) {
    for (const m of (await load(name)).models) {
      assert.ok((m.required_files ?? []).length > 0, `${name}: ${m.repo}`);
    }
  }
});

Deno.test("built-in verify snippets are valid Python", async () => {
  const snippets: Record<string, string> = {};
  for (const name of NAMES) for (const v of (await load(name)).verify) snippets[`${name}/${v.name}`] = v.code;
  const script =
    "import ast, json, sys\nfor k, code in json.load(sys.stdin).items():\n    ast.parse(code, k)\n";
  const child = new Deno.Command("python3", {
    args: ["-c", script],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  })
    .spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(JSON.stringify(snippets)));
  await w.close();
  const out = await child.output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
});

Deno.test("built-in stages built without isolation come after the build tools they need", async () => {
  for (const name of NAMES) {
    const p = await load(name);
    p.stages.forEach((stage, at) => {
      if (!stage.no_build_isolation) return;
      const before = new Set(
        p.stages.slice(0, at).flatMap((s) => s.packages.map((x) => parseRequirement(x).name)),
      );
      for (const dep of ["setuptools", "wheel", "packaging"]) {
        assert.ok(
          before.has(dep),
          `${name}: stage ${stage.name} builds without isolation before ${dep} is installed`,
        );
      }
    });
  }
});

const pinOf = (p: Profile, name: string) => pins(p).get(name);
/** "1.2.3" >= "1.2.0" by numeric parts. */
const atLeast = (v: string, min: string) => {
  const [a, b] = [v.split(".").map(Number), min.split(".").map(Number)];
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) > (b[i] ?? 0);
  }
  return true;
};

Deno.test("hunyuan-video-i2v pins what xfuser 0.4.0 leaves open, so nothing can move torch 2.4.0", async () => {
  const p = await load("hunyuan-video-i2v");
  const xfuser = p.stages.find((s) => s.name === "xfuser")!;
  // optimum-quanto 0.2.7 requires torch>=2.6.0; 0.2.6 requires torch>=2.4.0.
  assert.deepEqual(xfuser.packages, [
    "xfuser==0.4.0",
    "optimum-quanto==0.2.6",
    "yunchang==0.4.3",
    "distvae==0.0.0b4",
  ]);
  assert.ok(p.verify.some((v) => /\bdeepspeed\b/.test(v.code) && v.name === "imports"));
  assert.ok(
    !/d19e815b/.test(p.sources!.requirements),
    "requirements must not cite the unmerged pull request",
  );
});

Deno.test("built-in models require every file the code loads, at a pinned commit", async () => {
  for (const name of NAMES) {
    for (const m of (await load(name)).models) {
      assert.match(m.revision ?? "", /^[0-9a-f]{40}$/, `${name}: ${m.repo} revision`);
    }
  }
  const files = async (name: string, repo: string) =>
    (await load(name)).models.find((m) => m.repo === repo)!.required_files!;
  const hy = await files("hunyuan-video-i2v", "tencent/HunyuanVideo-I2V");
  for (const f of ["vae/config.json", "vae/pytorch_model.pt"]) {
    assert.ok(hy.includes(`hunyuan-video-i2v-720p/${f}`), f);
  }
  const te = await files("hunyuan-video-i2v", "xtuner/llava-llama-3-8b-v1_1-transformers");
  for (
    const f of [
      "model-00001-of-00004.safetensors",
      "model-00004-of-00004.safetensors",
      "model.safetensors.index.json",
      "preprocessor_config.json",
      "tokenizer.json",
      "tokenizer_config.json",
      "special_tokens_map.json",
      "config.json",
    ]
  ) assert.ok(te.includes(f), f);
  const wan = await files("morphic-frames-to-video", "Wan-AI/Wan2.2-I2V-A14B");
  for (const f of ["spiece.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]) {
    assert.ok(wan.includes(`google/umt5-xxl/${f}`), f);
  }
  for (const half of ["high_noise_model", "low_noise_model"]) {
    assert.ok(wan.includes(`${half}/diffusion_pytorch_model.safetensors.index.json`), half);
    assert.equal(wan.filter((f) => f.startsWith(`${half}/diffusion_pytorch_model-`)).length, 6, half);
  }
  assert.deepEqual(await files("yolo", "Ultralytics/YOLO11"), ["yolo11n.pt"]);
});

Deno.test("morphic-frames-to-video installs what generate.py imports and admits an H100 80GB", async () => {
  const p = await load("morphic-frames-to-video");
  for (const pkg of ["dashscope", "decord", "librosa", "ftfy", "easydict", "einops"]) {
    assert.ok(pinOf(p, pkg), pkg);
    assert.ok(p.verify.some((v) => v.name === "imports" && new RegExp(`\\b${pkg}\\b`).test(v.code)), pkg);
  }
  const H100_80GB_MIB = 81559; // nvidia-smi's total for an H100 80GB HBM3
  assert.ok(p.gpu.min_memory_mib! <= H100_80GB_MIB, `${p.gpu.min_memory_mib} MiB rejects an H100 80GB`);
  assert.ok(p.gpu.min_memory_mib! > 49152, "a 48 GB card must still be refused");
});

Deno.test("yolo's web service pins are past the named CVEs and it has a CPU wheel variant", async () => {
  const p = await load("yolo");
  assert.ok(atLeast(pinOf(p, "fastapi")!, "0.115.3"), "fastapi >= 0.115.3 allows starlette >= 0.40.0");
  assert.ok(atLeast(pinOf(p, "starlette")!, "0.40.0"), "CVE-2024-47874 is fixed in starlette 0.40.0");
  assert.ok(atLeast(pinOf(p, "python-multipart")!, "0.0.18"), "CVE-2024-53981 is fixed in 0.0.18");
  assert.equal(p.cpu_variant?.index_url, "https://download.pytorch.org/whl/cpu");
});

Deno.test("built-in stages use the cache unless they say why not", async () => {
  for (const name of NAMES) {
    for (const s of (await load(name)).stages) {
      if (s.no_cache) {
        assert.ok(s.no_cache_reason, `${name}: stage ${s.name} skips the cache without a reason`);
      }
      if (s.name === "torch") {
        assert.ok(!s.no_cache, `${name}: the torch wheels belong in the node-local cache`);
      }
    }
  }
});
