/**
 * Environments: images with their minimum resources (F41) and their installs on the agents (which
 * agents have each, the pulls in progress), resource presets (F43) and Docker
 * registries with a rescan (F42).
 */
import React, { useEffect, useState } from 'react';

import { IAdminContext, saveNamed } from './adminkit';
import { api, errorText, segment, Slots } from '../api';
import {
  AdminList,
  Button,
  CheckField,
  EditDelete,
  FormDialog,
  SelectField,
  SlotInputs,
  TabPages,
  TextField,
  useActions,
  useLoad,
  useShow
} from '../components';
import { amount, formatBytes, formatSlots } from '../format';
import { slotForm, SlotForm, slotsPayload, slotText } from '../slots';

interface IImage {
  id: string;
  reference: string;
  registry: string;
  name: string;
  tag: string;
  architecture: string;
  digest: string | null;
  labels: Record<string, string>;
  resource_limits: Slots;
  installed: boolean;
  /** The agents that have it (Backend.AI's field). */
  installed_agents: string[];
  /** Each agent's install: queued, pulling (with bytes), installed, failed (with why). */
  installs: IInstall[];
}

interface IInstall {
  agent: string;
  status: 'queued' | 'pulling' | 'installed' | 'failed';
  progress: { current: number | null; total: number | null } | null;
  message: string;
  updated_at: string | null;
}

/** An install in progress or failed, in words: "pulling on docker-a: 45 % (12 MiB of 27 MiB)". */
export function installText(i: IInstall): string {
  if (i.status === 'pulling') {
    const p = i.progress;
    const bytes =
      p && p.total
        ? `: ${Math.floor((100 * (p.current || 0)) / p.total)} % ` +
          `(${formatBytes(p.current || 0)} of ${formatBytes(p.total)})`
        : '';
    return `pulling on ${i.agent}${bytes}${!bytes && i.message ? ` (${i.message})` : ''}`;
  }
  if (i.status === 'failed') {
    return `failed on ${i.agent}: ${i.message}`;
  }
  return `${i.status} on ${i.agent}`;
}

function busyInstalls(images: IImage[] | undefined): boolean {
  return !!images && images.some(i => i.installs.some(x => x.status === 'queued' || x.status === 'pulling'));
}

function ImageInstall(props: { image: IImage; onClose: () => void; onSaved: (text: string) => void }): JSX.Element {
  const [group, setGroup] = useState('');
  const groups = useLoad(
    () =>
      api<{ scaling_groups: { name: string }[] }>('admin/scaling-groups').then(r => r.scaling_groups.map(s => s.name)),
    []
  );
  const submit = async () => {
    const body: Record<string, unknown> = { architecture: props.image.architecture };
    if (group) {
      body.scaling_group = group;
    }
    const answer = await api<{ queued: string[]; already: string[] }>(
      `admin/images/${segment(props.image.reference, true)}/install`,
      'POST',
      body
    );
    const parts = [
      answer.queued.length
        ? `The agents pull ${props.image.reference}: ${answer.queued.join(', ')}.`
        : `No agent needed to pull ${props.image.reference}.`
    ];
    if (answer.already.length) {
      parts.push(`Already there or on its way: ${answer.already.join(', ')}.`);
    }
    props.onSaved(parts.join(' '));
  };
  return (
    <FormDialog
      title={`Install ${props.image.reference}`}
      submitLabel="Install"
      onSubmit={submit}
      onClose={props.onClose}
    >
      <p className="jp-BackendAI-hint">
        The agents pull the image from its registry; the list shows the progress. Sessions may then start from it.
      </p>
      <SelectField
        label="Onto the agents of"
        value={group}
        onChange={setGroup}
        options={[
          { value: '', label: 'every resource group' },
          ...(groups.data || []).map(g => ({ value: g, label: g }))
        ]}
      />
    </FormDialog>
  );
}

interface IPreset {
  name: string;
  resource_slots: Slots;
  shared_memory: string | null;
  scaling_group_name: string | null;
}

interface IRegistry {
  hostname: string;
  url: string;
  type: string;
  project: string | null;
  username: string | null;
  has_password: boolean;
}

export interface IRescanReport {
  added: number;
  updated: number;
  images: string[];
  skipped: string[];
  errors: string[];
  registries: string[];
}

