/**
 * Who is logged in, asked of `auth/whoami` once at start and again every `interval` ms, so
 * that a role changed by an administrator shows without a reload. One model serves the side
 * panels and the console; `changed` fires only when the answer (or the failure) differs.
 */
import { ISignal, Signal } from '@lumino/signaling';

import type { IWhoAmI } from './types';

export class WhoAmIModel {
  constructor(options: { fetch: () => Promise<IWhoAmI>; errorText: (e: unknown) => string; interval?: number }) {
    this._fetch = options.fetch;
    this._errorText = options.errorText;
    this._interval = options.interval ?? 60_000;
    this.ready = new Promise(resolve => (this._settle = resolve));
  }

  /** Settled once the first answer (or failure) is in. */
  readonly ready: Promise<void>;

  get who(): IWhoAmI | null {
    return this._who;
  }

  /** Why who is logged in is unknown ("" when it is known). */
  get error(): string {
    return this._error;
  }

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** Ask now, then every `interval` ms until disposed. */
  start(): void {
    if (this._timer === null && !this._disposed) {
      void this.refresh();
      this._timer = setInterval(() => void this.refresh(), this._interval);
    }
  }

  async refresh(): Promise<void> {
    let who = this._who;
    let error = '';
    try {
      who = await this._fetch();
    } catch (e) {
      error = this._errorText(e);
    }
    const before = JSON.stringify([this._who, this._error]);
    this._who = who;
    this._error = error;
    this._settle();
    if (!this._disposed && JSON.stringify([who, error]) !== before) {
      this._changed.emit();
    }
  }

  dispose(): void {
    this._disposed = true;
    if (this._timer !== null) {
      clearInterval(this._timer);
      this._timer = null;
    }
    Signal.clearData(this);
  }

  private _fetch: () => Promise<IWhoAmI>;
  private _errorText: (e: unknown) => string;
  private _interval: number;
  private _who: IWhoAmI | null = null;
  private _error = '';
  private _timer: ReturnType<typeof setInterval> | null = null;
  private _disposed = false;
  private _settle: () => void = () => undefined;
  private _changed = new Signal<this, void>(this);
}
