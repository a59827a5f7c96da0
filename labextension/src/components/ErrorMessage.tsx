import * as React from 'react';

import { Message } from './Message';

/** The manager's reason for a refusal, if any, announced to screen readers. */
export function ErrorMessage(props: { error?: string; onDismiss?: () => void }): JSX.Element | null {
  return props.error ? (
    <Message kind="error" onDismiss={props.onDismiss}>
      {props.error}
    </Message>
  ) : null;
}
