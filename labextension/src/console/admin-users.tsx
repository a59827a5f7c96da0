/**
 * Users (F35–F37) and Credentials (keypairs, F38–F39). Users are never deleted, only
 * deactivated; a new user gets a keypair whose secret key is shown once.
 */
import React, { useState } from 'react';

import { IAdminContext } from './adminkit';
import { api, IKeypair, IPolicy, segment } from '../api';
import {
  AdminList,
  Button,
  CheckField,
  ErrorMessage,
  FormDialog,
  MultiCheck,
  NumberField,
  PasswordRules,
  SecretResult,
  SelectField,
  TextField,
  useActions,
  useLoad,
  useShow
} from '../components';
import { formatTime } from '../format';
import { wholeNumber } from '../slots';

export interface IUser {
  uuid: string;
  email: string;
  username: string;
  full_name: string;
  description: string;
  status: string;
  is_active: boolean;
  need_password_change: boolean;
  role: string;
  domain_name: string;
  groups: string[];
  created_at: string | null;
}

const STATUSES = ['active', 'inactive', 'before-verification'];

function roles(ctx: IAdminContext): string[] {
  return ctx.superadmin ? ['user', 'admin', 'monitor', 'superadmin'] : ['user', 'admin', 'monitor'];
}

function usePolicies() {
  return useLoad(() => api<{ policies: IPolicy[] }>('admin/policies').then(r => r.policies), []);
}

function CreateUser(props: {
  ctx: IAdminContext;
  onClose: () => void;
  onCreated: (answer: { user: IUser; keypair: IKeypair }) => void;
}): JSX.Element {
  const { ctx } = props;
  const [email, setEmail] = useState('');
  const [username, setUsername] = useState('');
  const [fullName, setFullName] = useState('');
  const [password, setPassword] = useState('');
  const [role, setRole] = useState('user');
  const [domain, setDomain] = useState(ctx.domain);
  const [groups, setGroups] = useState<string[]>([]);
  const [policy, setPolicy] = useState('default');
  const [needChange, setNeedChange] = useState(false);
  const policies = usePolicies();
  const domains = useLoad(
    () => api<{ domains: { name: string }[] }>('admin/domains').then(r => r.domains.map(d => d.name)),
    []
  );
  const groupNames = useLoad(
    () =>
      api<{ groups: { name: string }[] }>(`admin/groups?domain=${segment(domain)}`).then(r =>
        r.groups.map(g => g.name)
      ),
    [domain]
  );

  const submit = async () => {
    const body: Record<string, unknown> = {
      email: email.trim(),
      password,
      role,
      domain,
      groups: groups.filter(g => groupNames.data?.includes(g)),
      policy,
      need_password_change: needChange
    };
    if (username.trim()) {
      body.username = username.trim();
    }
    if (fullName.trim()) {
      body.full_name = fullName.trim();
    }
    props.onCreated(await api('admin/users', 'POST', body));
  };

  return (
    <FormDialog title="New user" submitLabel="Create user" onSubmit={submit} onClose={props.onClose} wide>
      <ErrorMessage error={policies.error || domains.error || groupNames.error} />
      <div className="jp-BackendAI-grid">
        <TextField label="E-mail" type="email" name="email" value={email} onChange={setEmail} required />
        <TextField
          label="User name"
          name="username"
          value={username}
          onChange={setUsername}
          hint="Blank: the part of the e-mail before @."
        />
        <TextField label="Full name" name="full_name" value={fullName} onChange={setFullName} />
        <TextField
          label="Password"
          type="password"
          name="password"
          autoComplete="new-password"
          value={password}
          onChange={setPassword}
          required
        />
      </div>
      <PasswordRules password={password} />
      <div className="jp-BackendAI-grid">
        <SelectField label="Role" name="role" value={role} onChange={setRole} options={roles(ctx)} />
        <SelectField
          label="Domain"
          name="domain"
          value={domain}
          onChange={setDomain}
          options={domains.data || [ctx.domain]}
          disabled={!ctx.superadmin}
        />
        <SelectField
          label="Resource policy"
          name="policy"
          value={policy}
          onChange={setPolicy}
          options={(policies.data || [{ name: 'default' } as IPolicy]).map(p => p.name)}
        />
      </div>
      <MultiCheck
        legend="Projects (groups)"
        options={groupNames.data || []}
        value={groups}
        onChange={setGroups}
        empty="This domain has no projects."
      />
      <CheckField label="Must change the password at first login" checked={needChange} onChange={setNeedChange} />
    </FormDialog>
  );
}

