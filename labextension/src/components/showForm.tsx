import { Dialog, ReactWidget, showDialog } from '@jupyterlab/apputils';

/**
 * The body of a form in JupyterLab's dialog (the side panels'): a React component that
 * reports its value, or null while it is incomplete, through `update`; `getValue()` is what
 * the dialog resolves with.
 */
export class FormBody<T> extends ReactWidget {
  constructor(render: (update: (value: T | null) => void) => JSX.Element, className = '') {
    super();
    this._render = render;
    this.addClass('jp-BackendAI-form');
    if (className) {
      this.addClass(className);
    }
  }

  getValue(): T | null {
    return this._value;
  }

  protected render(): JSX.Element {
    return this._render(value => {
      this._value = value;
    });
  }

  private _render: (update: (value: T | null) => void) => JSX.Element;
  private _value: T | null = null;
}

/**
 * Show a form in JupyterLab's dialog; resolves with the form's value when accepted (null when
 * cancelled or when the form was incomplete).
 */
export async function showForm<T>(
  title: string,
  render: (update: (value: T | null) => void) => JSX.Element,
  okLabel: string,
  options: { warn?: boolean; className?: string } = {}
): Promise<T | null> {
  const body = new FormBody<T>(render, options.className);
  const result = await showDialog({
    title,
    body,
    buttons: [
      Dialog.cancelButton(),
      options.warn ? Dialog.warnButton({ label: okLabel }) : Dialog.okButton({ label: okLabel })
    ],
    focusNodeSelector: 'input, select'
  });
  if (!result.button.accept) {
    return null;
  }
  return result.value;
}
