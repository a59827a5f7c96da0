import * as React from 'react';

import { controlProps } from './controlProps';
import { Field } from './Field';
import { useId } from './ids';

/** A labelled select; an option is a value that is its own label, or both. */
export function SelectField(props: {
  label: string;
  value: string;
  onChange: (value: string) => void;
  options: (string | { value: string; label: string })[];
  hint?: string;
  disabled?: boolean;
  name?: string;
}): JSX.Element {
  const id = useId();
  return (
    <Field label={props.label} id={id} hint={props.hint}>
      <select {...controlProps(id, props)} className="jp-BackendAI-select">
        {props.options.map(o => {
          const opt = typeof o === 'string' ? { value: o, label: o } : o;
          return (
            <option key={opt.value} value={opt.value}>
              {opt.label}
            </option>
          );
        })}
      </select>
    </Field>
  );
}
