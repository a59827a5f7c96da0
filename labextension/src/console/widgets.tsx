/**
 * The main-area widgets of the console: each is a ReactWidget inside a MainAreaWidget, with
 * the ids of the contract (backendai-summary, -statistics, -settings, -admin).
 */
import { MainAreaWidget, ReactWidget } from '@jupyterlab/apputils';
import { LabIcon, settingsIcon, usersIcon } from '@jupyterlab/ui-components';
import { CommandRegistry } from '@lumino/commands';
import React from 'react';

import { Administration } from './admin';
import { IAdminContext } from './adminkit';
import { Settings } from './settings';
import { Statistics } from './statistics';
import { Summary } from './summary';

export const gaugeIcon = new LabIcon({
  name: 'jupyter-backendai:gauge',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="16"><g class="jp-icon3" fill="#616161">' +
    '<path d="M12 4a9 9 0 0 0-9 9 9 9 0 0 0 1.2 4.5h2.4A7 7 0 0 1 5 13a7 7 0 0 1 14 0 7 7 0 0 1-1.6 4.5h2.4A9 9 0 0 0 21 13a9 9 0 0 0-9-9z"/>' +
    '<path d="M12.9 14.3a1.5 1.5 0 1 1-1.8-2.2l5.2-3.7z"/></g></svg>'
});

export const chartIcon = new LabIcon({
  name: 'jupyter-backendai:chart',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="16"><g class="jp-icon3" fill="#616161">' +
    '<rect x="4" y="12" width="3" height="8"/><rect x="10.5" y="6" width="3" height="14"/>' +
    '<rect x="17" y="9" width="3" height="11"/><rect x="3" y="20" width="18" height="1.5"/></g></svg>'
});

export type ConsoleKind = 'summary' | 'statistics' | 'settings' | 'admin';

export const TITLES: Record<ConsoleKind, string> = {
  summary: 'Summary',
  statistics: 'Statistics',
  settings: 'Settings',
  admin: 'Administration'
};

export const ICONS: Record<ConsoleKind, LabIcon> = {
  summary: gaugeIcon,
  statistics: chartIcon,
  settings: settingsIcon,
  admin: usersIcon
};

class ConsoleView extends ReactWidget {
  constructor(private readonly view: () => JSX.Element) {
    super();
    this.addClass('jp-BackendAI-console');
  }

  protected render(): JSX.Element {
    return this.view();
  }
}

/** A new main-area widget of `kind`; `admin` needs the administrator's context. */
export function createConsoleWidget(
  kind: ConsoleKind,
  commands: CommandRegistry,
  admin?: IAdminContext
): MainAreaWidget<ReactWidget> {
  const views: Record<ConsoleKind, () => JSX.Element> = {
    summary: () => <Summary commands={commands} />,
    statistics: () => <Statistics />,
    settings: () => <Settings />,
    admin: () => <Administration ctx={admin as IAdminContext} />
  };
  const content = new ConsoleView(views[kind]);
  const widget = new MainAreaWidget({ content });
  widget.id = `backendai-${kind}`;
  widget.title.label = kind === 'settings' ? 'Backend.AI Settings' : TITLES[kind];
  widget.title.caption = `Backend.AI ${TITLES[kind]}`;
  widget.title.icon = ICONS[kind];
  widget.title.closable = true;
  widget.addClass('jp-BackendAI-consoleArea');
  return widget;
}
