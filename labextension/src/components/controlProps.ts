import * as React from 'react';

/** What a text field and a select share: the id, name, value, hint reference and change. */
export function controlProps(
  id: string,
  props: { name?: string; value: string; disabled?: boolean; hint?: string; onChange: (value: string) => void }
): {
  id: string;
  name?: string;
  value: string;
  disabled?: boolean;
  'aria-describedby'?: string;
  onChange: (e: React.ChangeEvent<HTMLInputElement | HTMLSelectElement>) => void;
} {
  return {
    id,
    name: props.name,
    value: props.value,
    disabled: props.disabled,
    'aria-describedby': props.hint ? `${id}-hint` : undefined,
    onChange: e => props.onChange(e.target.value)
  };
}
