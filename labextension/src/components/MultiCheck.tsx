import * as React from 'react';

import { useId } from './ids';

/** Checkboxes for a set of names (groups, domains...), in a labelled fieldset. */
export function MultiCheck(props: {
  legend: string;
  options: string[];
  value: string[];
  onChange: (value: string[]) => void;
  empty?: string;
}): JSX.Element {
  const base = useId('multi');
  return (
    <fieldset className="jp-BackendAI-fieldset">
      <legend>{props.legend}</legend>
      {props.options.length === 0 && <div className="jp-BackendAI-hint">{props.empty || 'none'}</div>}
      {props.options.map((option, i) => (
        <div className="jp-BackendAI-check" key={option}>
          <input
            type="checkbox"
            id={`${base}-${i}`}
            checked={props.value.includes(option)}
            onChange={e =>
              props.onChange(e.target.checked ? [...props.value, option] : props.value.filter(v => v !== option))
            }
          />
          <label htmlFor={`${base}-${i}`}>{option}</label>
        </div>
      ))}
    </fieldset>
  );
}
