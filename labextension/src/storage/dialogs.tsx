/**
 * The Data & Storage dialogs: new folder (F25), rename, delete by typing the name (F28),
 * invite (F32) and share (group folders), new sub-folder.
 */
import * as React from 'react';
import { errorText, IFolder, requestAPI } from '../api';
import { confirm, Field, Message, Options, showForm, uid } from '../components';

export interface INewFolder {
  name: string;
  host: string;
  permission: string;
  usage_mode: string;
  group?: string;
}

function NewFolderForm(props: { admin: boolean; update: (v: INewFolder | null) => void }): JSX.Element {
  const ids = React.useMemo(
    () => ({
      name: uid('nf-name'),
      host: uid('nf-host'),
      perm: uid('nf-perm'),
      mode: uid('nf-mode'),
      type: uid('nf-type'),
      group: uid('nf-group')
    }),
    []
  );
  const [hosts, setHosts] = React.useState<string[]>([]);
  const [groups, setGroups] = React.useState<string[]>([]);
  const [error, setError] = React.useState('');
  const [name, setName] = React.useState('');
  const [host, setHost] = React.useState('');
  const [permission, setPermission] = React.useState('rw');
  const [mode, setMode] = React.useState('general');
  const [kind, setKind] = React.useState<'user' | 'group'>('user');
  const [group, setGroup] = React.useState('');

  React.useEffect(() => {
    requestAPI<{ default: string | null; allowed: string[] }>('folders/_/hosts')
      .then(answer => {
        setHosts(answer.allowed);
        setHost(answer.default || answer.allowed[0] || '');
      })
      .catch(e => setError(errorText(e)));
    if (props.admin) {
      requestAPI<{ groups: { id: string; name: string }[] }>('resource/launch-options')
        .then(answer => {
          const names = answer.groups.map(g => g.name);
          setGroups(names);
          setGroup(names[0] || '');
        })
        .catch(e => setError(errorText(e)));
    }
    // Once, when the dialog opens.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  const value: INewFolder | null =
    name.trim() && host
      ? {
          name: name.trim(),
          host,
          permission,
          usage_mode: mode,
          ...(kind === 'group' && group ? { group } : {})
        }
      : null;
  props.update(value);

  return (
    <div>
      {error ? <Message kind="error">{error}</Message> : null}
      <Field
        label="Folder name"
        id={ids.name}
        hint="A name starting with a dot (like .local) is mounted into every session (Automount)."
      >
        <input id={ids.name} type="text" value={name} onChange={e => setName(e.target.value)} />
      </Field>
      <Field label="Storage host" id={ids.host}>
        <select id={ids.host} value={host} onChange={e => setHost(e.target.value)}>
          <Options values={hosts} />
        </select>
      </Field>
      {props.admin ? (
        <>
          <Field label="Type" id={ids.type}>
            <select id={ids.type} value={kind} onChange={e => setKind(e.target.value as 'user' | 'group')}>
              <option value="user">user (mine)</option>
              <option value="group">group (a project's members)</option>
            </select>
          </Field>
          {kind === 'group' ? (
            <Field label="Project" id={ids.group}>
              <select id={ids.group} value={group} onChange={e => setGroup(e.target.value)}>
                <Options values={groups} />
              </select>
            </Field>
          ) : null}
        </>
      ) : null}
      <Field label="Permission" id={ids.perm}>
        <select id={ids.perm} value={permission} onChange={e => setPermission(e.target.value)}>
          <option value="rw">read and write</option>
          <option value="ro">read only</option>
          <option value="wd">read, write and delete</option>
        </select>
      </Field>
      <Field label="Usage mode" id={ids.mode}>
        <select id={ids.mode} value={mode} onChange={e => setMode(e.target.value)}>
          <option value="general">general</option>
          <option value="data">data</option>
          <option value="model">model</option>
        </select>
      </Field>
    </div>
  );
}

export function showNewFolderDialog(admin: boolean): Promise<INewFolder | null> {
  return showForm<INewFolder>('New folder', update => <NewFolderForm admin={admin} update={update} />, 'Create');
}

/** One text field; resolves with the trimmed text, or null. */
export function askText(title: string, label: string, initial: string, okLabel: string): Promise<string | null> {
  const id = uid('text');
  function TextForm(props: { update: (v: string | null) => void }): JSX.Element {
    const [text, setText] = React.useState(initial);
    props.update(text.trim() ? text.trim() : null);
    return (
      <Field label={label} id={id}>
        <input id={id} type="text" value={text} onChange={e => setText(e.target.value)} />
      </Field>
    );
  }
  return showForm<string>(title, update => <TextForm update={update} />, okLabel);
}

/** F28: the folder is deleted only when its name is typed exactly. */
export async function confirmFolderDelete(folder: IFolder): Promise<boolean> {
  const id = uid('del-name');
  let typed = '';
  function DeleteForm(): JSX.Element {
    const [text, setText] = React.useState('');
    typed = text;
    return (
      <div>
        <p>
          The folder <strong>{folder.name}</strong> and every file in it will be deleted. This cannot be undone.
        </p>
        <Field label={`Type the folder's name (${folder.name}) to confirm`} id={id}>
          <input id={id} type="text" value={text} autoComplete="off" onChange={e => setText(e.target.value)} />
        </Field>
        {text && text !== folder.name ? <Message kind="error">The name does not match.</Message> : null}
      </div>
    );
  }
  const accepted = await confirm('Delete the folder?', <DeleteForm />, 'Delete');
  return accepted && typed === folder.name;
}

export interface IInvite {
  emails: string[];
  permission: string;
}

function InviteForm(props: { update: (v: IInvite | null) => void; share: boolean }): JSX.Element {
  const ids = React.useMemo(() => ({ emails: uid('inv-emails'), perm: uid('inv-perm') }), []);
  const [emails, setEmails] = React.useState('');
  const [permission, setPermission] = React.useState(props.share ? 'rw' : 'ro');
  const list = emails
    .split(/[\s,;]+/)
    .map(e => e.trim())
    .filter(Boolean);
  props.update(list.length ? { emails: list, permission } : null);
  return (
    <div>
      <Field label="E-mail addresses (separated by commas or spaces)" id={ids.emails}>
        <input id={ids.emails} type="text" value={emails} onChange={e => setEmails(e.target.value)} />
      </Field>
      <Field label="Permission" id={ids.perm}>
        <select id={ids.perm} value={permission} onChange={e => setPermission(e.target.value)}>
          <option value="ro">read only</option>
          <option value="rw">read and write</option>
          <option value="wd">read, write and delete</option>
        </select>
      </Field>
      {permission === 'rw' ? (
        <div className="jp-BackendAI-hint">
          Inside a session, read and write also lets them delete files: a mounted folder cannot allow one without the
          other. Only here and in the API is deleting kept for read, write and delete.
        </div>
      ) : null}
      {props.share ? (
        <div className="jp-BackendAI-hint">
          Sharing gives members of the folder's project their own permission on it.
        </div>
      ) : (
        <div className="jp-BackendAI-hint">The invited users accept the invitation in their Shared tab.</div>
      )}
    </div>
  );
}

export function showInviteDialog(folder: IFolder, share: boolean): Promise<IInvite | null> {
  return showForm<IInvite>(
    `${share ? 'Share' : 'Invite users to'} ${folder.name}`,
    update => <InviteForm update={update} share={share} />,
    share ? 'Share' : 'Invite'
  );
}
