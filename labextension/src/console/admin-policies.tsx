/**
 * Keypair resource policies (F40): CPU, RAM, GPU, fGPU (each may be unlimited), sessions,
 * containers per session, idle timeout, session lifetime, pending sessions, folders and their
 * capacity, storage hosts. Superadmins create, edit and delete; domain admins read.
 */
import React, { useState } from 'react';

import { IAdminContext, saveNamed } from './adminkit';
import { api, IPolicy, segment } from '../api';
import {
  AdminList,
  Button,
  EditDelete,
  FormDialog,
  NumberField,
  SlotInputs,
  TextField,
  useActions,
  useLoad
} from '../components';
import { formatAmount, formatBytes, formatDuration } from '../format';
import { bytesField, SlotForm, slotForm, slotsPayload, wholeNumber } from '../slots';

function sizeText(bytes: number): string {
  if (!bytes) {
    return '';
  }
  for (const [unit, size] of [
    ['t', 1024 ** 4],
    ['g', 1024 ** 3],
    ['m', 1024 ** 2]
  ] as [string, number][]) {
    if (bytes % size === 0) {
      return `${bytes / size}${unit}`;
    }
  }
  return String(bytes);
}

/** The body of POST /admin/policies (with `name`) or PATCH /admin/policies/{name}. */
export function policyPayload(
  fields: Record<string, string>,
  slots: SlotForm,
  before?: IPolicy
): Record<string, unknown> {
  const body: Record<string, unknown> = {
    // A limit cleared in an edit must be sent as unlimited: the manager merges slots.
    total_resource_slots: slotsPayload(slots, slot =>
      before && before.total_resource_slots[slot] !== undefined && before.total_resource_slots[slot] !== 'Infinity'
        ? 'unlimited'
        : undefined
    ),
    max_concurrent_sessions: wholeNumber('Concurrent sessions', fields.max_concurrent_sessions),
    max_containers_per_session: wholeNumber('Containers per session', fields.max_containers_per_session, 1),
    idle_timeout: wholeNumber('Idle timeout', fields.idle_timeout),
    max_session_lifetime: wholeNumber('Session lifetime', fields.max_session_lifetime),
    max_vfolder_count: wholeNumber('Folders', fields.max_vfolder_count),
    max_vfolder_size: bytesField('Folder capacity', fields.max_vfolder_size),
    allowed_vfolder_hosts: fields.allowed_vfolder_hosts
      .split(',')
      .map(h => h.trim())
      .filter(Boolean)
  };
  if (fields.max_pending_session_count.trim() !== '') {
    body.max_pending_session_count = wholeNumber('Pending sessions', fields.max_pending_session_count);
  }
  return body;
}

interface IPolicyField {
  key: string;
  label: string;
  /** A text field (a size, a list) rather than a whole number. */
  text?: boolean;
  min?: number;
  hint?: string;
  placeholder?: string;
}

const SESSION_FIELDS: IPolicyField[] = [
  { key: 'max_concurrent_sessions', label: 'Concurrent sessions', hint: '0: no limit.' },
  { key: 'max_containers_per_session', label: 'Containers per session', min: 1 },
  { key: 'idle_timeout', label: 'Idle timeout (seconds)', hint: '0: never.' },
  { key: 'max_session_lifetime', label: 'Session lifetime (seconds)', hint: '0: no limit.' },
  { key: 'max_pending_session_count', label: 'Pending sessions', hint: 'Blank: no limit.' }
];

const FOLDER_FIELDS: IPolicyField[] = [
  { key: 'max_vfolder_count', label: 'Folders', hint: '0: no limit.' },
  { key: 'max_vfolder_size', label: 'Folder capacity', text: true, placeholder: 'e.g. 10g', hint: 'Blank: no limit.' },
  { key: 'allowed_vfolder_hosts', label: 'Storage hosts', text: true, hint: 'Comma-separated, e.g. local.' }
];

