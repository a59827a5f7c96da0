import * as React from 'react';

import { controlProps } from './controlProps';
import { Field } from './Field';
import { useId } from './ids';

export interface ITextFieldProps {
  label: string;
  value: string;
  onChange: (value: string) => void;
  type?: string;
  hint?: string;
  placeholder?: string;
  required?: boolean;
  disabled?: boolean;
  autoComplete?: string;
  min?: number;
  max?: number;
  name?: string;
}

/** A labelled text input. */
export function TextField(props: ITextFieldProps): JSX.Element {
  const id = useId();
  return (
    <Field label={props.label} id={id} hint={props.hint}>
      <input
        {...controlProps(id, props)}
        className="jp-mod-styled jp-BackendAI-input"
        type={props.type || 'text'}
        placeholder={props.placeholder}
        required={props.required}
        autoComplete={props.autoComplete}
        min={props.min}
        max={props.max}
      />
    </Field>
  );
}
