import * as React from 'react';

import { errorText } from '../api/request';
import { ErrorMessage } from './ErrorMessage';
import { useId } from './ids';

/** The open dialogs, innermost last: Escape closes only that one. */
const openDialogs: object[] = [];

const FOCUSABLE =
  'a[href], button:not([disabled]), input:not([disabled]), select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex="-1"])';

/** A footer button with the look of JupyterLab's own dialogs. */
function DialogButton(props: {
  label: string;
  kind: 'accept' | 'reject' | 'warn';
  type?: 'button' | 'submit';
  busy?: boolean;
  onClick?: () => void;
}): JSX.Element {
  return (
    <button
      type={props.type || 'button'}
      // A warning is an accept button too, as JupyterLab's Dialog.warnButton.
      className={`jp-Dialog-button jp-mod-styled ${props.kind === 'warn' ? 'jp-mod-accept jp-mod-warn' : `jp-mod-${props.kind}`}`}
      onClick={props.onClick}
      // Not disabled while busy: a disabled button would drop the focus out of the dialog.
      aria-disabled={props.busy || undefined}
    >
      <div className="jp-Dialog-buttonLabel">{props.label}</div>
    </button>
  );
}

/**
 * The extension's one dialog: modal, named by its title, with JupyterLab's dialog look.
 * Escape or Cancel closes it, Enter in a field submits; focus starts on the first field,
 * stays inside while open and returns to where it was afterwards. A failed submit shows its
 * reason and keeps the dialog open. The console renders it in place; `showModal` opens it
 * from code (the side panels' forms, confirmations, messages).
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
  /** Only a close button (a read-only result or a message). */
  closeOnly?: boolean;
  /** The close-only button's label ("Close" unless given). */
  closeLabel?: string;
  /** A class of the dialog's box, for its own layout. */
  className?: string;
  /** The form is not complete yet: the submit button is marked disabled and does nothing. */
  incomplete?: boolean;
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
      '.jp-Dialog-body input:not([disabled]), .jp-Dialog-body select:not([disabled]), .jp-Dialog-body textarea, button'
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
    // A form inside the body (none today) must not submit this one.
    event.stopPropagation();
    if (busy || props.closeOnly || props.incomplete) {
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
  const box = ['jp-Dialog-content', 'jp-BackendAI-dialog'];
  if (props.wide) {
    box.push('jp-BackendAI-dialog-wide');
  }
  if (props.className) {
    box.push(props.className);
  }
  return (
    <div className="jp-Dialog jp-BackendAI-overlay" onKeyDown={onKeyDown}>
      <form
        ref={ref}
        className={box.join(' ')}
        role="dialog"
        aria-modal="true"
        aria-labelledby={titleId}
        onSubmit={submit}
      >
        <div className="jp-Dialog-header">
          <h2 id={titleId} className="jp-BackendAI-dialog-title">
            {props.title}
          </h2>
        </div>
        <div className="jp-Dialog-body jp-BackendAI-dialog-body">
          {props.children}
          <ErrorMessage error={error || props.error} />
        </div>
        <div className="jp-Dialog-footer">
          {props.closeOnly ? (
            <DialogButton label={props.closeLabel || 'Close'} kind="accept" onClick={props.onClose} />
          ) : (
            <>
              <DialogButton label="Cancel" kind="reject" onClick={props.onClose} />
              <DialogButton
                label={busy ? 'Working…' : props.submitLabel}
                kind={props.danger ? 'warn' : 'accept'}
                type="submit"
                busy={busy || props.incomplete}
              />
            </>
          )}
        </div>
      </form>
    </div>
  );
}
