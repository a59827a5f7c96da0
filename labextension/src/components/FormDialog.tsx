import * as React from 'react';

import { errorText } from '../api/request';
import { Button } from './Button';
import { ErrorMessage } from './ErrorMessage';
import { useId } from './ids';

/** The open form dialogs, innermost last: Escape closes only that one. */
const openDialogs: object[] = [];

const FOCUSABLE =
  'a[href], button:not([disabled]), input:not([disabled]), select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex="-1"])';

/**
 * A modal form dialog rendered in place (the console's pages): Escape or Cancel closes it,
 * Enter submits, focus starts on the first field, stays inside while open and returns to
 * where it was afterwards. A failed submit shows its reason and keeps the dialog open.
 */
export function FormDialog(props: {
  title: string;
  submitLabel: string;
  onSubmit: () => Promise<void> | void;
  onClose: () => void;
  children: React.ReactNode;
  danger?: boolean;
  wide?: boolean;
  /** An error from outside (a failed submit shows its own). */
  error?: string;
  /** Hide the submit button (a read-only result). */
  closeOnly?: boolean;
}): JSX.Element {
  const titleId = useId('dialog-title');
  const ref = React.useRef<HTMLFormElement>(null);
  const [busy, setBusy] = React.useState(false);
  const [error, setError] = React.useState('');
  const close = React.useRef(props.onClose);
  close.current = props.onClose;
  React.useEffect(() => {
    const before = document.activeElement as HTMLElement | null;
    const first = ref.current?.querySelector<HTMLElement>(
      'input:not([disabled]), select:not([disabled]), textarea, button'
    );
    first?.focus();
    // Escape closes the topmost dialog wherever the focus is (JupyterLab's own shortcuts
    // listen on the document too, so this listens before them, in the capture phase).
    const token = {};
    openDialogs.push(token);
    const onEscape = (event: KeyboardEvent) => {
      if (event.key === 'Escape' && openDialogs[openDialogs.length - 1] === token) {
        event.preventDefault();
        event.stopPropagation();
        close.current();
      }
    };
    document.addEventListener('keydown', onEscape, true);
    return () => {
      document.removeEventListener('keydown', onEscape, true);
      openDialogs.splice(openDialogs.indexOf(token), 1);
      before?.focus?.();
    };
  }, []);
  const onKeyDown = (event: React.KeyboardEvent) => {
    if (event.key === 'Tab' && ref.current) {
      const items = Array.from(ref.current.querySelectorAll<HTMLElement>(FOCUSABLE));
      if (!items.length) {
        return;
      }
      const first = items[0];
      const last = items[items.length - 1];
      if (event.shiftKey && document.activeElement === first) {
        last.focus();
        event.preventDefault();
      } else if (!event.shiftKey && document.activeElement === last) {
        first.focus();
        event.preventDefault();
      }
    }
  };
  const submit = async (event: React.FormEvent) => {
    event.preventDefault();
    if (busy || props.closeOnly) {
      return;
    }
    setBusy(true);
    setError('');
    try {
      await props.onSubmit();
    } catch (reason) {
      setError(errorText(reason));
    } finally {
      setBusy(false);
    }
  };
  return (
    <div className="jp-BackendAI-overlay" onKeyDown={onKeyDown}>
      <form
        ref={ref}
        className={`jp-BackendAI-dialog ${props.wide ? 'jp-BackendAI-dialog-wide' : ''}`}
        role="dialog"
        aria-modal="true"
        aria-labelledby={titleId}
        onSubmit={submit}
      >
        <h2 id={titleId} className="jp-BackendAI-dialog-title">
          {props.title}
        </h2>
        <div className="jp-BackendAI-dialog-body">{props.children}</div>
        <ErrorMessage error={error || props.error} />
        <div className="jp-BackendAI-dialog-buttons">
          <Button kind="reject" onClick={props.onClose}>
            {props.closeOnly ? 'Close' : 'Cancel'}
          </Button>
          {!props.closeOnly && (
            // Not disabled while busy: a disabled button would drop the focus out of the dialog.
            <Button type="submit" kind={props.danger ? 'warn' : 'accept'} aria-disabled={busy}>
              {busy ? 'Working…' : props.submitLabel}
            </Button>
          )}
        </div>
      </form>
    </div>
  );
}
