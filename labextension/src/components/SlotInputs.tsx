import React from 'react';

import { SLOT_FIELDS, SlotForm } from '../slots';
import { TextField } from './TextField';

/** A text field per editable slot; a blank field means `blankMeans`. */
export function SlotInputs(props: {
  form: SlotForm;
  onChange: (form: SlotForm) => void;
  blankMeans: string;
  prefix?: string;
}): JSX.Element {
  return (
    <div className="jp-BackendAI-grid">
      {SLOT_FIELDS.map(f => (
        <TextField
          key={f.slot}
          label={`${props.prefix || ''}${f.label}`}
          name={f.slot}
          value={props.form[f.slot] || ''}
          placeholder={`${f.placeholder}; blank: ${props.blankMeans}`}
          onChange={value => props.onChange({ ...props.form, [f.slot]: value })}
        />
      ))}
    </div>
  );
}
