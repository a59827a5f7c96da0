/**
 * The arithmetic of the console's charts (pure, tested with jest): ring arcs, units, grid
 * steps and axis values.
 */

const TAU = Math.PI * 2;

/** A ring's arc from twelve o'clock for `fraction` of the circle, as an SVG path. */
export function arc(cx: number, cy: number, r: number, fraction: number): string {
  const f = Math.max(0, Math.min(fraction, 0.9999));
  const start = -Math.PI / 2;
  const end = start + TAU * f;
  const large = f > 0.5 ? 1 : 0;
  const x0 = cx + r * Math.cos(start);
  const y0 = cy + r * Math.sin(start);
  const x1 = cx + r * Math.cos(end);
  const y1 = cy + r * Math.sin(end);
  return `M ${x0} ${y0} A ${r} ${r} 0 ${large} 1 ${x1} ${y1}`;
}

/** `text` (a formatted number) and its unit, singular for exactly 1 ("1 core", "0.5 cores"). */
export function withUnit(text: string, unit?: string | [string, string]): string {
  if (!unit) {
    return text;
  }
  const [one, other] = typeof unit === 'string' ? [unit, unit] : unit;
  return `${text} ${text === '1' ? one : other}`;
}

export interface IPoint {
  day: string; // YYYY-MM-DD
  value: number;
}

/** A round step for four grid lines above `max` (whole numbers only when `integer`). */
export function niceStep(max: number, integer: boolean): number {
  const raw = max / 4;
  if (!(raw > 0)) {
    return integer ? 1 : 0.25;
  }
  const power = 10 ** Math.floor(Math.log10(raw));
  let step = 10 * power;
  for (const f of [1, 2, 2.5, 5, 10]) {
    if (f * power >= raw) {
      step = f * power;
      break;
    }
  }
  return integer ? Math.max(1, Math.ceil(step)) : step;
}

/** A value for people with three significant digits at most: 0.0123, 1.5, 240. */
export function formatValue(value: number, integer = false): string {
  if (integer || value === 0 || Math.abs(value) >= 100) {
    return String(Math.round(value));
  }
  return String(Number(value.toPrecision(3)));
}
