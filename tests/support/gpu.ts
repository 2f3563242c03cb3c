/** A healthy GPU device record as the nvidia-smi parsers return one, for evaluator tests to vary. */
import type { GpuDevice } from "../../checks/gpu.ts";

export const testGpu = (over: Partial<GpuDevice> = {}): GpuDevice => ({
  index: 0,
  name: "NVIDIA A100-SXM4-80GB",
  uuid: "GPU-x",
  memory_total_mib: 81920,
  memory_used_mib: 0,
  bus_id: null,
  persistence_mode: "enabled",
  mig_mode: "disabled",
  ecc_uncorrected_volatile: 0,
  ecc_uncorrected_aggregate: 0,
  retired_pages_pending: false,
  remapped_rows_pending: false,
  remapped_rows_failure: false,
  errors: [],
  unknown_fields: [],
  mig_devices: [],
  ...over,
});
