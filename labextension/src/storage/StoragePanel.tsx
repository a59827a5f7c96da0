/**
 * The Data & Storage side panel (F24–F32): Folders / Automount / Shared, each folder with its
 * usage against capacity, the file explorer, rename, delete, invite and share, the owner's
 * sharing (change or revoke); pending invitations to accept or reject.
 */
import * as React from 'react';

import { askText, confirmFolderDelete, showInviteDialog, showNewFolderDialog } from './dialogs';
import { Explorer, Uploads } from './Explorer';
import { showSharingDialog } from './SharingDialog';
import { UploadQueue } from './upload';
import { errorText, IFolder, IFolderUsage, IInvitation, isAdmin, IWhoAmI, requestAPI, WhoAmIModel } from '../api';
import { Button, Field, Message, PanelHead, showError, showForm, Tabs, uid, WhoPanel } from '../components';
import { formatBytes } from '../format';

type TabId = 'folders' | 'automount' | 'shared';

function UsageBar(props: { folder: IFolder; stamp: number }): JSX.Element {
  const [usage, setUsage] = React.useState<IFolderUsage | null>(null);
  const [error, setError] = React.useState('');
  React.useEffect(() => {
    requestAPI<IFolderUsage>(`folders/${encodeURIComponent(props.folder.id)}/usage`)
      .then(setUsage)
      .catch(e => setError(errorText(e)));
  }, [props.folder.id, props.stamp]);
  if (error) {
    return <div className="jp-BackendAI-hint">Usage unknown: {error}</div>;
  }
  if (!usage) {
    return <div className="jp-BackendAI-hint">Usage …</div>;
  }
  const cap = usage.max_size;
  const text = `${formatBytes(usage.used_bytes)} of ${cap ? formatBytes(cap) : 'unlimited'} used, ${usage.file_count} file(s)`;
  const over = usage.over_capacity ?? (cap !== null && usage.used_bytes > cap);
  return (
    <div className="jp-BackendAI-usageBar">
      {cap ? (
        <meter
          min={0}
          max={cap}
          value={usage.used_bytes}
          high={cap * 0.9}
          aria-label={`Usage of ${props.folder.name}`}
        />
      ) : null}
      <span className="jp-BackendAI-hint">{text}</span>
      {over ? (
        <span
          className="jp-BackendAI-badge jp-BackendAI-overCapacity"
          role="status"
          title={
            usage.capacity_enforced
              ? 'The storage refuses further writes to this folder.'
              : 'Uploads to this folder are refused until it shrinks; this storage does not stop sessions from writing (advisory capacity).'
          }
        >
          over capacity
        </span>
      ) : null}
    </div>
  );
}

function FolderCard(props: {
  folder: IFolder;
  admin: boolean;
  stamp: number;
  open: () => void;
  changed: () => void;
}): JSX.Element {
  const f = props.folder;
  const id = `jp-BackendAI-folder-${f.id}`;
  const canManage = (f.is_owner || (props.admin && f.type === 'group')) && f.permission === 'wd';
  const act = async (what: string, fn: () => Promise<unknown>) => {
    try {
      await fn();
    } catch (e) {
      await showError(what, errorText(e));
    }
    props.changed();
  };
  const rename = async () => {
    const name = await askText(`Rename ${f.name}`, 'New folder name', f.name, 'Rename');
    if (name && name !== f.name) {
      await act('Rename', () =>
        requestAPI(`folders/${encodeURIComponent(f.id)}/rename`, {
          method: 'POST',
          body: JSON.stringify({ new_name: name })
        })
      );
    }
  };
  const remove = async () => {
    if (await confirmFolderDelete(f)) {
      await act('Delete', () => requestAPI(`folders/${encodeURIComponent(f.id)}`, { method: 'DELETE' }));
    }
  };
  const invite = async (share: boolean) => {
    const answer = await showInviteDialog(f, share);
    if (!answer) {
      return;
    }
    await act(share ? 'Share' : 'Invite', () =>
      requestAPI(`folders/${encodeURIComponent(f.id)}/${share ? 'share' : 'invite'}`, {
        method: 'POST',
        body: JSON.stringify(
          share
            ? { emails: answer.emails, permission: answer.permission }
            : { user_ids: answer.emails, perm: answer.permission }
        )
      })
    );
  };
  const leave = async () => {
    await act('Leave', () => requestAPI(`folders/${encodeURIComponent(f.id)}/leave`, { method: 'POST' }));
  };
  return (
    <li className="jp-BackendAI-card jp-BackendAI-folder" aria-labelledby={id} data-folder-name={f.name}>
      <div className="jp-BackendAI-cardHead">
        <button
          type="button"
          id={id}
          className="jp-BackendAI-linkButton jp-BackendAI-cardTitle"
          onClick={props.open}
          aria-label={`Open folder ${f.name}`}
        >
          {f.name}
        </button>
        <span className="jp-BackendAI-badge" title="permission">
          {f.permission.toUpperCase()}
        </span>
      </div>
      <dl className="jp-BackendAI-dl">
        <dt>ID</dt>
        <dd title={f.id}>{f.id.slice(0, 8)}</dd>
        <dt>Host</dt>
        <dd>{f.host}</dd>
        <dt>Type</dt>
        <dd>
          {f.type}
          {f.group_name ? ` (${f.group_name})` : ''}
          {f.via === 'shared' && f.user_email ? ` from ${f.user_email}` : ''}
        </dd>
        <dt>Usage mode</dt>
        <dd>{f.usage_mode}</dd>
      </dl>
      <UsageBar folder={f} stamp={props.stamp} />
      <div className="jp-BackendAI-actions">
        <Button label="Open" title={`Open folder ${f.name}`} onClick={props.open} />
        {canManage ? <Button label="Rename" title={`Rename folder ${f.name}`} onClick={() => void rename()} /> : null}
        {f.is_owner && f.type === 'user' ? (
          <Button label="Invite" title={`Invite users to ${f.name}`} onClick={() => void invite(false)} />
        ) : null}
        {f.is_owner && f.type === 'user' ? (
          <Button label="Sharing" title={`Sharing of ${f.name}`} onClick={() => void showSharingDialog(f)} />
        ) : null}
        {props.admin && f.type === 'group' ? (
          <Button label="Share" title={`Share ${f.name} with project members`} onClick={() => void invite(true)} />
        ) : null}
        {f.via === 'shared' ? (
          <Button label="Leave" title={`Stop using ${f.name}`} onClick={() => void leave()} />
        ) : null}
        {canManage ? (
          <Button label="Delete" title={`Delete folder ${f.name}`} warn onClick={() => void remove()} />
        ) : null}
      </div>
    </li>
  );
}

