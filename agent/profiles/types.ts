/**
 * The shape of a profile (validated by agent/profiles.ts against profiles/profile.schema.json).
 * JSON field names are snake_case because profiles are files users write.
 */

export interface CudaVariant {
  /** Wheel tag, e.g. "cu121"; "cpu" for the CPU variant (see cpuVariantOf in agent/compat.ts). */
  name: string;
  /** CUDA version the wheels are built with, e.g. "12.1"; "" for the CPU variant. */
  cuda: string;
  /** Wheel index for this variant, e.g. https://download.pytorch.org/whl/cu121 */
  index_url: string;
}

export interface CpuVariant {
  /** Wheel index of the CPU builds, e.g. https://download.pytorch.org/whl/cpu */
  index_url: string;
}

export interface Stage {
  name: string;
  /** Exact requirements: "name==1.2.3", or a VCS/URL source pinned to a tag or commit. */
  packages: string[];
  /** Index for this stage; the literal "cuda" means the chosen CUDA variant's index. Default: PyPI. */
  index_url?: string;
  extra_index_urls?: string[];
  /** Skip the installer cache; say why in no_cache_reason (e.g. a wheel built locally against the venv's torch). */
  no_cache?: boolean;
  /** Why this stage must not use the node-local cache. */
  no_cache_reason?: string;
  no_build_isolation?: boolean;
  no_deps?: boolean;
  /** Extra environment for the installer (e.g. MAX_JOBS). */
  env?: Record<string, string>;
  /** Why unpinned requirements are allowed in this stage; without it, unpinned ones fail lint. */
  allow_unpinned?: string;
  /** This stage compiles extensions (needs Python.h and nvcc). */
  builds_extensions?: boolean;
  /** Seconds before the installer is killed. */
  timeout_s?: number;
}

export interface VerifyStep {
  name: string;
  /** Python code run with the venv's interpreter; a non-zero exit fails the install. */
  code: string;
  timeout_s?: number;
  /** Run only when the node has a GPU (or the profile requires one). */
  requires_gpu?: boolean;
}

export interface ModelSpec {
  /** owner/name on the Hub. */
  repo: string;
  revision?: string;
  /** Relative to the models root, or absolute. Default: the repo id. */
  local_dir?: string;
  /**
   * "local-dir" (default): under the models root with hf's `--local-dir` records; "hub-cache": the Hugging
   * Face hub cache (HF_HUB_CACHE, default $HF_HOME/hub), where `from_pretrained("org/name")` finds it without
   * a path. local_dir does not apply to the hub cache (lint refuses both).
   */
  layout?: "local-dir" | "hub-cache";
  include?: string[];
  exclude?: string[];
  /** Files that must exist for the model to count as installed. */
  required_files?: string[];
  /** Its size on disk, for the space check when the Hub cannot be asked (offline); the listing wins. */
  size_gib?: number;
}

export interface Profile {
  /** Path or URL of profiles/profile.schema.json, for editors; ignored by mlagent. */
  $schema?: string;
  name: string;
  description: string;
  /** PEP 440 specifier set for the interpreter, e.g. ">=3.10,<3.12". */
  python: string;
  gpu: { required: boolean; min_count?: number; min_memory_mib?: number };
  /** CUDA variants of the PyTorch wheels, any order; install picks the newest the driver supports. */
  cuda_variants: CudaVariant[];
  /**
   * The CPU build of the same wheels, for profiles that run without a GPU: taken when no CUDA variant runs
   * on the node (no driver, or one too old), instead of multi-GB CUDA wheels that would only run on the CPU.
   * Ignored when the profile requires a GPU.
   */
  cpu_variant?: CpuVariant;
  /** Any stage builds extensions (needs headers and nvcc). */
  builds_extensions: boolean;
  /** Free disk needed where the venv and cache live, GiB. */
  disk_gib: number;
  stages: Stage[];
  verify: VerifyStep[];
  models: ModelSpec[];
  /** Where each pin came from (free text per package or stage). */
  sources?: Record<string, string>;
}
