import * as React from 'react';

/** "Loading …" while a first answer is awaited. */
export function Loading(props: { what?: string }): JSX.Element {
  return (
    <div className="jp-BackendAI-loading" role="status" aria-live="polite">
      Loading{props.what ? ` ${props.what}` : ''}…
    </div>
  );
}
