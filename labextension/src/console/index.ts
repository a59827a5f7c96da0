/**
 * The console part of the extension: Summary, Statistics, Settings and, for admins and
 * superadmins (from `auth/whoami`), Administration, as main-area widgets with the commands
 * backendai:open-summary, -statistics, -settings and -admin in the palette, the launcher
 * ("Backend.AI" category) and a "Backend.AI" menu when those are present.
 */
import { ILayoutRestorer, JupyterFrontEnd } from '@jupyterlab/application';
import { ICommandPalette, MainAreaWidget, ReactWidget, WidgetTracker } from '@jupyterlab/apputils';
import { ILauncher } from '@jupyterlab/launcher';
import { IMainMenu } from '@jupyterlab/mainmenu';
import { Menu } from '@lumino/widgets';

import { IAdminContext } from './adminkit';
import { ConsoleKind, createConsoleWidget, ICONS, TITLES } from './widgets';
import { isAdminRole, WhoAmIModel } from '../api';

export const CommandIDs: Record<ConsoleKind, string> = {
  summary: 'backendai:open-summary',
  statistics: 'backendai:open-statistics',
  settings: 'backendai:open-settings',
  admin: 'backendai:open-admin'
};

const CATEGORY = 'Backend.AI';

export function activateConsole(
  app: JupyterFrontEnd,
  palette: ICommandPalette | null,
  restorer: ILayoutRestorer | null,
  whoami: WhoAmIModel
): void {
  const { commands, shell } = app;
  const trackers = {} as Record<ConsoleKind, WidgetTracker<MainAreaWidget<ReactWidget>>>;
  let adminContext: IAdminContext | undefined;

  const open = (kind: ConsoleKind): MainAreaWidget<ReactWidget> => {
    const existing = trackers[kind].currentWidget || trackers[kind].find(() => true);
    if (existing && !existing.isDisposed) {
      if (!existing.isAttached) {
        shell.add(existing, 'main');
      }
      shell.activateById(existing.id);
      return existing;
    }
    const widget = createConsoleWidget(kind, commands, adminContext);
    void trackers[kind].add(widget);
    shell.add(widget, 'main');
    shell.activateById(widget.id);
    return widget;
  };

  const register = (kind: ConsoleKind, rank: number) => {
    commands.addCommand(CommandIDs[kind], {
      label: kind === 'settings' ? 'Backend.AI Settings' : TITLES[kind],
      caption: `Open Backend.AI ${TITLES[kind]}`,
      icon: ICONS[kind],
      execute: () => open(kind)
    });
    palette?.addItem({ command: CommandIDs[kind], category: CATEGORY, rank });
    menuItems.push(CommandIDs[kind]);
    launcherItems.push({ command: CommandIDs[kind], category: CATEGORY, rank });
  };

  const menuItems: string[] = [];
  const launcherItems: ILauncher.IItemOptions[] = [];
  const kinds: ConsoleKind[] = ['summary', 'statistics', 'settings', 'admin'];
  for (const kind of kinds) {
    trackers[kind] = new WidgetTracker<MainAreaWidget<ReactWidget>>({ namespace: `backendai-${kind}` });
  }
  register('summary', 10);
  register('statistics', 11);
  register('settings', 12);

  // Administration exists only for admins: the command is added once whoami says so (at the
  // first answer, or later if the role changes), and the restorer waits for that first answer
  // before reopening a saved Administration tab.
  let adminRegistered = false;
  const registerAdmin = () => {
    const me = whoami.who;
    if (me && isAdminRole(me.role)) {
      adminContext = { superadmin: me.role === 'superadmin', domain: me.domain, email: me.email };
      if (!adminRegistered) {
        adminRegistered = true;
        register('admin', 13);
      }
    }
  };
  const ready = whoami.ready.then(() => {
    if (whoami.error) {
      console.warn('Backend.AI: cannot tell whether you are an administrator:', whoami.error);
    }
    registerAdmin();
  });
  whoami.changed.connect(registerAdmin);

  if (restorer) {
    for (const kind of kinds) {
      void restorer.restore(trackers[kind], {
        command: CommandIDs[kind],
        name: () => kind,
        when: kind === 'admin' ? ready : undefined
      });
    }
  }

  // The launcher and the main menu are optional: JupyterLab without them still has the palette.
  void Promise.all([app.resolveOptionalService(ILauncher), app.resolveOptionalService(IMainMenu), ready]).then(
    ([launcher, mainMenu]) => {
      for (const item of launcherItems) {
        launcher?.add(item);
      }
      if (mainMenu) {
        const menu = new Menu({ commands });
        menu.id = 'jp-BackendAI-menu';
        menu.title.label = 'Backend.AI';
        for (const command of menuItems) {
          menu.addItem({ command });
        }
        mainMenu.addMenu(menu, true, { rank: 1000 });
      }
    }
  );
}