function EditUser(props: { ctx: IAdminContext; user: IUser; onClose: () => void; onSaved: () => void }): JSX.Element {
  const { user } = props;
  const [username, setUsername] = useState(user.username);
  const [fullName, setFullName] = useState(user.full_name);
  const [description, setDescription] = useState(user.description);
  const [role, setRole] = useState(user.role);
  const [status, setStatus] = useState(user.status);
  const [needChange, setNeedChange] = useState(user.need_password_change);
  const [password, setPassword] = useState('');

  const submit = async () => {
    // Only what changed: an unchanged role or status of one's own account is not a change.
    const body: Record<string, unknown> = {};
    const changed = (key: string, now: unknown, before: unknown) => {
      if (now !== before) {
        body[key] = now;
      }
    };
    changed('username', username.trim(), user.username);
    changed('full_name', fullName, user.full_name);
    changed('description', description, user.description);
    changed('role', role, user.role);
    changed('status', status, user.status);
    changed('need_password_change', needChange, user.need_password_change);
    if (password) {
      body.password = password;
    }
    if (Object.keys(body).length) {
      await api(`admin/users/${segment(user.email)}`, 'PATCH', body);
    }
    props.onSaved();
  };

  return (
    <FormDialog title={`Edit ${user.email}`} submitLabel="Save" onSubmit={submit} onClose={props.onClose} wide>
      <div className="jp-BackendAI-grid">
        <TextField label="User name" name="username" value={username} onChange={setUsername} />
        <TextField label="Full name" name="full_name" value={fullName} onChange={setFullName} />
        <TextField label="Description" name="description" value={description} onChange={setDescription} />
        <SelectField
          label="Role"
          name="role"
          value={role}
          onChange={setRole}
          options={Array.from(new Set([...roles(props.ctx), user.role]))}
        />
        <SelectField label="Status" name="status" value={status} onChange={setStatus} options={STATUSES} />
        <TextField
          label="New password"
          type="password"
          name="password"
          autoComplete="new-password"
          value={password}
          onChange={setPassword}
          hint="Blank: keep the password."
        />
      </div>
      {password && <PasswordRules password={password} />}
      <CheckField label="Must change the password at next login" checked={needChange} onChange={setNeedChange} />
      <p className="jp-BackendAI-hint">
        Domain {user.domain_name}; projects: {user.groups.join(', ') || 'none'}; created {formatTime(user.created_at)}.
      </p>
    </FormDialog>
  );
}