/** One paragraph for a registry scan's report. */
export function rescanText(report: IRescanReport): string {
  const parts = [
    `Scanned ${report.registries.length ? report.registries.join(', ') : 'no registry'}:`,
    `${report.added} image(s) added, ${report.updated} updated`
  ];
  if (report.skipped.length) {
    parts.push(`${report.skipped.length} skipped (not labeled for the platform)`);
  }
  if (report.errors.length) {
    parts.push(`errors: ${report.errors.join('; ')}`);
  }
  return parts.join(' ') + '.';
}

function ImageMinimum(props: { image: IImage; onClose: () => void; onSaved: () => void }): JSX.Element {
  const [slots, setSlots] = useState<SlotForm>(slotForm(props.image.resource_limits));
  const submit = async () => {
    const min = slotsPayload(slots);
    if (!Object.keys(min).length) {
      throw new Error('Give at least one minimum.');
    }
    await api(`admin/images/${segment(props.image.reference, true)}`, 'PATCH', {
      min_slots: min,
      architecture: props.image.architecture
    });
    props.onSaved();
  };
  return (
    <FormDialog
      title={`Minimum resources of ${props.image.reference}`}
      submitLabel="Save"
      onSubmit={submit}
      onClose={props.onClose}
      wide
    >
      <p className="jp-BackendAI-hint">A session asking for less is raised to these amounts.</p>
      <SlotInputs form={slots} onChange={setSlots} blankMeans="unchanged" prefix="Minimum " />
    </FormDialog>
  );
}

function ImagesPanel(props: { ctx: IAdminContext }): JSX.Element {
  const [installed, show] = useShow('installed', [
    ['', 'All images'],
    ['true', 'Installed on an agent'],
    ['false', 'Not installed']
  ]);
  const images = useLoad(
    () => api<{ images: IImage[] }>(`admin/images${installed ? `?installed=${installed}` : ''}`).then(r => r.images),
    [installed]
  );
  const [editing, setEditing] = useState<IImage | null>(null);
  const [installing, setInstalling] = useState<IImage | null>(null);
  const acts = useActions(images.reload);
  // While agents pull, the list follows their progress.
  const busy = busyInstalls(images.data);
  useEffect(() => {
    if (!busy) {
      return;
    }
    const timer = window.setInterval(images.reload, 1500);
    return () => window.clearInterval(timer);
  }, [busy, images.reload]);
  return (
    <AdminList
      label="Images"
      list={images}
      what="images"
      actions={acts}
      show={show}
      caption="Images"
      rowKey={i => `${i.reference}@${i.architecture}`}
      columns={[
        { label: 'Registry', render: i => i.registry },
        { label: 'Name', render: i => i.name },
        { label: 'Tag', render: i => i.tag },
        { label: 'Architecture', render: i => i.architecture },
        { label: 'Minimum', render: i => formatSlots(i.resource_limits) },
        { label: 'Installed', render: i => (i.installed ? 'yes' : 'no') },
        {
          label: 'On agents',
          render: i => {
            const open = i.installs.filter(x => x.status !== 'installed');
            return (
              <>
                {i.installed_agents.length ? i.installed_agents.join(', ') : '—'}
                {open.length > 0 && (
                  <ul className="jp-BackendAI-installs" aria-label={`Pulls of ${i.reference}`}>
                    {open.map(x => (
                      <li key={x.agent} data-install-status={x.status} data-agent={x.agent}>
                        {installText(x)}
                      </li>
                    ))}
                  </ul>
                )}
              </>
            );
          }
        },
        {
          label: 'Digest',
          render: i => <code title={i.digest || ''}>{i.digest ? i.digest.slice(0, 19) : '—'}</code>
        }
      ]}
      rowActions={
        props.ctx.superadmin
          ? i => (
              <>
                <Button onClick={() => setEditing(i)} aria-label={`Edit the minimum resources of ${i.reference}`}>
                  Minimums
                </Button>
                {i.registry !== 'local' && (
                  <Button onClick={() => setInstalling(i)} aria-label={`Install ${i.reference} on the agents`}>
                    Install
                  </Button>
                )}
              </>
            )
          : undefined
      }
    >
      {editing && (
        <ImageMinimum
          image={editing}
          onClose={() => setEditing(null)}
          onSaved={() => {
            acts.saved(`The minimum resources of ${editing.reference} were saved.`);
            setEditing(null);
          }}
        />
      )}
      {installing && (
        <ImageInstall
          image={installing}
          onClose={() => setInstalling(null)}
          onSaved={text => {
            acts.saved(text);
            setInstalling(null);
          }}
        />
      )}
    </AdminList>
  );
}

