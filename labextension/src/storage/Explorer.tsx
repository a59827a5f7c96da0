/**
 * The file explorer of one folder (F26): list, enter sub-folders, breadcrumb, upload (with
 * progress, resumable, several files, drag and drop), new sub-folder, download, rename, delete.
 */
import * as React from 'react';

import { deleteIcon, downloadIcon, editIcon, folderIcon } from '@jupyterlab/ui-components';

import { askText } from './dialogs';
import { IUpload, UploadQueue } from './upload';
import { errorText, IFileEntry, IFolder, managerURL, requestAPI } from '../api';
import { Button, confirm, IconButton, Message, showError } from '../components';
import { formatBytes, formatTime } from '../format';

function join(dir: string, name: string): string {
  return dir ? `${dir}/${name}` : name;
}

/** Download one file: the manager hands out a short-lived URL, which the browser then follows. */
export async function downloadFile(folder: IFolder, path: string): Promise<void> {
  const answer = await requestAPI<{ token: string }>(`folders/${encodeURIComponent(folder.id)}/request-download`, {
    method: 'POST',
    body: JSON.stringify({ path })
  });
  const link = document.createElement('a');
  link.href = managerURL(`folders/_/download?token=${encodeURIComponent(answer.token)}`);
  link.download = path.split('/').pop() || 'download';
  link.rel = 'noopener';
  document.body.appendChild(link);
  link.click();
  link.remove();
}

function UploadRow(props: { item: IUpload; queue: UploadQueue }): JSX.Element {
  const { item, queue } = props;
  const percent = item.size ? Math.floor((item.sent / item.size) * 100) : item.state === 'done' ? 100 : 0;
  return (
    <li className={`jp-BackendAI-upload jp-BackendAI-upload-${item.state}`} data-upload-path={item.path}>
      <div className="jp-BackendAI-uploadHead">
        <span className="jp-BackendAI-uploadName" title={`${item.folderName}/${item.path}`}>
          {item.path}
        </span>
        <span className="jp-BackendAI-uploadState">
          {item.state === 'uploading' || item.state === 'queued' ? `${percent}%` : item.state}
        </span>
      </div>
      <progress
        className="jp-BackendAI-progress"
        max={item.size || 1}
        value={item.size ? item.sent : item.state === 'done' ? 1 : 0}
        aria-label={`Upload of ${item.path}`}
      />
      {item.error ? <Message kind="error">{item.error}</Message> : null}
      <div className="jp-BackendAI-actions">
        {item.state === 'error' || item.state === 'cancelled' ? (
          <Button label="Resume" title={`Resume the upload of ${item.path}`} onClick={() => queue.resume(item.id)} />
        ) : null}
        {item.state === 'uploading' || item.state === 'queued' ? (
          <Button label="Cancel" title={`Cancel the upload of ${item.path}`} onClick={() => queue.cancel(item.id)} />
        ) : null}
      </div>
    </li>
  );
}

export function Uploads(props: { queue: UploadQueue }): JSX.Element | null {
  const [, setTick] = React.useState(0);
  React.useEffect(() => {
    const bump = () => setTick(t => t + 1);
    props.queue.changed.connect(bump);
    return () => {
      props.queue.changed.disconnect(bump);
    };
  }, [props.queue]);
  const items = props.queue.items;
  if (!items.length) {
    return null;
  }
  return (
    <section className="jp-BackendAI-uploads" aria-label="Uploads">
      <div className="jp-BackendAI-panelHead">
        <h3 className="jp-BackendAI-subtitle">Uploads</h3>
        <Button label="Clear finished" title="Clear finished uploads" onClick={() => props.queue.clearFinished()} />
      </div>
      <ul className="jp-BackendAI-list">
        {items.map(item => (
          <UploadRow key={item.id} item={item} queue={props.queue} />
        ))}
      </ul>
    </section>
  );
}

