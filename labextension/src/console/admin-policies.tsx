/**
 * Keypair resource policies (F40): CPU, RAM, GPU, fGPU (each may be unlimited), sessions,
 * containers per session, idle timeout, session lifetime, pending sessions, folders and their
 * capacity, storage hosts. Superadmins create, edit and delete; domain admins read.
 */
import React, { useState } from 'react';

import {
  bytesField,
  confirm,
  IAdminContext,
  IPolicy,
  SlotForm,
  slotForm,
  SlotInputs,
  slotsPayload,
  wholeNumber
} from './adminkit';
import {
  api,
  Btn,
  DataTable,
  ErrorMessage,
  errorText,
  FormDialog,
  formatBytes,
  formatDuration,
  formatSlot,
  Loading,
  SectionHeader,
  segment,
  StatusMessage,
  TextField,
  useLoad
} from './common';

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

  const submit = async () => {
    const body = policyPayload(fields, slots, p);
    if (p) {
      await api(`admin/policies/${segment(p.name)}`, 'PATCH', body);
    } else {
      await api('admin/policies', 'POST', { name: name.trim(), ...body });
    }
    props.onSaved(p ? p.name : name.trim());
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
      <div className="jp-BackendAI-c-grid">
        <TextField
          label="Concurrent sessions"
          type="number"
          min={0}
          name="max_concurrent_sessions"
          value={fields.max_concurrent_sessions}
          onChange={set('max_concurrent_sessions')}
          hint="0: no limit."
        />
        <TextField
          label="Containers per session"
          type="number"
          min={1}
          name="max_containers_per_session"
          value={fields.max_containers_per_session}
          onChange={set('max_containers_per_session')}
        />
        <TextField
          label="Idle timeout (seconds)"
          type="number"
          min={0}
          name="idle_timeout"
          value={fields.idle_timeout}
          onChange={set('idle_timeout')}
          hint="0: never."
        />
        <TextField
          label="Session lifetime (seconds)"
          type="number"
          min={0}
          name="max_session_lifetime"
          value={fields.max_session_lifetime}
          onChange={set('max_session_lifetime')}
          hint="0: no limit."
        />
        <TextField
          label="Pending sessions"
          type="number"
          min={0}
          name="max_pending_session_count"
          value={fields.max_pending_session_count}
          onChange={set('max_pending_session_count')}
          hint="Blank: no limit."
        />
      </div>
      <h3>Folders</h3>
      <div className="jp-BackendAI-c-grid">
        <TextField
          label="Folders"
          type="number"
          min={0}
          name="max_vfolder_count"
          value={fields.max_vfolder_count}
          onChange={set('max_vfolder_count')}
          hint="0: no limit."
        />
        <TextField
          label="Folder capacity"
          name="max_vfolder_size"
          value={fields.max_vfolder_size}
          onChange={set('max_vfolder_size')}
          placeholder="e.g. 10g"
          hint="Blank: no limit."
        />
        <TextField
          label="Storage hosts"
          name="allowed_vfolder_hosts"
          value={fields.allowed_vfolder_hosts}
          onChange={set('allowed_vfolder_hosts')}
          hint="Comma-separated, e.g. local."
        />
      </div>
    </FormDialog>
  );
}

export function PoliciesTab(props: { ctx: IAdminContext }): JSX.Element {
  const policies = useLoad(() => api<{ policies: IPolicy[] }>('admin/policies').then(r => r.policies), []);
  const [dialog, setDialog] = useState<{ policy?: IPolicy } | null>(null);
  const [error, setError] = useState('');
  const [done, setDone] = useState('');
  const su = props.ctx.superadmin;

  const remove = async (p: IPolicy) => {
    if (!(await confirm('Delete policy?', `The resource policy ${p.name} is deleted.`, 'Delete'))) {
      return;
    }
    setError('');
    try {
      await api(`admin/policies/${segment(p.name)}`, 'DELETE');
      setDone(`Policy ${p.name} was deleted.`);
      policies.reload();
    } catch (reason) {
      setError(errorText(reason));
    }
  };
  const slot = (p: IPolicy, s: string) => formatSlot(s, p.total_resource_slots[s] ?? 'Infinity');

  return (
    <section aria-label="Resource policies">
      <SectionHeader title="Resource policies" level={3} onRefresh={policies.reload}>
        {su && (
          <Btn kind="accept" onClick={() => setDialog({})}>
            + New policy
          </Btn>
        )}
      </SectionHeader>
      {!su && <p className="jp-BackendAI-c-hint">Only a superadmin may change policies.</p>}
      <ErrorMessage error={policies.error || error} onDismiss={error ? () => setError('') : undefined} />
      <StatusMessage text={done} />
      {policies.loading && !policies.data && <Loading what="policies" />}
      {policies.data && (
        <DataTable
          caption="Keypair resource policies"
          rows={policies.data}
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
          actions={
            su
              ? p => (
                  <>
                    <Btn onClick={() => setDialog({ policy: p })} aria-label={`Edit policy ${p.name}`}>
                      Edit
                    </Btn>
                    <Btn kind="warn" onClick={() => void remove(p)} aria-label={`Delete policy ${p.name}`}>
                      Delete
                    </Btn>
                  </>
                )
              : undefined
          }
        />
      )}
      {dialog && (
        <PolicyDialog
          policy={dialog.policy}
          onClose={() => setDialog(null)}
          onSaved={name => {
            setDialog(null);
            setDone(`Policy ${name} was saved.`);
            policies.reload();
          }}
        />
      )}
    </section>
  );
}