function PresetDialog(props: { preset?: IPreset; onClose: () => void; onSaved: (name: string) => void }): JSX.Element {
  const p = props.preset;
  const [name, setName] = useState(p?.name || '');
  const [slots, setSlots] = useState<SlotForm>(slotForm(p?.resource_slots));
  const [shmem, setShmem] = useState(p?.shared_memory ? slotText('shmem', p.shared_memory) : '');
  const [group, setGroup] = useState(p?.scaling_group_name || '');
  const groups = useLoad(
    () =>
      api<{ scaling_groups: { name: string }[] }>('admin/scaling-groups').then(r => r.scaling_groups.map(s => s.name)),
    []
  );
  const submit = async () => {
    const body: Record<string, unknown> = { resource_slots: slotsPayload(slots) };
    if (shmem.trim()) {
      body.shared_memory = shmem.trim();
    }
    if (group) {
      body.scaling_group = group;
    }
    props.onSaved(await saveNamed('admin/presets', p?.name, name, body));
  };
  return (
    <FormDialog
      title={p ? `Edit preset ${p.name}` : 'New resource preset'}
      submitLabel={p ? 'Save' : 'Create preset'}
      onSubmit={submit}
      onClose={props.onClose}
      wide
    >
      {!p && <TextField label="Name" name="name" value={name} onChange={setName} required />}
      <SlotInputs form={slots} onChange={setSlots} blankMeans={p ? 'unchanged' : 'none'} />
      <div className="jp-BackendAI-grid">
        <TextField
          label="Shared memory"
          name="shared_memory"
          value={shmem}
          onChange={setShmem}
          placeholder="e.g. 64m"
          hint="Blank: the default."
        />
        <SelectField
          label="Resource group"
          name="scaling_group"
          value={group}
          onChange={setGroup}
          options={[{ value: '', label: 'any' }, ...(groups.data || [])]}
        />
      </div>
    </FormDialog>
  );
}

function PresetsPanel(props: { ctx: IAdminContext }): JSX.Element {
  const presets = useLoad(() => api<{ presets: IPreset[] }>('admin/presets').then(r => r.presets), []);
  const acts = useActions(presets.reload);
  const [dialog, setDialog] = useState<{ preset?: IPreset } | null>(null);
  const su = props.ctx.superadmin;
  return (
    <AdminList
      label="Presets"
      title="Resource presets"
      list={presets}
      what="presets"
      actions={acts}
      toolbar={
        su && (
          <Button kind="accept" onClick={() => setDialog({})}>
            + New preset
          </Button>
        )
      }
      caption="Resource presets"
      rowKey={p => p.name}
      columns={[
        { label: 'Name', render: p => p.name },
        { label: 'Resources', render: p => formatSlots(p.resource_slots) },
        { label: 'Shared memory', render: p => (p.shared_memory ? formatBytes(amount(p.shared_memory)) : 'default') },
        { label: 'Resource group', render: p => p.scaling_group_name || 'any' }
      ]}
      rowActions={
        su
          ? p => (
              <EditDelete
                noun="preset"
                name={p.name}
                onEdit={() => setDialog({ preset: p })}
                onDelete={() =>
                  void acts.run(
                    `Preset ${p.name} was deleted.`,
                    () => api(`admin/presets/${segment(p.name)}`, 'DELETE'),
                    ['Delete preset?', `The resource preset ${p.name} is deleted.`, 'Delete']
                  )
                }
              />
            )
          : undefined
      }
    >
      {dialog && (
        <PresetDialog
          preset={dialog.preset}
          onClose={() => setDialog(null)}
          onSaved={name => {
            setDialog(null);
            acts.saved(`Preset ${name} was saved.`);
          }}
        />
      )}
    </AdminList>
  );
}

