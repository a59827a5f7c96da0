import { Dialog, showDialog } from '@jupyterlab/apputils';

/** Ask before something that cannot be undone; true when the user agreed. */
export async function confirm(title: string, body: string, label: string): Promise<boolean> {
  const answer = await showDialog({
    title,
    body,
    buttons: [Dialog.cancelButton(), Dialog.warnButton({ label })]
  });
  return answer.button.accept;
}
