import React from 'react';

import { formatValue, IPoint, niceStep, withUnit } from '../charts';

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
