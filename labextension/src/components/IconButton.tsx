import { LabIcon } from '@jupyterlab/ui-components';
import * as React from 'react';

/** A small button showing one of JupyterLab's icons; its name is in aria-label and title. */
export function IconButton(props: { icon: LabIcon; title: string; onClick: () => void; warn?: boolean }): JSX.Element {
  return (
    <button
      type="button"
      className={'jp-BackendAI-iconButton' + (props.warn ? ' jp-mod-warn' : '')}
      onClick={props.onClick}
      title={props.title}
      aria-label={props.title}
    >
      <props.icon.react tag="span" elementSize="small" />
    </button>
  );
}
