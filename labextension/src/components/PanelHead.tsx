import * as React from 'react';

import { Message } from './Message';

/** A side panel's head (its title and buttons), and why who is logged in is unknown. */
export function PanelHead(props: { title: string; whoError: string; children: React.ReactNode }): JSX.Element {
  return (
    <>
      <div className="jp-BackendAI-panelHead">
        <h2 className="jp-BackendAI-title">{props.title}</h2>
        <div className="jp-BackendAI-actions">{props.children}</div>
      </div>
      {props.whoError ? <Message kind="error">{props.whoError}</Message> : null}
    </>
  );
}
