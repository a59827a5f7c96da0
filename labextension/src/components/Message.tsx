import * as React from 'react';

/**
 * An inline message: errors are announced at once (role alert), the others politely (role
 * status); `onDismiss` adds a close button.
 */
export function Message(props: {
  kind: 'error' | 'warning' | 'info' | 'success';
  children: React.ReactNode;
  onDismiss?: () => void;
}): JSX.Element {
  return (
    <div
      className={`jp-BackendAI-message jp-BackendAI-message-${props.kind}`}
      role={props.kind === 'error' ? 'alert' : 'status'}
    >
      {props.onDismiss ? <span>{props.children}</span> : props.children}
      {props.onDismiss && (
        <button
          type="button"
          className="jp-BackendAI-linkButton jp-BackendAI-dismiss"
          onClick={props.onDismiss}
          aria-label="Dismiss the message"
        >
          ×
        </button>
      )}
    </div>
  );
}
