import * as React from 'react';

import { ITextFieldProps, TextField } from './TextField';

/** A number field; `min` is 0 unless given. */
export function NumberField(props: Omit<ITextFieldProps, 'type'>): JSX.Element {
  return <TextField type="number" min={0} {...props} />;
}