function PolicyDialog(props: { policy?: IPolicy; onClose: () => void; onSaved: (name: string) => void }): JSX.Element {
  const p = props.policy;
  const [name, setName] = useState(p?.name || '');
  const [slots, setSlots] = useState<SlotForm>(slotForm(p?.total_resource_slots));
  const [fields, setFields] = useState<Record<string, string>>({
    max_concurrent_sessions: String(p?.max_concurrent_sessions ?? 0),
    max_containers_per_session: String(p?.max_containers_per_session ?? 1),
    idle_timeout: String(p?.idle_timeout ?? 0),
    max_session_lifetime: String(p?.max_session_lifetime ?? 0),
    max_pending_session_count: p?.max_pending_session_count != null ? String(p.max_pending_session_count) : '',
    max_vfolder_count: String(p?.max_vfolder_count ?? 0),
    max_vfolder_size: sizeText(p?.max_vfolder_size ?? 0),
    allowed_vfolder_hosts: (p?.allowed_vfolder_hosts || ['local']).join(', ')
  });
  const set = (key: string) => (value: string) => setFields(f => ({ ...f, [key]: value }));
  const grid = (list: IPolicyField[]) => (
    <div className="jp-BackendAI-grid">
      {list.map(f => {
        const common = {
          label: f.label,
          name: f.key,
          value: fields[f.key],
          onChange: set(f.key),
          hint: f.hint
        };
        return f.text ? (
          <TextField key={f.key} {...common} placeholder={f.placeholder} />
        ) : (
          <NumberField key={f.key} {...common} min={f.min ?? 0} />
        );
      })}
    </div>
  );

  const submit = async () => {
    props.onSaved(await saveNamed('admin/policies', p?.name, name, policyPayload(fields, slots, p)));
  };

  return (
    <FormDialog
      title={p ? `Edit policy ${p.name}` : 'New resource policy'}
      submitLabel={p ? 'Save' : 'Create policy'}
      onSubmit={submit}
      onClose={props.onClose}
      wide
    >
      {!p && <TextField label="Name" name="name" value={name} onChange={setName} required />}
      <h3>Resources per keypair</h3>
      <SlotInputs form={slots} onChange={setSlots} blankMeans="unlimited" />
      <h3>Sessions</h3>
      {grid(SESSION_FIELDS)}
      <h3>Folders</h3>
      {grid(FOLDER_FIELDS)}
    </FormDialog>
  );
}

export function PoliciesTab(props: { ctx: IAdminContext }): JSX.Element {
  const policies = useLoad(() => api<{ policies: IPolicy[] }>('admin/policies').then(r => r.policies), []);
  const acts = useActions(policies.reload);
  const [dialog, setDialog] = useState<{ policy?: IPolicy } | null>(null);
  const su = props.ctx.superadmin;
  const slot = (p: IPolicy, s: string) => formatAmount(s, p.total_resource_slots[s] ?? 'Infinity');

  return (
    <AdminList
      label="Resource policies"
      list={policies}
      what="policies"
      actions={acts}
      toolbar={
        su && (
          <Button kind="accept" onClick={() => setDialog({})}>
            + New policy
          </Button>
        )
      }
      note={!su && <p className="jp-BackendAI-hint">Only a superadmin may change policies.</p>}
      caption="Keypair resource policies"
      rowKey={p => p.name}
      columns={[
        { label: 'Name', render: p => p.name },
        { label: 'CPU', render: p => slot(p, 'cpu') },
        { label: 'RAM', render: p => slot(p, 'mem') },
        { label: 'GPU', render: p => slot(p, 'cuda.device') },
        { label: 'fGPU', render: p => slot(p, 'cuda.shares') },
        { label: 'Sessions', render: p => p.max_concurrent_sessions || 'no limit' },
        { label: 'Containers', render: p => p.max_containers_per_session },
        { label: 'Idle timeout', render: p => formatDuration(p.idle_timeout) },
        { label: 'Lifetime', render: p => formatDuration(p.max_session_lifetime, 'no limit') },
        { label: 'Folders', render: p => p.max_vfolder_count || 'no limit' },
        { label: 'Capacity', render: p => (p.max_vfolder_size ? formatBytes(p.max_vfolder_size) : 'no limit') },
        { label: 'Hosts', render: p => p.allowed_vfolder_hosts.join(', ') }
      ]}
      rowActions={
        su
          ? p => (
              <EditDelete
                noun="policy"
                name={p.name}
                onEdit={() => setDialog({ policy: p })}
                onDelete={() =>
                  void acts.run(
                    `Policy ${p.name} was deleted.`,
                    () => api(`admin/policies/${segment(p.name)}`, 'DELETE'),
                    ['Delete policy?', `The resource policy ${p.name} is deleted.`, 'Delete']
                  )
                }
              />
            )
          : undefined
      }
    >
      {dialog && (
        <PolicyDialog
          policy={dialog.policy}
          onClose={() => setDialog(null)}
          onSaved={name => {
            setDialog(null);
            acts.saved(`Policy ${name} was saved.`);
          }}
        />
      )}
    </AdminList>
  );
}
