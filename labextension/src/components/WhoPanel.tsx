import { ReactWidget } from '@jupyterlab/apputils';

import { IWhoAmI } from '../api/types';
import { WhoAmIModel } from '../api/whoami';

/** A side panel that shows who is logged in, re-rendered whenever the shared model changes. */
export abstract class WhoPanel extends ReactWidget {
  constructor(id: string, className: string, caption: string, whoami: WhoAmIModel) {
    super();
    this.id = id;
    this.addClass(className);
    this.title.caption = caption;
    this._whoami = whoami;
    whoami.changed.connect(() => this.update(), this);
  }

  protected get who(): IWhoAmI | null {
    return this._whoami.who;
  }

  protected get whoError(): string {
    return this._whoami.error;
  }

  private _whoami: WhoAmIModel;
}
