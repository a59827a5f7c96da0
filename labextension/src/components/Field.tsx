import * as React from 'react';

/** A label and its control, tied by id; the hint's id is `<id>-hint` (for aria-describedby). */
export function Field(props: { label: string; id: string; hint?: string; children: React.ReactNode }): JSX.Element {
  return (
    <div className="jp-BackendAI-field">
      <label htmlFor={props.id}>{props.label}</label>
      {props.children}
      {props.hint ? (
        <div className="jp-BackendAI-hint" id={`${props.id}-hint`}>
          {props.hint}
        </div>
      ) : null}
    </div>
  );
}
