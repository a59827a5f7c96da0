import React from 'react';

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