function Invitations(props: { items: IInvitation[]; changed: () => void }): JSX.Element | null {
  if (!props.items.length) {
    return null;
  }
  const answer = async (inv: IInvitation, accept: boolean) => {
    try {
      await requestAPI(`folders/invitations/${accept ? 'accept' : 'delete'}`, {
        method: 'POST',
        body: JSON.stringify({ inv_id: inv.id })
      });
    } catch (e) {
      await showError('Invitation', errorText(e));
    }
    props.changed();
  };
  return (
    <section aria-label="Invitations" className="jp-BackendAI-invitations">
      <h3 className="jp-BackendAI-subtitle">Invitations</h3>
      <ul className="jp-BackendAI-list">
        {props.items.map(inv => (
          <li key={inv.id} className="jp-BackendAI-card">
            <div>
              {inv.inviter} invites you to <strong>{inv.vfolder_name}</strong> ({inv.perm})
            </div>
            <div className="jp-BackendAI-actions">
              <Button
                label="Accept"
                title={`Accept the invitation to ${inv.vfolder_name}`}
                accept
                onClick={() => void answer(inv, true)}
              />
              <Button
                label="Reject"
                title={`Reject the invitation to ${inv.vfolder_name}`}
                onClick={() => void answer(inv, false)}
              />
            </div>
          </li>
        ))}
      </ul>
    </section>
  );
}

export interface IStorageApi {
  newFolder: () => Promise<void>;
  upload: () => Promise<void>;
}

