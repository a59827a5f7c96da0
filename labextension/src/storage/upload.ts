/**
 * Uploads into folders: `request-upload` makes the upload session (and refuses a file over
 * the folder's capacity before a byte is sent), then tus PATCH requests append the file in
 * chunks through the server extension. A failed upload keeps its session: resuming asks the
 * server for its offset (HEAD) and goes on from there.
 */
import { ServerConnection } from '@jupyterlab/services';
import { ISignal, Signal } from '@lumino/signaling';

import { errorText, ManagerError, managerURL, requestAPI } from '../api';
import { chunkSize } from './chunks';

export { chunkSize } from './chunks';

const TUS_VERSION = '1.0.0';

export type UploadState = 'queued' | 'uploading' | 'done' | 'error' | 'cancelled';

export interface IUpload {
  id: number;
  folder: string;
  folderName: string;
  path: string;
  file: File;
  size: number;
  sent: number;
  state: UploadState;
  error: string;
  endpoint: string | null;
}

async function tusError(response: Response): Promise<ManagerError> {
  let reason = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    reason = body.title || body.msg || body.message || reason;
  } catch {
    // not JSON: keep the status line
  }
  return new ManagerError(response.status, reason);
}

/** Several uploads, one after the other; `changed` fires on every step. */
export class UploadQueue {
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  get items(): ReadonlyArray<IUpload> {
    return this._items;
  }

  /** Queue files for `folder` (an id) into directory `dir` of it. */
  add(folder: string, folderName: string, dir: string, files: File[]): IUpload[] {
    const added = files.map(file => ({
      id: ++this._next,
      folder,
      folderName,
      path: dir ? `${dir.replace(/\/+$/, '')}/${file.name}` : file.name,
      file,
      size: file.size,
      sent: 0,
      state: 'queued' as UploadState,
      error: '',
      endpoint: null
    }));
    this._items.push(...added);
    this._changed.emit();
    void this._run();
    return added;
  }

  /** Try a failed upload again from where the server says it stopped. */
  resume(id: number): void {
    const item = this._items.find(i => i.id === id);
    if (!item || (item.state !== 'error' && item.state !== 'cancelled')) {
      return;
    }
    item.state = 'queued';
    item.error = '';
    this._changed.emit();
    void this._run();
  }

  cancel(id: number): void {
    const item = this._items.find(i => i.id === id);
    if (!item || item.state === 'done') {
      return;
    }
    item.state = 'cancelled';
    if (this._current === item && this._abort) {
      this._abort.abort();
    }
    this._changed.emit();
  }

  /** Forget finished and cancelled uploads. */
  clearFinished(): void {
    this._items = this._items.filter(i => i.state !== 'done' && i.state !== 'cancelled');
    this._changed.emit();
  }

  /** Resolves when nothing is queued or uploading. */
  async idle(): Promise<void> {
    while (this._running) {
      await new Promise(r => setTimeout(r, 100));
    }
  }

  private async _run(): Promise<void> {
    if (this._running) {
      return;
    }
    this._running = true;
    try {
      for (;;) {
        const next = this._items.find(i => i.state === 'queued');
        if (!next) {
          break;
        }
        await this._upload(next);
      }
    } finally {
      this._running = false;
    }
  }

  private async _upload(item: IUpload): Promise<void> {
    this._current = item;
    item.state = 'uploading';
    this._changed.emit();
    const settings = ServerConnection.makeSettings();
    try {
      if (item.endpoint) {
        const head = await ServerConnection.makeRequest(
          item.endpoint,
          { method: 'HEAD', headers: { 'Tus-Resumable': TUS_VERSION } },
          settings
        );
        if (head.ok) {
          item.sent = Number(head.headers.get('Upload-Offset') || '0');
        } else if (head.status === 401 || head.status === 404 || head.status === 410) {
          item.endpoint = null; // the token expired or the session is gone: start anew
        } else {
          throw await tusError(head);
        }
      }
      if (!item.endpoint) {
        const answer = await requestAPI<{ token: string }>(
          `folders/${encodeURIComponent(item.folder)}/request-upload`,
          { method: 'POST', body: JSON.stringify({ path: item.path, size: item.size }) }
        );
        item.endpoint = managerURL(`folders/_/tus/upload?token=${encodeURIComponent(answer.token)}`);
        item.sent = 0;
      }
      const step = chunkSize(item.size);
      // A zero-byte file still needs one PATCH to be completed.
      do {
        if ((item.state as UploadState) === 'cancelled') {
          return;
        }
        const end = Math.min(item.size, item.sent + step);
        this._abort = new AbortController();
        const response = await ServerConnection.makeRequest(
          item.endpoint,
          {
            method: 'PATCH',
            headers: {
              'Tus-Resumable': TUS_VERSION,
              'Upload-Offset': String(item.sent),
              'Content-Type': 'application/offset+octet-stream'
            },
            body: item.file.slice(item.sent, end),
            signal: this._abort.signal
          },
          settings
        );
        if (!response.ok) {
          throw await tusError(response);
        }
        item.sent = Number(response.headers.get('Upload-Offset') || end);
        this._changed.emit();
      } while (item.sent < item.size);
      item.state = 'done';
      this._changed.emit();
      this._finished.emit(item);
    } catch (e) {
      if ((item.state as UploadState) !== 'cancelled') {
        item.state = 'error';
        item.error = errorText(e);
      }
      this._changed.emit();
    } finally {
      this._current = null;
      this._abort = null;
    }
  }

  /** An upload completed. */
  get finished(): ISignal<this, IUpload> {
    return this._finished;
  }

  private _items: IUpload[] = [];
  private _next = 0;
  private _running = false;
  private _current: IUpload | null = null;
  private _abort: AbortController | null = null;
  private _changed = new Signal<this, void>(this);
  private _finished = new Signal<this, IUpload>(this);
}
