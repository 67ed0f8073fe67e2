// The text of the benchmark's tables: milliseconds and ratios at a sensible precision, and
// aligned columns (the first left-aligned, the others right-aligned).

/** ms with 2 decimals under 10, 1 under 1000, none above; '-' for nothing measured. */
export function fmtMs(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '-';
  return ms < 10 ? ms.toFixed(2) : ms < 1000 ? ms.toFixed(1) : ms.toFixed(0);
}

/** A ratio as `2.50x` (1 decimal from 10 up); '-' for nothing measured. */
export function fmtRatio(r: number | null | undefined): string {
  if (r === null || r === undefined || !Number.isFinite(r)) return '-';
  return `${r < 10 ? r.toFixed(2) : r.toFixed(1)}x`;
}

/** A text table: the header, a rule, the rows; columns as wide as their widest cell. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(' | ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('-|-'), ...rows.map(line)].join('\n');
}
