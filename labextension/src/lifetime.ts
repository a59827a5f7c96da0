/**
 * The warning that this session is about to reach its policy's maximum lifetime.
 *
 * The server extension answers `_ext/session`: the session this lab runs in, the seconds
 * left until the hub ends it (`ends_in`, by the server's clock, so a wrong browser clock
 * does not matter) and how long before the end to warn (`warn_before`, set by the hub).
 * From `warn_before` seconds before the end a warning notification stays on screen; it is
 * looked at again at least every minute, since an administrator may change the policy.
 */
import { Notification } from '@jupyterlab/apputils';
import { requestAPI } from './api';

export interface ISessionInfo {
  id: string | null;
  name: string | null;
  ends_at: string | null;
  ends_in: number | null;
  warn_before: number;
  error: string | null;
}

/** Seconds between looks while the end is not near (or unknown). */
const LOOK_EVERY = 60;

/** "in 9 minutes", "in 40 seconds": the time left, in the unit a person reads it in. */
export function timeLeft(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s >= 120) {
    return `in ${Math.round(s / 60)} minutes`;
  }
  return s === 1 ? 'in 1 second' : `in ${s} seconds`;
}

/** The warning (a notification shows at most 140 characters). */
export function warningText(info: ISessionInfo, endsAt: Date): string {
  const clock = endsAt.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  const name = info.name ? `Session ${info.name}` : 'This session';
  return (
    `${name} ends at ${clock} (${timeLeft(info.ends_in ?? 0)}): its policy's maximum lifetime. ` +
    'Save your work to a mounted folder.'
  );
}

export class LifetimeWatch {
  private timer: number | undefined;
  private notice: string | null = null;
  private disposed = false;

  start(): void {
    void this.look();
  }

  dispose(): void {
    this.disposed = true;
    window.clearTimeout(this.timer);
  }

  private later(seconds: number): void {
    if (!this.disposed) {
      this.timer = window.setTimeout(() => void this.look(), Math.max(1, seconds) * 1000);
    }
  }

  private async look(): Promise<void> {
    let info: ISessionInfo;
    try {
      info = await requestAPI<ISessionInfo>('_ext/session');
    } catch {
      this.later(LOOK_EVERY); // the server or the manager is away for a moment
      return;
    }
    if (!info.id) {
      return; // not a session's lab: nothing ends it
    }
    if (info.ends_in === null || info.ends_in === undefined) {
      this.withdraw();
      this.later(LOOK_EVERY);
      return;
    }
    const warnIn = info.ends_in - info.warn_before;
    if (warnIn > 0) {
      this.withdraw();
      this.later(Math.min(LOOK_EVERY, warnIn));
      return;
    }
    this.show(warningText(info, new Date(Date.now() + info.ends_in * 1000)));
    // The text says how long is left: refresh it, more often as the end comes.
    this.later(Math.min(LOOK_EVERY, Math.max(5, info.ends_in / 4)));
  }

  private show(message: string): void {
    if (this.notice !== null && Notification.update({ id: this.notice, message, type: 'warning', autoClose: false })) {
      return;
    }
    this.notice = Notification.warning(message, { autoClose: false });
  }

  private withdraw(): void {
    if (this.notice !== null) {
      Notification.dismiss(this.notice);
      this.notice = null;
    }
  }
}
