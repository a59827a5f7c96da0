import * as React from 'react';

import { Button } from './Button';
import { Field } from './Field';
import { useId } from './ids';

/** A read-only text (a key) with a copy button. */
export function CopyText(props: { label: string; value: string; rows?: number }): JSX.Element {
  const id = useId();
  const [copied, setCopied] = React.useState(false);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(props.value);
      setCopied(true);
    } catch {
      const el = document.getElementById(id) as HTMLTextAreaElement | null;
      el?.select();
    }
  };
  return (
    <Field label={props.label} id={id}>
      <textarea
        id={id}
        className="jp-mod-styled jp-BackendAI-key"
        readOnly
        rows={props.rows || 3}
        value={props.value}
      />
      <div className="jp-BackendAI-toolbar">
        <Button onClick={copy} aria-label={`Copy ${props.label}`}>
          Copy
        </Button>
        <span role="status" className="jp-BackendAI-hint">
          {copied ? 'Copied.' : ''}
        </span>
      </div>
    </Field>
  );
}
