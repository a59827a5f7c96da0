import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { folderIcon, LabIcon, runningIcon } from '@jupyterlab/ui-components';

import { activateConsole } from './console';
import { SessionsPanel } from './sessions/SessionsPanel';
import { StoragePanel } from './storage/StoragePanel';

export { ManagerError, requestAPI } from './handler';

/** Command ids of the palette (the contract with the console part lists them all). */
export namespace CommandIDs {
  export const startSession = 'backendai:start-session';
  export const newFolder = 'backendai:new-folder';
  export const upload = 'backendai:upload';
}

const CATEGORY = 'Backend.AI';

function sideIcon(base: LabIcon, name: string): LabIcon {
  return new LabIcon({ name: `jupyter-backendai:${name}`, svgstr: base.svgstr });
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-backendai:plugin',
  description: "Backend.AI's sessions, folders and console as JupyterLab panels",
  autoStart: true,
  optional: [ICommandPalette, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null
  ) => {
    const sessions = new SessionsPanel();
    sessions.title.icon = sideIcon(runningIcon, 'sessions');
    app.shell.add(sessions, 'left', { rank: 900 });

    const storage = new StoragePanel();
    storage.title.icon = sideIcon(folderIcon, 'storage');
    app.shell.add(storage, 'left', { rank: 901 });

    if (restorer) {
      restorer.add(sessions, sessions.id);
      restorer.add(storage, storage.id);
    }

    app.commands.addCommand(CommandIDs.startSession, {
      label: 'Start a Backend.AI Session…',
      caption: 'Choose an environment, resources and folders, and start a session',
      execute: async () => {
        app.shell.activateById(sessions.id);
        await sessions.startSession();
      }
    });
    app.commands.addCommand(CommandIDs.newFolder, {
      label: 'New Backend.AI Folder…',
      caption: 'Create a storage folder that outlives sessions',
      execute: async () => {
        app.shell.activateById(storage.id);
        await storage.newFolder();
      }
    });
    app.commands.addCommand(CommandIDs.upload, {
      label: 'Upload Files to a Backend.AI Folder…',
      caption: 'Upload files into one of your folders',
      execute: async () => {
        app.shell.activateById(storage.id);
        await storage.upload();
      }
    });
    if (palette) {
      for (const command of [CommandIDs.startSession, CommandIDs.newFolder, CommandIDs.upload]) {
        palette.addItem({ command, category: CATEGORY });
      }
    }

    activateConsole(app, palette, restorer);
  }
};

export default plugin;