function StorageView(props: {
  who: IWhoAmI | null;
  whoError: string;
  queue: UploadQueue;
  register: (api: IStorageApi) => void;
}): JSX.Element {
  const [tab, setTab] = React.useState<TabId>('folders');
  const [folders, setFolders] = React.useState<IFolder[]>([]);
  const [invitations, setInvitations] = React.useState<IInvitation[]>([]);
  const [error, setError] = React.useState('');
  const [loaded, setLoaded] = React.useState(false);
  const [open, setOpen] = React.useState<IFolder | null>(null);
  const [stamp, setStamp] = React.useState(0);
  const explorer = React.useRef<{ upload: () => void } | null>(null);
  const admin = isAdmin(props.who);

  // A slow listing must not overwrite a newer one (the first one, with sizes to measure, can
  // answer after the one a new folder asked for).
  const round = React.useRef(0);
  const load = React.useCallback(async () => {
    const mine = ++round.current;
    try {
      const [list, inv] = await Promise.all([
        requestAPI<IFolder[]>('folders'),
        requestAPI<{ invitations: IInvitation[] }>('folders/invitations/list')
      ]);
      if (mine !== round.current) {
        return;
      }
      setFolders(list);
      setInvitations(inv.invitations);
      setError('');
      setOpen(current => (current ? list.find(f => f.id === current.id) || null : null));
    } catch (e) {
      if (mine !== round.current) {
        return;
      }
      setError(errorText(e));
    }
    setStamp(s => s + 1);
    setLoaded(true);
  }, []);

  React.useEffect(() => {
    void load();
    const done = () => setStamp(s => s + 1);
    props.queue.finished.connect(done);
    return () => {
      props.queue.finished.disconnect(done);
    };
    // Once: the panel's queue lives as long as the view, and `load` guards itself by round.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  const newFolder = async () => {
    const request = await showNewFolderDialog(admin);
    if (!request) {
      return;
    }
    try {
      const made = await requestAPI<IFolder>('folders', { method: 'POST', body: JSON.stringify(request) });
      setTab(made.automount ? 'automount' : 'folders');
    } catch (e) {
      await showError('The folder was not created', errorText(e));
    }
    await load();
  };

  const upload = async () => {
    if (open && explorer.current) {
      explorer.current.upload();
      return;
    }
    const writable = folders.filter(f => f.permission !== 'ro');
    if (!writable.length) {
      await showError('Upload', 'You have no folder to upload into: create one first.');
      return;
    }
    const name = writable.length === 1 ? writable[0].name : await askFolder(writable);
    const folder = writable.find(f => f.name === name);
    if (folder) {
      setOpen(folder);
      // The explorer registers its file picker once it is shown.
      window.setTimeout(() => explorer.current?.upload(), 50);
    }
  };

  React.useEffect(() => {
    props.register({ newFolder, upload });
  });

  const shown = folders.filter(f =>
    tab === 'automount'
      ? f.automount
      : tab === 'shared'
        ? f.via === 'shared' && !f.automount
        : !f.automount && f.via !== 'shared'
  );
  const tabs = [
    { id: 'folders', label: 'Folders' },
    { id: 'automount', label: 'Automount' },
    { id: 'shared', label: invitations.length ? `Shared (${invitations.length})` : 'Shared' }
  ];

  return (
    <div className="jp-BackendAI-panel">
      <PanelHead title="Data & Storage" whoError={props.whoError}>
        <Button label="New folder" title="Create a new folder" accept onClick={() => void newFolder()} />
        <Button label="Refresh" title="Refresh the folder list" onClick={() => void load()} />
      </PanelHead>
      {error ? <Message kind="error">{error}</Message> : null}
      {open ? (
        <Explorer
          folder={open}
          queue={props.queue}
          onClose={() => setOpen(null)}
          register={api => (explorer.current = api)}
        />
      ) : (
        <>
          <Tabs
            tabs={tabs}
            current={tab}
            label="Folders"
            idPrefix="jp-BackendAI-storage"
            onChange={id => setTab(id as TabId)}
          >
            {tab === 'shared' ? <Invitations items={invitations} changed={() => void load()} /> : null}
            {tab === 'automount' ? (
              <div className="jp-BackendAI-hint">
                Folders whose name starts with a dot are mounted into every new session (for example .local keeps pip
                install --user packages).
              </div>
            ) : null}
            {loaded && !shown.length ? (
              <div className="jp-BackendAI-empty">
                {tab === 'folders'
                  ? 'No folder yet.'
                  : tab === 'automount'
                    ? 'No automount folder.'
                    : 'Nothing is shared with you.'}
              </div>
            ) : null}
            <ul className="jp-BackendAI-list" aria-label={`${tab} list`}>
              {shown.map(f => (
                <FolderCard
                  key={f.id}
                  folder={f}
                  admin={admin}
                  stamp={stamp}
                  open={() => setOpen(f)}
                  changed={() => void load()}
                />
              ))}
            </ul>
          </Tabs>
        </>
      )}
      <Uploads queue={props.queue} />
    </div>
  );
}

async function askFolder(folders: IFolder[]): Promise<string | null> {
  const id = uid('upload-folder');
  function Pick(p: { update: (v: string | null) => void }): JSX.Element {
    const [name, setName] = React.useState(folders[0].name);
    p.update(name);
    return (
      <Field label="Upload into folder" id={id}>
        <select id={id} value={name} onChange={e => setName(e.target.value)}>
          {folders.map(f => (
            <option key={f.id} value={f.name}>
              {f.name}
            </option>
          ))}
        </select>
      </Field>
    );
  }
  return showForm<string>('Upload files', update => <Pick update={update} />, 'Choose files');
}

export class StoragePanel extends WhoPanel {
  constructor(whoami: WhoAmIModel) {
    super('backendai-storage', 'jp-BackendAI-storagePanel', 'Backend.AI data & storage', whoami);
  }

  readonly uploads = new UploadQueue();

  async newFolder(): Promise<void> {
    const api = await this._ready();
    await api?.newFolder();
  }

  async upload(): Promise<void> {
    const api = await this._ready();
    await api?.upload();
  }

  /** The view's actions, once it has rendered (a panel never shown has not). */
  private async _ready(): Promise<IStorageApi | null> {
    for (let i = 0; i < 50 && !this._api; i++) {
      this.update();
      await new Promise(r => setTimeout(r, 40));
    }
    return this._api;
  }

  protected render(): JSX.Element {
    return (
      <StorageView who={this.who} whoError={this.whoError} queue={this.uploads} register={api => (this._api = api)} />
    );
  }

  private _api: IStorageApi | null = null;
}