export function UsersTab(props: { ctx: IAdminContext }): JSX.Element {
  const [status, show] = useShow('user-status', [
    ['active', 'Active users'],
    ['inactive', 'Inactive users'],
    ['all', 'All users']
  ]);
  const users = useLoad(() => api<{ users: IUser[] }>(`admin/users?status=${status}`).then(r => r.users), [status]);
  const acts = useActions(users.reload);
  const [creating, setCreating] = useState(false);
  const [editing, setEditing] = useState<IUser | null>(null);
  const [created, setCreated] = useState<{ user: IUser; keypair: IKeypair } | null>(null);

  return (
    <AdminList
      label="Users"
      list={users}
      what="users"
      actions={acts}
      show={show}
      toolbar={
        <Button kind="accept" onClick={() => setCreating(true)}>
          + New user
        </Button>
      }
      caption="Users"
      rowKey={u => u.email}
      columns={[
        { label: 'E-mail', render: u => u.email },
        { label: 'User name', render: u => u.username },
        { label: 'Full name', render: u => u.full_name || '—' },
        { label: 'Role', render: u => u.role },
        { label: 'Status', render: u => u.status },
        { label: 'Domain', render: u => u.domain_name },
        { label: 'Projects', render: u => u.groups.join(', ') || '—' },
        { label: 'Password change', render: u => (u.need_password_change ? 'required' : '—') }
      ]}
      rowActions={u => (
        <>
          <Button onClick={() => setEditing(u)} aria-label={`Edit ${u.email}`}>
            Edit
          </Button>
          {u.is_active && u.email !== props.ctx.email && (
            <Button
              kind="warn"
              onClick={() =>
                void acts.run(`${u.email} was deactivated.`, () => api(`admin/users/${segment(u.email)}`, 'DELETE'), [
                  'Deactivate user?',
                  `${u.email} will no longer be able to log in.`,
                  'Deactivate'
                ])
              }
              aria-label={`Deactivate ${u.email}`}
            >
              Deactivate
            </Button>
          )}
        </>
      )}
    >
      {creating && (
        <CreateUser
          ctx={props.ctx}
          onClose={() => setCreating(false)}
          onCreated={answer => {
            setCreating(false);
            setCreated(answer);
            acts.saved(`${answer.user.email} was created.`);
          }}
        />
      )}
      {editing && (
        <EditUser
          ctx={props.ctx}
          user={editing}
          onClose={() => setEditing(null)}
          onSaved={() => {
            acts.saved(`${editing.email} was saved.`);
            setEditing(null);
          }}
        />
      )}
      {created && (
        <SecretResult
          title={`User ${created.user.email} created`}
          note="Its first keypair, for Backend.AI clients and scripts:"
          keypair={created.keypair}
          onClose={() => setCreated(null)}
        />
      )}
    </AdminList>
  );
}

// --- credentials ---------------------------------------------------------------------------------

function KeypairDialog(props: {
  keypair?: IKeypair;
  onClose: () => void;
  onDone: (answer: IKeypair) => void;
}): JSX.Element {
  const editing = props.keypair;
  const [user, setUser] = useState('');
  const [policy, setPolicy] = useState(editing?.resource_policy || 'default');
  const [rateLimit, setRateLimit] = useState(String(editing?.rate_limit ?? 1000));
  const [isAdmin, setIsAdmin] = useState(editing?.is_admin || false);
  const [accessKey, setAccessKey] = useState('');
  const [secretKey, setSecretKey] = useState('');
  const policies = usePolicies();

  const submit = async () => {
    const body: Record<string, unknown> = {
      policy,
      rate_limit: wholeNumber('The rate limit', rateLimit, 1000),
      is_admin: isAdmin
    };
    if (editing) {
      props.onDone(await api(`admin/keypairs/${segment(editing.access_key)}`, 'PATCH', body));
      return;
    }
    body.user = user.trim();
    if (accessKey.trim()) {
      body.access_key = accessKey.trim();
    }
    if (secretKey.trim()) {
      body.secret_key = secretKey.trim();
    }
    props.onDone(await api('admin/keypairs', 'POST', body));
  };

  return (
    <FormDialog
      title={editing ? `Edit keypair ${editing.access_key}` : 'New keypair'}
      submitLabel={editing ? 'Save' : 'Create keypair'}
      onSubmit={submit}
      onClose={props.onClose}
      wide
    >
      <ErrorMessage error={policies.error} />
      <div className="jp-BackendAI-grid">
        {!editing && (
          <TextField label="User (e-mail or user name)" name="user" value={user} onChange={setUser} required />
        )}
        <SelectField
          label="Resource policy"
          name="policy"
          value={policy}
          onChange={setPolicy}
          options={(policies.data || [{ name: policy } as IPolicy]).map(p => p.name)}
        />
        <NumberField
          label="Rate limit"
          name="rate_limit"
          value={rateLimit}
          onChange={setRateLimit}
          hint="Requests per 15 minutes."
        />
        {!editing && (
          <>
            <TextField
              label="Access key (optional)"
              name="access_key"
              value={accessKey}
              onChange={setAccessKey}
              hint="Blank: generated (AKIA… 20 characters)."
            />
            <TextField
              label="Secret key (optional)"
              name="secret_key"
              value={secretKey}
              onChange={setSecretKey}
              hint="Blank: generated (40 characters)."
            />
          </>
        )}
      </div>
      <CheckField label="Administrator keypair" checked={isAdmin} onChange={setIsAdmin} />
    </FormDialog>
  );
}