export function Explorer(props: {
  folder: IFolder;
  queue: UploadQueue;
  onClose: () => void;
  register: (api: { upload: () => void }) => void;
}): JSX.Element {
  const { folder, queue } = props;
  const [dir, setDir] = React.useState('');
  const [items, setItems] = React.useState<IFileEntry[]>([]);
  const [error, setError] = React.useState('');
  const [loading, setLoading] = React.useState(true);
  const [dragging, setDragging] = React.useState(false);
  const input = React.useRef<HTMLInputElement>(null);
  const canWrite = folder.permission === 'rw' || folder.permission === 'wd';
  const canDelete = folder.permission === 'wd';
  const base = `folders/${encodeURIComponent(folder.id)}`;

  const load = React.useCallback(async () => {
    setLoading(true);
    try {
      const answer = await requestAPI<{ items: IFileEntry[] }>(`${base}/files?path=${encodeURIComponent(dir)}`);
      const sorted = [...answer.items].sort((a, b) =>
        a.type === b.type ? a.name.localeCompare(b.name) : a.type === 'dir' ? -1 : b.type === 'dir' ? 1 : 0
      );
      setItems(sorted);
      setError('');
    } catch (e) {
      setError(errorText(e));
    }
    setLoading(false);
  }, [base, dir]);

  React.useEffect(() => {
    void load();
  }, [load]);

  React.useEffect(() => {
    const done = (_: UploadQueue, item: IUpload) => {
      if (item.folder === folder.id) {
        void load();
      }
    };
    queue.finished.connect(done);
    return () => {
      queue.finished.disconnect(done);
    };
  }, [queue, load, folder.id]);

  React.useEffect(() => {
    props.register({ upload: () => input.current?.click() });
    // Once: the upload action reads the input through its ref.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  const upload = (files: FileList | File[] | null) => {
    if (!files || !files.length) {
      return;
    }
    if (!canWrite) {
      void showError('Upload', `You may only read ${folder.name}.`);
      return;
    }
    queue.add(folder.id, folder.name, dir, Array.from(files));
  };

  const act = async (what: string, fn: () => Promise<unknown>) => {
    try {
      await fn();
    } catch (e) {
      await showError(what, errorText(e));
    }
    void load();
  };

  const mkdir = async () => {
    const name = await askText('New sub-folder', 'Name of the new sub-folder', '', 'Create');
    if (name) {
      await act('New sub-folder', () =>
        requestAPI(`${base}/mkdir`, { method: 'POST', body: JSON.stringify({ path: join(dir, name) }) })
      );
    }
  };

  const rename = async (entry: IFileEntry) => {
    const name = await askText(`Rename ${entry.name}`, 'New name', entry.name, 'Rename');
    if (name && name !== entry.name) {
      await act('Rename', () =>
        requestAPI(`${base}/rename-file`, {
          method: 'POST',
          body: JSON.stringify({ target_path: join(dir, entry.name), new_name: name })
        })
      );
    }
  };

  const remove = async (entry: IFileEntry) => {
    const what = entry.type === 'dir' ? 'the directory and everything in it' : 'the file';
    if (await confirm(`Delete ${entry.name}?`, `Delete ${what} "${entry.name}"?`, 'Delete')) {
      await act('Delete', () =>
        requestAPI(`${base}/delete-files`, {
          method: 'DELETE',
          body: JSON.stringify({ files: [join(dir, entry.name)], recursive: entry.type === 'dir' })
        })
      );
    }
  };

  const crumbs = dir ? dir.split('/') : [];
  return (
    <div
      className={'jp-BackendAI-explorer' + (dragging ? ' jp-mod-dropTarget' : '')}
      aria-label={`Files of ${folder.name}`}
      onDragOver={e => {
        if (e.dataTransfer.types.includes('Files')) {
          e.preventDefault();
          e.dataTransfer.dropEffect = 'copy';
          setDragging(true);
        }
      }}
      onDragLeave={() => setDragging(false)}
      onDrop={e => {
        e.preventDefault();
        setDragging(false);
        upload(e.dataTransfer.files);
      }}
    >
      <div className="jp-BackendAI-panelHead">
        <Button label="← Folders" title="Back to the folder list" onClick={props.onClose} />
        <h3 className="jp-BackendAI-subtitle">{folder.name}</h3>
      </div>
      <nav className="jp-BackendAI-breadcrumb" aria-label="Path">
        <button
          type="button"
          className="jp-BackendAI-crumb"
          onClick={() => setDir('')}
          aria-label={`Top of ${folder.name}`}
        >
          {folder.name}
        </button>
        {crumbs.map((part, i) => (
          <React.Fragment key={i}>
            <span aria-hidden="true">/</span>
            <button
              type="button"
              className="jp-BackendAI-crumb"
              onClick={() => setDir(crumbs.slice(0, i + 1).join('/'))}
            >
              {part}
            </button>
          </React.Fragment>
        ))}
      </nav>
      <div className="jp-BackendAI-actions">
        <Button
          label="Upload"
          title={`Upload files into ${folder.name}/${dir}`}
          disabled={!canWrite}
          onClick={() => input.current?.click()}
        />
        <Button
          label="New sub-folder"
          title="Create a sub-folder here"
          disabled={!canWrite}
          onClick={() => void mkdir()}
        />
        <Button label="Refresh" title="Refresh the file list" onClick={() => void load()} />
        <input
          ref={input}
          type="file"
          multiple
          className="jp-BackendAI-fileInput"
          aria-label={`Files to upload into ${folder.name}`}
          onChange={e => {
            upload(e.target.files);
            e.target.value = '';
          }}
        />
      </div>
      {canWrite ? <div className="jp-BackendAI-hint">Drop files here to upload them.</div> : null}
      {error ? <Message kind="error">{error}</Message> : null}
      {!loading && !error && !items.length ? <div className="jp-BackendAI-empty">This directory is empty.</div> : null}
      <table className="jp-BackendAI-table" aria-label={`Contents of ${folder.name}/${dir}`}>
        <thead>
          <tr>
            <th scope="col">Name (modified)</th>
            <th scope="col">Size</th>
            <th scope="col">
              <span className="jp-BackendAI-sr">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {items.map(entry => (
            <tr key={entry.name} data-file-name={entry.name}>
              <td>
                {entry.type === 'dir' ? (
                  <button
                    type="button"
                    className="jp-BackendAI-linkButton"
                    onClick={() => setDir(join(dir, entry.name))}
                    aria-label={`Open directory ${entry.name}`}
                  >
                    <folderIcon.react tag="span" elementSize="small" className="jp-BackendAI-inlineIcon" /> {entry.name}
                  </button>
                ) : (
                  <span>{entry.name}</span>
                )}
                <div className="jp-BackendAI-hint">{formatTime(entry.modified || entry.mtime)}</div>
              </td>
              <td>{entry.type === 'dir' ? '' : formatBytes(entry.size)}</td>
              <td className="jp-BackendAI-rowActions">
                {entry.type === 'file' ? (
                  <IconButton
                    icon={downloadIcon}
                    title={`Download ${entry.name}`}
                    onClick={() => void act('Download', () => downloadFile(folder, join(dir, entry.name)))}
                  />
                ) : null}
                {canWrite ? (
                  <IconButton icon={editIcon} title={`Rename ${entry.name}`} onClick={() => void rename(entry)} />
                ) : null}
                {canDelete ? (
                  <IconButton
                    icon={deleteIcon}
                    title={`Delete ${entry.name}`}
                    warn
                    onClick={() => void remove(entry)}
                  />
                ) : null}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
