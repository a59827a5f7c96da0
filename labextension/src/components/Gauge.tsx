import React from 'react';

import { arc, withUnit } from '../charts';

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
