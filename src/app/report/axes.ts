// Axis scales and tick labels for the report's charts: log where the data span orders of magnitude,
// ticks we choose (powers of 10, of 2, or of 1024 for bytes) and labels in human units, so no axis
// reads `2e+5` or `9.765625 KiB`. Pure functions: the chart specs embed their results.

/** Orders of magnitude (log10 of max / min) over the positive finite values; 0 for fewer than 2. */
export function ordersSpanned(values: readonly number[]): number {
  const pos = values.filter((v) => Number.isFinite(v) && v > 0);
  if (pos.length < 2) return 0;
  return Math.log10(Math.max(...pos) / Math.min(...pos));
}

export type TickStyle = 'decimal' | 'binary' | 'bytes';

export interface AxisScale {
  type: 'log' | 'linear';
  /** Set for log scales: the data's range widened by LOG_PAD on each side (or to a tick close by). */
  domain?: [number, number];
  /** Explicit ticks inside the domain (log scales); linear scales leave them to vega. */
  ticks?: number[];
}

/** Log domains reach this factor beyond the data, so no marker sits on the frame. */
const LOG_PAD = 1.25;

/**
 * A log scale when the positive values span at least `minOrders` orders of magnitude (and none is
 * zero or negative), else linear. Log ticks: powers of 2 over less than 3 decades for 'binary' axes
 * (batch sizes, ratios), powers of 10 otherwise; 1, 10, 100 times B, KiB, MiB, GiB for 'bytes'.
 */
export function chooseScale(values: readonly number[], minOrders: number, style: TickStyle = 'decimal'): AxisScale {
  const finite = values.filter((v) => Number.isFinite(v));
  if (finite.length < 2 || finite.some((v) => v <= 0) || ordersSpanned(finite) < minOrders) return { type: 'linear' };
  let lo = Math.min(...finite) / LOG_PAD;
  let hi = Math.max(...finite) * LOG_PAD;
  const binary = style === 'binary' && Math.log10(hi / lo) < 3;
  const candidates = style === 'bytes' ? byteTicks(lo, hi) : binary ? powers(2, lo, hi) : powers(10, lo, hi);
  if (!binary) {
    // Ticks 10x apart: one just outside the padded range (within 2x) extends it, so both ends are labelled.
    const below = candidates.filter((t) => t <= lo).pop();
    const above = candidates.find((t) => t >= hi);
    if (below != null && lo / below <= 2) lo = below;
    if (above != null && above / hi <= 2) hi = above;
  }
  const ticks = candidates.filter((t) => t >= lo && t <= hi);
  return { type: 'log', domain: [clean(lo), clean(hi)], ticks };
}

/** base^k from the largest at or below lo to the smallest at or above hi. */
function powers(base: number, lo: number, hi: number): number[] {
  const e0 = Math.floor(Math.log(lo) / Math.log(base) + 1e-9);
  const e1 = Math.max(e0 + 1, Math.ceil(Math.log(hi) / Math.log(base) - 1e-9));
  return Array.from({ length: e1 - e0 + 1 }, (_, i) => clean(base ** (e0 + i)));
}

/** 1, 10, 100 x 1024^k bytes, covering [lo, hi]. */
function byteTicks(lo: number, hi: number): number[] {
  const all: number[] = [];
  for (let unit = 1; unit <= 2 ** 60; unit *= 1024) all.push(unit, 10 * unit, 100 * unit);
  const first = Math.max(0, all.findIndex((t) => t > lo * (1 + 1e-9)) - 1);
  const found = all.findIndex((t) => t >= hi * (1 - 1e-9));
  const last = found < 0 ? all.length - 1 : Math.max(first + 1, found);
  return all.slice(first, last + 1);
}

/**
 * Linear ticks from 0 to at least `max`, at a 1-2-5 step in units of `unit` (e.g. 1024 for KiB), so
 * that each tick is a round number of that unit.
 */
export function linearTicks(max: number, unit: number, target = 5): number[] {
  const top = Math.max(max / unit, 1e-12);
  const raw = top / target;
  const k = 10 ** Math.floor(Math.log10(raw));
  const m = raw / k;
  const step = (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * k;
  const n = Math.ceil(top / step - 1e-9);
  return Array.from({ length: n + 1 }, (_, i) => clean(i * step * unit));
}

/** Rounds away binary noise (10 ** -1 = 0.1, not 0.1000000000000000055). */
function clean(v: number): number {
  return Number(v.toPrecision(12));
}

/** Milliseconds as '500 µs', '20 ms', '1.5 s', '1000 s' (at most 3 significant digits). */
export function formatMs(ms: number): string {
  if (ms >= 1000) return `${short(ms / 1000)} s`;
  if (ms >= 1) return `${short(ms)} ms`;
  if (ms > 0) return `${short(ms * 1000)} µs`;
  return '0 ms';
}

/** Bytes as '800 B', '5.38 KiB', '0.98 MiB' (binary units from 1000 of the smaller one, at most 3 significant digits). */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let u = 0;
  while (Math.abs(v) >= 1000 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${short(v)} ${units[u]}`;
}

/** A plain number with at most 3 significant digits, never in exponent notation (1234567 -> '1230000'). */
export function short(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  return Number(v.toPrecision(3)).toLocaleString('en-US', { useGrouping: false, maximumFractionDigits: 20 });
}

/**
 * Vega-Lite axis properties that draw exactly `ticks`, labelled by `format` (a lookup table in a
 * vega expression: the labels come from our formatter, not from d3's number format).
 */
export function tickAxis(ticks: readonly number[], format: (v: number) => string): { values: number[]; labelExpr: string } {
  const labels = ticks.map(format);
  return { values: [...ticks], labelExpr: `${JSON.stringify(labels)}[indexof(${JSON.stringify(ticks)}, datum.value)]` };
}
