/**
 * Charts as plain SVG (no chart library): a ring gauge for used against allocatable, and a
 * daily bar chart. Colours are JupyterLab theme variables, so both follow light and dark.
 * Each chart is an image with a text alternative, and the bar chart can show its numbers as
 * a table.
 */
import React from 'react';

const TAU = Math.PI * 2;

function arc(cx: number, cy: number, r: number, fraction: number): string {
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

/**
 * Used against allocatable as a ring. `total` Infinity means no limit: the ring stays empty and
 * the text says "no limit".
 */
export function Gauge(props: {
  label: string;
  used: number;
  total: number;
  format: (value: number) => string;
  /** The unit after a number: one word, or [singular, plural] ("1 core", "2 cores"). */
  unit?: string | [string, string];
  detail?: string;
  id?: string;
}): JSX.Element {
  const { used, total } = props;
  const limited = Number.isFinite(total);
  const fraction = limited ? (total > 0 ? used / total : used > 0 ? 1 : 0) : 0;
  const level = fraction >= 0.9 ? 'high' : fraction >= 0.7 ? 'mid' : 'low';
  const usedText = props.format(used);
  const totalText = limited ? props.format(total) : 'no limit';
  const usedUnit = withUnit(usedText, props.unit);
  const totalUnit = withUnit(totalText, props.unit);
  const alt = limited
    ? `${props.label}: ${usedUnit} used of ${totalUnit} (${Math.round(fraction * 100)}%)`
    : `${props.label}: ${usedUnit} used, no limit`;
  return (
    <figure className="jp-BackendAI-gauge" data-gauge={props.id || props.label}>
      <svg viewBox="0 0 120 120" width="120" height="120" role="img" aria-label={alt}>
        <title>{alt}</title>
        <circle className="jp-BackendAI-gauge-track" cx="60" cy="60" r="48" />
        {fraction > 0 && (
          <path
            className={`jp-BackendAI-gauge-bar jp-BackendAI-gauge-${level}`}
            d={fraction >= 1 ? arc(60, 60, 48, 0.9999) : arc(60, 60, 48, fraction)}
          />
        )}
        <text x="60" y="56" textAnchor="middle" className="jp-BackendAI-gauge-value">
          {limited ? `${Math.round(fraction * 100)}%` : usedText}
        </text>
        <text x="60" y="76" textAnchor="middle" className="jp-BackendAI-gauge-sub">
          {limited ? `${usedText} / ${totalText}` : 'no limit'}
        </text>
      </svg>
      <figcaption>
        <span className="jp-BackendAI-gauge-label">{props.label}</span>
        <span className="jp-BackendAI-gauge-numbers">
          {limited ? `${usedUnit} of ${totalUnit}` : `${usedUnit}, no limit`}
        </span>
        {props.detail && <span className="jp-BackendAI-hint">{props.detail}</span>}
      </figcaption>
    </figure>
  );
}

/** `text` (a formatted number) and its unit, singular for exactly 1 ("1 core", "0.5 cores"). */
export function withUnit(text: string, unit?: string | [string, string]): string {
  if (!unit) {
    return text;
  }
  const [one, other] = typeof unit === 'string' ? [unit, unit] : unit;
  return `${text} ${text === '1' ? one : other}`;
}

/** A horizontal bar for tables (an agent's use of its capacity). */
export function Meter(props: { label: string; used: number; total: number; text: string }): JSX.Element {
  const fraction = props.total > 0 && Number.isFinite(props.total) ? Math.min(1, props.used / props.total) : 0;
  return (
    <div className="jp-BackendAI-meter" title={`${props.label}: ${props.text}`}>
      <svg width="60" height="8" role="img" aria-label={`${props.label}: ${props.text}`}>
        <rect className="jp-BackendAI-meter-track" x="0" y="0" width="60" height="8" rx="2" />
        <rect className="jp-BackendAI-meter-bar" x="0" y="0" width={60 * fraction} height="8" rx="2" />
      </svg>
      <span>{props.text}</span>
    </div>
  );
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

/** Daily values as bars, with a y axis in `unit` and a table of the numbers on request. */
export function BarChart(props: {
  title: string;
  /** As the gauge's: one word, or [singular, plural]; the table's column shows the plural. */
  unit: string | [string, string];
  points: IPoint[];
  /** Whole numbers (sessions): the axis has whole steps only. */
  integer?: boolean;
  id?: string;
}): JSX.Element {
  const width = 560;
  const height = 200;
  const left = 48;
  const bottom = 24;
  const top = 10;
  const plotW = width - left - 8;
  const plotH = height - top - bottom;
  const peak = Math.max(0, ...props.points.map(p => p.value));
  const step = niceStep(peak, !!props.integer);
  const max = step * 4;
  const n = Math.max(1, props.points.length);
  const slot = plotW / n;
  const barW = Math.max(1, slot * 0.7);
  const ticks = [0, 1, 2, 3, 4].map(i => i * step);
  const total = props.points.reduce((s, p) => s + p.value, 0);
  const fmt = (v: number) => formatValue(v, props.integer);
  // Ticks are multiples of the step: as many decimals as the step has.
  const exponent = Math.floor(Math.log10(step));
  const quarter = Math.abs(step / 10 ** exponent - 2.5) < 1e-9;
  const tickDigits = Math.max(0, -exponent + (quarter ? 1 : 0));
  const fmtTick = (v: number) => v.toFixed(props.integer ? 0 : tickDigits);
  const labelEvery = Math.ceil(n / 8);
  const plural = typeof props.unit === 'string' ? props.unit : props.unit[1];
  const alt =
    `${props.title}: ${withUnit(fmt(total), props.unit)} over ${props.points.length} days, ` +
    `at most ${withUnit(fmt(peak), props.unit)} on one day`;
  return (
    <figure className="jp-BackendAI-chart" data-chart={props.id || props.title}>
      <figcaption>
        <span className="jp-BackendAI-chart-title">{props.title}</span>
        <span className="jp-BackendAI-hint">total {withUnit(fmt(total), props.unit)}</span>
      </figcaption>
      <svg viewBox={`0 0 ${width} ${height}`} role="img" aria-label={alt} preserveAspectRatio="xMinYMin meet">
        <title>{alt}</title>
        {ticks.map(t => {
          const y = top + plotH - (t / max) * plotH;
          return (
            <g key={t}>
              <line className="jp-BackendAI-chart-grid" x1={left} x2={width - 8} y1={y} y2={y} />
              <text className="jp-BackendAI-chart-axis" x={left - 4} y={y + 3} textAnchor="end">
                {fmtTick(t)}
              </text>
            </g>
          );
        })}
        {props.points.map((p, i) => {
          const h = (p.value / max) * plotH;
          const x = left + i * slot + (slot - barW) / 2;
          return (
            <g key={p.day}>
              <rect className="jp-BackendAI-chart-bar" x={x} y={top + plotH - h} width={barW} height={h}>
                <title>{`${p.day}: ${withUnit(fmt(p.value), props.unit)}`}</title>
              </rect>
              {i % labelEvery === 0 && (
                <text className="jp-BackendAI-chart-axis" x={x + barW / 2} y={height - 8} textAnchor="middle">
                  {p.day.slice(5)}
                </text>
              )}
            </g>
          );
        })}
        <line className="jp-BackendAI-chart-baseline" x1={left} x2={width - 8} y1={top + plotH} y2={top + plotH} />
      </svg>
      <details className="jp-BackendAI-chart-data">
        <summary>Show the numbers</summary>
        <table className="jp-BackendAI-table">
          <caption className="jp-BackendAI-sr">{props.title} per day</caption>
          <thead>
            <tr>
              <th scope="col">Day</th>
              <th scope="col">{plural}</th>
            </tr>
          </thead>
          <tbody>
            {props.points.map(p => (
              <tr key={p.day}>
                <td>{p.day}</td>
                <td>{fmt(p.value)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </details>
    </figure>
  );
}
