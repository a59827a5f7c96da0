import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { LabIcon } from '@jupyterlab/ui-components';

import { createWhoAmI } from './api';
import { activateApps } from './apps';
import { activateConsole } from './console';
import { LifetimeWatch } from './lifetime';
import { SessionsPanel } from './sessions/SessionsPanel';
import { StoragePanel } from './storage/StoragePanel';

export { ManagerError, requestAPI } from './api';

/** Command ids of the palette (the contract with the console part lists them all). */
export namespace CommandIDs {
  export const startSession = 'backendai:start-session';
  export const newFolder = 'backendai:new-folder';
  export const upload = 'backendai:upload';
}

const CATEGORY = 'Backend.AI';

// Side-bar icons of their own (JupyterLab's running-sessions and file-browser icons are taken);
// the jp-icon3 class lets the theme colour them.
const sessionsIcon = new LabIcon({
  name: 'jupyter-backendai:sessions',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" viewBox="0 0 24 24"><g class="jp-icon3" fill="#616161">' +
    '<path d="M4 3h16a1 1 0 0 1 1 1v5a1 1 0 0 1-1 1H4a1 1 0 0 1-1-1V4a1 1 0 0 1 1-1zm1 2v3h14V5zm1 1h2v1H6z"/>' +
    '<path d="M4 14h16a1 1 0 0 1 1 1v5a1 1 0 0 1-1 1H4a1 1 0 0 1-1-1v-5a1 1 0 0 1 1-1zm1 2v3h14v-3zm1 1h2v1H6z"/>' +
    '</g></svg>'
});
const storageIcon = new LabIcon({
  name: 'jupyter-backendai:storage',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" viewBox="0 0 24 24"><g class="jp-icon3" fill="#616161">' +
    '<path d="M12 2C7.6 2 4 3.3 4 5v14c0 1.7 3.6 3 8 3s8-1.3 8-3V5c0-1.7-3.6-3-8-3zm0 2c3.9 0 6 1.1 6 1s-2.1 1-6 1-6-.9-6-1 2.1-1 6-1z' +
    'M6 7.6C7.5 8.2 9.6 8.5 12 8.5s4.5-.3 6-.9V11c0 .1-2.1 1-6 1s-6-.9-6-1zm0 5.9c1.5.6 3.6.9 6 .9s4.5-.3 6-.9V19c0 .1-2.1 1-6 1s-6-.9-6-1z"/>' +
    '</g></svg>'
});

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-backendai:plugin',
  description: "Backend.AI's sessions, folders and console as JupyterLab panels",
  autoStart: true,
  optional: [ICommandPalette, ILayoutRestorer],
  activate: (app: JupyterFrontEnd, palette: ICommandPalette | null, restorer: ILayoutRestorer | null) => {
    // One model of who is logged in for the panels and the console, asked again every minute.
    const whoami = createWhoAmI();
    whoami.start();

    const sessions = new SessionsPanel(whoami);
    sessions.title.icon = sessionsIcon;
    app.shell.add(sessions, 'left', { rank: 900 });

    const storage = new StoragePanel(whoami);
    storage.title.icon = storageIcon;
    app.shell.add(storage, 'left', { rank: 901 });

    if (restorer) {
      restorer.add(sessions, sessions.id);
      restorer.add(storage, storage.id);
    }

    // Each command shows its panel, then opens that panel's dialog; all are in the palette.
    const commands: [string, string, string, { id: string }, () => Promise<void>][] = [
      [
        CommandIDs.startSession,
        'Start a Backend.AI Session…',
        'Choose an environment, resources and folders, and start a session',
        sessions,
        () => sessions.startSession()
      ],
      [
        CommandIDs.newFolder,
        'New Backend.AI Folder…',
        'Create a storage folder that outlives sessions',
        storage,
        () => storage.newFolder()
      ],
      [
        CommandIDs.upload,
        'Upload Files to a Backend.AI Folder…',
        'Upload files into one of your folders',
        storage,
        () => storage.upload()
      ]
    ];
    for (const [command, label, caption, panel, open] of commands) {
      app.commands.addCommand(command, {
        label,
        caption,
        execute: async () => {
          app.shell.activateById(panel.id);
          await open();
        }
      });
      palette?.addItem({ command, category: CATEGORY });
    }

    activateConsole(app, palette, restorer, whoami);
    activateApps(app, palette);

    // Warns before the hub ends this session for its policy's maximum lifetime.
    new LifetimeWatch().start();
  }
};

export default plugin;
