import * as React from 'react';

import { Message } from './Message';

/** A polite status line for a success, if any. */
export function StatusMessage(props: { text?: string }): JSX.Element | null {
  return props.text ? <Message kind="success">{props.text}</Message> : null;
}
