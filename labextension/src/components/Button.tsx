import * as React from 'react';

export type ButtonKind = 'accept' | 'warn' | 'reject' | 'plain';

/**
 * A text button with the theme's look. Its text is `label` (which then also names it in
 * title and aria-label unless `title` is given) or its children; `kind` picks the accent
 * (accept: brand, warn: error colour), as do the `accept` and `warn` shorthands.
 */
export function Button(
  props: React.ButtonHTMLAttributes<HTMLButtonElement> & {
    kind?: ButtonKind;
    label?: string;
    accept?: boolean;
    warn?: boolean;
  }
): JSX.Element {
  const { kind, label, accept, warn, className, type, title, children, ...rest } = props;
  const accent = kind || (accept ? 'accept' : warn ? 'warn' : 'plain');
  const named =
    label !== undefined ? { title: title || label, 'aria-label': rest['aria-label'] || title || label } : { title };
  return (
    <button
      type={type || 'button'}
      className={
        'jp-BackendAI-button' + (accent === 'plain' ? '' : ` jp-mod-${accent}`) + (className ? ` ${className}` : '')
      }
      {...rest}
      {...named}
    >
      {label !== undefined ? label : children}
    </button>
  );
}
