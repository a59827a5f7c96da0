/**
 * The apps of this session (TensorBoard and the apps its image declares) in the launcher
 * ("Session Apps") and the palette. The list comes from the server extension
 * (`backendai/_ext/apps`); each item opens the app's page in a new browser tab: an app that
 * takes arguments (TensorBoard's log directory) asks for them there, others start on demand
 * and show at once. The Jupyter server's own apps (JupyterLab, the notebook, terminals)
 * already have their launcher items.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { ILauncher } from '@jupyterlab/launcher';
import { LabIcon } from '@jupyterlab/ui-components';
import { requestAPI } from './api';

export interface ISessionApp {
  name: string;
  title: string;
  protocol: string;
  ports: number[];
  url: string | null;
  open_url: string | null;
  proxied: boolean;
  managed: boolean;
  arguments: { name: string; title: string; value: string }[];
  running: boolean;
  error: string | null;
}

export const OPEN_APP = 'backendai:open-app';
const CATEGORY = 'Session Apps';

const appIcon = new LabIcon({
  name: 'jupyter-backendai:app',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" viewBox="0 0 24 24"><g class="jp-icon3" fill="#616161">' +
    '<path d="M4 3h16a2 2 0 0 1 2 2v14a2 2 0 0 1-2 2H4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2zm0 5v11h16V8zm1-3v1h2V5zm3 0v1h2V5z"/>' +
    '<path d="M6 17l3-4 2 2 3-5 4 7z"/>' +
    '</g></svg>'
});

export function activateApps(app: JupyterFrontEnd, palette: ICommandPalette | null): void {
  app.commands.addCommand(OPEN_APP, {
    label: args => String(args.title || args.name || 'App'),
    caption: args => `Open ${args.title || args.name} of this session in a new browser tab`,
    icon: appIcon,
    execute: args => {
      if (args.url) {
        window.open(String(args.url), '_blank', 'noopener');
      }
    }
  });

  void Promise.all([
    app.resolveOptionalService(ILauncher),
    requestAPI<{ apps: ISessionApp[]; error: string | null }>('_ext/apps')
  ]).then(
    ([launcher, listing]) => {
      if (listing.error) {
        console.warn('Backend.AI: the apps of this session:', listing.error);
      }
      let rank = 0;
      for (const a of listing.apps) {
        if (!a.proxied || !a.open_url) {
          if (a.error) {
            console.warn(`Backend.AI: app ${a.name}: ${a.error}`);
          }
          continue;
        }
        const args = { name: a.name, title: a.title, url: a.open_url };
        launcher?.add({ command: OPEN_APP, args, category: CATEGORY, rank: rank++ });
        palette?.addItem({ command: OPEN_APP, args, category: 'Backend.AI' });
      }
    },
    reason => console.warn('Backend.AI: cannot list the apps of this session:', reason)
  );
}
