import { ReactWidget } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';
import * as React from 'react';

import { FormDialog } from './FormDialog';

/**
 * Open a dialog from code: `render` gets `done`, which closes it and settles the promise with
 * its value. The dialog lives in a widget of its own on the page's body, as JupyterLab's do.
 */
export function showModal<T>(render: (done: (value: T) => void) => JSX.Element): Promise<T> {
  return new Promise<T>(resolve => {
    let settled = false;
    const done = (value: T) => {
      if (!settled) {
        settled = true;
        host.dispose();
        resolve(value);
      }
    };
    const host = ReactWidget.create(render(done));
    host.addClass('jp-BackendAI-modalHost');
    Widget.attach(host, document.body);
  });
}

/**
 * A form whose body reports its value, or null while it is incomplete, through `update`:
 * the submit button waits (marked disabled) until the form is complete.
 */
function FormHost<T>(props: {
  title: string;
  okLabel: string;
  warn?: boolean;
  className?: string;
  render: (update: (value: T | null) => void) => JSX.Element;
  done: (value: T | null) => void;
}): JSX.Element {
  const value = React.useRef<T | null>(null);
  const [complete, setComplete] = React.useState(false);
  const body = React.useMemo(
    () =>
      props.render(v => {
        value.current = v;
        // The body reports while it renders: the button follows once that render is over.
        void Promise.resolve().then(() => setComplete(v !== null));
      }),
    // The body is made once; its own state carries the form.
    // eslint-disable-next-line react-hooks/exhaustive-deps
    []
  );
  return (
    <FormDialog
      title={props.title}
      submitLabel={props.okLabel}
      danger={props.warn}
      className={['jp-BackendAI-form', props.className].filter(Boolean).join(' ')}
      incomplete={!complete}
      onSubmit={() => {
        if (value.current !== null) {
          props.done(value.current);
        }
      }}
      onClose={() => props.done(null)}
    >
      {body}
    </FormDialog>
  );
}

/** A form: resolves with the form's value when submitted, null when cancelled. */
export function showForm<T>(
  title: string,
  render: (update: (value: T | null) => void) => JSX.Element,
  okLabel: string,
  options: { warn?: boolean; className?: string } = {}
): Promise<T | null> {
  return showModal<T | null>(done => (
    <FormHost
      title={title}
      okLabel={okLabel}
      warn={options.warn}
      className={options.className}
      render={render}
      done={done}
    />
  ));
}

/** Ask before something that cannot be undone; true when the user agreed. */
export function confirm(title: string, body: React.ReactNode, label: string): Promise<boolean> {
  return showModal<boolean>(done => (
    <FormDialog
      title={title}
      submitLabel={label}
      danger
      className="jp-BackendAI-form"
      onSubmit={() => done(true)}
      onClose={() => done(false)}
    >
      {typeof body === 'string' ? <p>{body}</p> : body}
    </FormDialog>
  ));
}

/** Show something to read (a session's apps, its SSH details...); resolves when it is closed. */
export function showInfo(
  title: string,
  body: React.ReactNode,
  options: { className?: string; closeLabel?: string } = {}
): Promise<void> {
  return showModal<void>(done => (
    <FormDialog
      title={title}
      submitLabel=""
      closeOnly
      closeLabel={options.closeLabel}
      className={options.className}
      onSubmit={() => undefined}
      onClose={() => done()}
    >
      {body}
    </FormDialog>
  ));
}

/** Say why something failed; resolves when the message is dismissed. */
export function showError(title: string, reason: string): Promise<void> {
  return showInfo(
    title,
    <div className="jp-BackendAI-errorText" role="alert">
      {reason}
    </div>,
    { closeLabel: 'Dismiss' }
  );
}