function RegistryDialog(props: { onClose: () => void; onSaved: (hostname: string) => void }): JSX.Element {
  const [hostname, setHostname] = useState('');
  const [url, setUrl] = useState('https://');
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [project, setProject] = useState('');
  const [sslVerify, setSslVerify] = useState(true);
  const submit = async () => {
    const body: Record<string, unknown> = { hostname: hostname.trim(), url: url.trim(), ssl_verify: sslVerify };
    for (const [key, value] of [
      ['username', username],
      ['password', password],
      ['project', project]
    ]) {
      if (value.trim()) {
        body[key] = key === 'password' ? value : value.trim();
      }
    }
    await api('admin/registries', 'POST', body);
    props.onSaved(hostname.trim());
  };
  return (
    <FormDialog title="Add a registry" submitLabel="Add registry" onSubmit={submit} onClose={props.onClose} wide>
      <div className="jp-BackendAI-grid">
        <TextField
          label="Host name"
          name="hostname"
          value={hostname}
          onChange={setHostname}
          required
          hint="As in image references, e.g. registry.example.org or localhost:5000."
        />
        <TextField label="URL" name="url" value={url} onChange={setUrl} required hint="With the scheme." />
        <TextField label="User name (optional)" name="username" value={username} onChange={setUsername} />
        <TextField
          label="Password (optional)"
          type="password"
          name="password"
          autoComplete="off"
          value={password}
          onChange={setPassword}
        />
        <TextField
          label="Project (optional)"
          name="project"
          value={project}
          onChange={setProject}
          hint="Only repositories under it are scanned."
        />
      </div>
      <CheckField label="Verify the TLS certificate" checked={sslVerify} onChange={setSslVerify} />
    </FormDialog>
  );
}

function RegistriesPanel(props: { ctx: IAdminContext }): JSX.Element {
  const registries = useLoad(() => api<{ registries: IRegistry[] }>('admin/registries').then(r => r.registries), []);
  const acts = useActions(registries.reload);
  const [adding, setAdding] = useState(false);
  const [busy, setBusy] = useState('');
  const su = props.ctx.superadmin;
  const rescan = async (hostname?: string) => {
    setBusy(hostname || '*');
    acts.setError('');
    acts.setDone('');
    try {
      const report = await api<IRescanReport>('admin/images/rescan', 'POST', hostname ? { registry: hostname } : {});
      acts.setDone(rescanText(report));
    } catch (reason) {
      acts.setError(errorText(reason));
    } finally {
      setBusy('');
    }
  };
  return (
    <AdminList
      label="Registries"
      list={registries}
      what="registries"
      actions={acts}
      toolbar={
        su && (
          <>
            <Button onClick={() => void rescan()} disabled={!!busy}>
              {busy === '*' ? 'Rescanning…' : 'Rescan all'}
            </Button>
            <Button kind="accept" onClick={() => setAdding(true)}>
              + Add registry
            </Button>
          </>
        )
      }
      caption="Docker registries"
      rowKey={r => r.hostname}
      columns={[
        { label: 'Host name', render: r => r.hostname },
        { label: 'URL', render: r => r.url },
        { label: 'Project', render: r => r.project || '—' },
        { label: 'User name', render: r => r.username || '—' },
        { label: 'Password', render: r => (r.has_password ? 'set' : '—') }
      ]}
      rowActions={
        su
          ? r => (
              <>
                <Button onClick={() => void rescan(r.hostname)} disabled={!!busy} aria-label={`Rescan ${r.hostname}`}>
                  {busy === r.hostname ? 'Rescanning…' : 'Rescan'}
                </Button>
                <Button
                  kind="warn"
                  onClick={() =>
                    void acts.run(
                      `Registry ${r.hostname} was removed.`,
                      () => api(`admin/registries/${segment(r.hostname)}`, 'DELETE'),
                      ['Remove registry?', `The registry ${r.hostname} is removed.`, 'Remove']
                    )
                  }
                  aria-label={`Remove ${r.hostname}`}
                >
                  Remove
                </Button>
              </>
            )
          : undefined
      }
    >
      {adding && (
        <RegistryDialog
          onClose={() => setAdding(false)}
          onSaved={hostname => {
            setAdding(false);
            acts.saved(`Registry ${hostname} was added; rescan it to read its images.`);
          }}
        />
      )}
    </AdminList>
  );
}

export function EnvironmentsTab(props: { ctx: IAdminContext }): JSX.Element {
  return (
    <TabPages
      label="Environments"
      tabs={[
        { id: 'images', label: 'Images', render: () => <ImagesPanel ctx={props.ctx} /> },
        { id: 'presets', label: 'Presets', render: () => <PresetsPanel ctx={props.ctx} /> },
        { id: 'registries', label: 'Registries', render: () => <RegistriesPanel ctx={props.ctx} /> }
      ]}
    />
  );
}
