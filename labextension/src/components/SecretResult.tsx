import React from 'react';

import { IKeypair } from '../api/types';
import { FormDialog } from './FormDialog';

/** What a creation answered that is shown only once: a keypair's secret key. */
export function SecretResult(props: {
  title: string;
  keypair: IKeypair;
  note?: string;
  onClose: () => void;
}): JSX.Element {
  return (
    <FormDialog title={props.title} submitLabel="" closeOnly onSubmit={() => undefined} onClose={props.onClose}>
      {props.note && <p>{props.note}</p>}
      <dl className="jp-BackendAI-dl">
        <dt>Access key</dt>
        <dd>
          <code>{props.keypair.access_key}</code>
        </dd>
        <dt>Secret key</dt>
        <dd>
          <code>{props.keypair.secret_key}</code>
        </dd>
      </dl>
      <p className="jp-BackendAI-hint">The secret key is shown only now; copy it before closing.</p>
    </FormDialog>
  );
}