export function CredentialsTab(): JSX.Element {
  const [active, show] = useShow('keypair-status', [
    ['true', 'Active keypairs'],
    ['false', 'Inactive keypairs'],
    ['all', 'All keypairs']
  ]);
  const keypairs = useLoad(
    () => api<{ keypairs: IKeypair[] }>(`admin/keypairs?active=${active}`).then(r => r.keypairs),
    [active]
  );
  const acts = useActions(keypairs.reload);
  const [dialog, setDialog] = useState<{ keypair?: IKeypair } | null>(null);
  const [created, setCreated] = useState<IKeypair | null>(null);
  const path = (k: IKeypair) => `admin/keypairs/${segment(k.access_key)}`;
  const setActiveKey = (k: IKeypair, on: boolean) =>
    acts.run(`${k.access_key} was ${on ? 'activated' : 'deactivated'}.`, () =>
      api(path(k), 'PATCH', { is_active: on })
    );

  return (
    <AdminList
      label="Credentials"
      list={keypairs}
      what="keypairs"
      actions={acts}
      show={show}
      toolbar={
        <Button kind="accept" onClick={() => setDialog({})}>
          + New keypair
        </Button>
      }
      caption="Keypairs"
      rowKey={k => k.access_key}
      columns={[
        { label: 'Access key', render: k => <code>{k.access_key}</code> },
        { label: 'User', render: k => k.user_id },
        { label: 'Permission', render: k => (k.is_admin ? 'admin' : 'user') },
        { label: 'Policy', render: k => k.resource_policy },
        { label: 'Rate limit', render: k => `${k.rate_limit} / 15 min` },
        { label: 'Queries', render: k => k.num_queries },
        { label: 'Created', render: k => formatTime(k.created_at) },
        { label: 'Last used', render: k => formatTime(k.last_used) },
        { label: 'Status', render: k => (k.is_active ? 'active' : 'inactive') }
      ]}
      rowActions={k => (
        <>
          <Button onClick={() => setDialog({ keypair: k })} aria-label={`Edit ${k.access_key}`}>
            Edit
          </Button>
          {k.is_active ? (
            <Button onClick={() => void setActiveKey(k, false)} aria-label={`Deactivate ${k.access_key}`}>
              Deactivate
            </Button>
          ) : (
            <Button onClick={() => void setActiveKey(k, true)} aria-label={`Activate ${k.access_key}`}>
              Activate
            </Button>
          )}
          <Button
            kind="warn"
            aria-label={`Delete ${k.access_key}`}
            onClick={() =>
              void acts.run(`${k.access_key} was deleted.`, () => api(path(k), 'DELETE'), [
                'Delete keypair?',
                `${k.access_key} of ${k.user_id} is deleted for good (a keypair that ran a session cannot be deleted; deactivate it instead).`,
                'Delete'
              ])
            }
          >
            Delete
          </Button>
        </>
      )}
    >
      {dialog && (
        <KeypairDialog
          keypair={dialog.keypair}
          onClose={() => setDialog(null)}
          onDone={answer => {
            setDialog(null);
            if (answer.secret_key) {
              setCreated(answer);
            }
            acts.saved(`${answer.access_key} was saved.`);
          }}
        />
      )}
      {created && (
        <SecretResult title={`Keypair for ${created.user_id}`} keypair={created} onClose={() => setCreated(null)} />
      )}
    </AdminList>
  );
}
