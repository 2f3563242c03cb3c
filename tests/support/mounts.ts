/** Small real filesystems for fault tests: a tmpfs of a few MiB stands in for a full scratch disk. */

/** Whether this machine lets the tests mount a tmpfs (root, and mount(8) allowed here). */
export const CAN_MOUNT = (() => {
  try {
    const dir = Deno.makeTempDirSync();
    const ok = new Deno.Command("mount", { args: ["-t", "tmpfs", "-o", "size=1m", "tmpfs", dir] })
      .outputSync().code === 0;
    if (ok) new Deno.Command("umount", { args: [dir] }).outputSync();
    Deno.removeSync(dir);
    return ok;
  } catch {
    return false;
  }
})();
