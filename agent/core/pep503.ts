/** PEP 503's normalized project name: lowercase, runs of "-", "_" and "." as one "-". Cache dirs, index URLs and pins compare by it. */
export function canonicalName(name: string): string {
  return name.toLowerCase().replace(/[-_.]+/g, "-");
}
