/**
 * Resources: agents with their capacity and use (F44), and resource groups with their
 * scheduler and who may use them (F45).
 */
import React, { useState } from 'react';

import { IAdminContext, saveNamed } from './adminkit';
import { api, segment, Slots } from '../api';
import {
  AdminList,
  Button,
  CheckField,
  ErrorMessage,
  FormDialog,
  Meter,
  MultiCheck,
  NumberField,
  SelectField,
  TabPages,
  TextField,
  useActions,
  useLoad,
  useShow
} from '../components';
import { amount, formatAmount, formatTime } from '../format';
import { wholeNumber } from '../slots';

interface IAgent {
  id: string;
  status: string;
  status_changed: string | null;
  status_info?: string | null;
  region: string | null;
  scaling_group: string;
  schedulable: boolean;
  addr: string | null;
  version: string | null;
  first_contact: string | null;
  lost_at: string | null;
  available_slots: Slots;
  occupied_slots: Slots;
}

interface IScalingGroup {
  name: string;
  description: string;
  is_active: boolean;
  driver: string;
  scheduler: string;
  scheduler_opts: { agent_selection?: string; fifo_max_skips?: number };
  pending_timeout: number;
  allowed_domains: string[];
  allowed_groups: string[];
  allowed_keypairs: string[];
}

function slotUse(agent: IAgent, slot: string): JSX.Element | string {
  const total = amount(agent.available_slots[slot]);
  if (!total) {
    return '—';
  }
  const used = amount(agent.occupied_slots[slot]);
  return (
    <Meter label={slot} used={used} total={total} text={`${formatAmount(slot, used)} / ${formatAmount(slot, total)}`} />
  );
}

function AgentsPanel(): JSX.Element {
  const [status, show] = useShow('agent-status', [
    ['alive', 'Connected'],
    ['lost', 'Lost or terminated'],
    ['all', 'All agents']
  ]);
  const agents = useLoad(
    () => api<{ agents: IAgent[] }>(`admin/agents?status=${status}`).then(r => r.agents),
    [status]
  );
  const acts = useActions(agents.reload);
  const toggle = (agent: IAgent) =>
    acts.run('', () => api(`admin/agents/${segment(agent.id)}`, 'PATCH', { schedulable: !agent.schedulable }));
  return (
    <AdminList
      label="Agents"
      list={agents}
      what="agents"
      actions={acts}
      show={show}
      caption="Agents"
      rowKey={a => a.id}
      columns={[
        { label: 'Agent', render: a => a.id },
        { label: 'Status', render: a => (a.status_info ? `${a.status}: ${a.status_info}` : a.status) },
        { label: 'Resource group', render: a => a.scaling_group },
        { label: 'Address', render: a => a.addr || '—' },
        { label: 'Region', render: a => a.region || '—' },
        { label: 'Started', render: a => formatTime(a.first_contact) },
        { label: 'CPU', render: a => slotUse(a, 'cpu') },
        { label: 'RAM', render: a => slotUse(a, 'mem') },
        { label: 'GPU', render: a => slotUse(a, 'cuda.device') },
        { label: 'fGPU', render: a => slotUse(a, 'cuda.shares') },
        { label: 'Schedulable', render: a => (a.schedulable ? 'yes' : 'no') }
      ]}
      rowActions={a => (
        <Button onClick={() => void toggle(a)} aria-label={`${a.schedulable ? 'Stop' : 'Start'} scheduling on ${a.id}`}>
          {a.schedulable ? 'Stop scheduling' : 'Allow scheduling'}
        </Button>
      )}
    />
  );
}

function GroupDialog(props: {
  group?: IScalingGroup;
  onClose: () => void;
  onSaved: (name: string) => void;
}): JSX.Element {
  const g = props.group;
  const [name, setName] = useState(g?.name || '');
  const [description, setDescription] = useState(g?.description || '');
  const [scheduler, setScheduler] = useState(g?.scheduler || 'fifo');
  const [pending, setPending] = useState(String(g?.pending_timeout ?? 0));
  const [selection, setSelection] = useState(g?.scheduler_opts.agent_selection || 'concentrated');
  const [skips, setSkips] = useState(
    g?.scheduler_opts.fifo_max_skips !== undefined ? String(g.scheduler_opts.fifo_max_skips) : ''
  );
  const [active, setActive] = useState(g?.is_active ?? true);
  const submit = async () => {
    const body: Record<string, unknown> = {
      description,
      scheduler,
      pending_timeout: wholeNumber('The pending timeout', pending),
      agent_selection: selection,
      is_active: active
    };
    if (skips.trim() !== '') {
      body.fifo_max_skips = wholeNumber('FIFO skips', skips);
    }
    props.onSaved(await saveNamed('admin/scaling-groups', g?.name, name, body));
  };
  return (
    <FormDialog
      title={g ? `Edit resource group ${g.name}` : 'New resource group'}
      submitLabel={g ? 'Save' : 'Create resource group'}
      onSubmit={submit}
      onClose={props.onClose}
      wide
    >
      <div className="jp-BackendAI-grid">
        {!g && <TextField label="Name" name="name" value={name} onChange={setName} required />}
        <TextField label="Description" name="description" value={description} onChange={setDescription} />
        <SelectField
          label="Scheduler"
          name="scheduler"
          value={scheduler}
          onChange={setScheduler}
          options={[
            { value: 'fifo', label: 'FIFO (first come, first served)' },
            { value: 'lifo', label: 'LIFO (last come, first served)' },
            { value: 'drf', label: 'DRF (dominant resource fairness)' }
          ]}
        />
        <SelectField
          label="Agent selection"
          name="agent_selection"
          value={selection}
          onChange={setSelection}
          options={[
            { value: 'concentrated', label: 'Concentrated (fill one agent first)' },
            { value: 'dispersed', label: 'Dispersed (spread over agents)' }
          ]}
        />
        <NumberField
          label="Pending timeout (seconds)"
          name="pending_timeout"
          value={pending}
          onChange={setPending}
          hint="0: sessions wait as long as it takes."
        />
        <NumberField
          label="FIFO skips"
          name="fifo_max_skips"
          value={skips}
          onChange={setSkips}
          hint="How often FIFO passes a session that does not fit; blank: the default."
        />
      </div>
      <CheckField label="Active" checked={active} onChange={setActive} />
    </FormDialog>
  );
}

function AccessDialog(props: { group: IScalingGroup; onClose: () => void; onSaved: () => void }): JSX.Element {
  const g = props.group;
  const [domains, setDomains] = useState<string[]>(g.allowed_domains);
  const [groups, setGroups] = useState<string[]>(g.allowed_groups);
  const [keypairs, setKeypairs] = useState(g.allowed_keypairs.join(', '));
  const allDomains = useLoad(
    () => api<{ domains: { name: string }[] }>('admin/domains').then(r => r.domains.map(d => d.name)),
    []
  );
  const allGroups = useLoad(
    () =>
      api<{ groups: { name: string; domain_name: string }[] }>('admin/groups').then(r =>
        r.groups.map(x => `${x.domain_name}/${x.name}`)
      ),
    []
  );
  const submit = async () => {
    const keys = keypairs
      .split(',')
      .map(k => k.trim())
      .filter(Boolean);
    const diff = (now: string[], before: string[]) => ({
      add: now.filter(x => !before.includes(x)),
      remove: before.filter(x => !now.includes(x))
    });
    const d = diff(domains, g.allowed_domains);
    const gr = diff(groups, g.allowed_groups);
    const k = diff(keys, g.allowed_keypairs);
    const path = `admin/scaling-groups/${segment(g.name)}/allow`;
    if (d.add.length || gr.add.length || k.add.length) {
      await api(path, 'POST', { domains: d.add, groups: gr.add, keypairs: k.add });
    }
    if (d.remove.length || gr.remove.length || k.remove.length) {
      await api(path, 'POST', { domains: d.remove, groups: gr.remove, keypairs: k.remove, revoke: true });
    }
    props.onSaved();
  };
  const union = (a: string[] | undefined, b: string[]) => Array.from(new Set([...(a || []), ...b])).sort();
  return (
    <FormDialog title={`Who may use ${g.name}`} submitLabel="Save" onSubmit={submit} onClose={props.onClose} wide>
      <ErrorMessage error={allDomains.error || allGroups.error} />
      <MultiCheck
        legend="Domains"
        options={union(allDomains.data, g.allowed_domains)}
        value={domains}
        onChange={setDomains}
      />
      <MultiCheck
        legend="Projects (domain/group)"
        options={union(allGroups.data, g.allowed_groups)}
        value={groups}
        onChange={setGroups}
        empty="No projects."
      />
      <TextField
        label="Keypairs (access keys)"
        name="keypairs"
        value={keypairs}
        onChange={setKeypairs}
        hint="Comma-separated."
      />
    </FormDialog>
  );
}

function GroupsPanel(props: { ctx: IAdminContext }): JSX.Element {
  const groups = useLoad(
    () => api<{ scaling_groups: IScalingGroup[] }>('admin/scaling-groups').then(r => r.scaling_groups),
    []
  );
  const acts = useActions(groups.reload);
  const [dialog, setDialog] = useState<{ group?: IScalingGroup } | null>(null);
  const [access, setAccess] = useState<IScalingGroup | null>(null);
  const su = props.ctx.superadmin;
  return (
    <AdminList
      label="Resource groups"
      list={groups}
      what="resource groups"
      actions={acts}
      toolbar={
        su && (
          <Button kind="accept" onClick={() => setDialog({})}>
            + New resource group
          </Button>
        )
      }
      caption="Resource groups"
      rowKey={g => g.name}
      columns={[
        { label: 'Name', render: g => g.name },
        { label: 'Description', render: g => g.description || '—' },
        { label: 'Active', render: g => (g.is_active ? 'yes' : 'no') },
        { label: 'Driver', render: g => g.driver },
        { label: 'Scheduler', render: g => g.scheduler.toUpperCase() },
        { label: 'Agent selection', render: g => g.scheduler_opts.agent_selection || 'concentrated' },
        { label: 'Pending timeout', render: g => (g.pending_timeout ? `${g.pending_timeout} s` : 'none') },
        { label: 'Domains', render: g => g.allowed_domains.join(', ') || '—' },
        { label: 'Projects', render: g => g.allowed_groups.join(', ') || '—' },
        { label: 'Keypairs', render: g => g.allowed_keypairs.length || '—' }
      ]}
      rowActions={
        su
          ? g => (
              <>
                <Button onClick={() => setDialog({ group: g })} aria-label={`Edit resource group ${g.name}`}>
                  Edit
                </Button>
                <Button onClick={() => setAccess(g)} aria-label={`Who may use ${g.name}`}>
                  Access
                </Button>
              </>
            )
          : undefined
      }
    >
      {dialog && (
        <GroupDialog
          group={dialog.group}
          onClose={() => setDialog(null)}
          onSaved={name => {
            setDialog(null);
            acts.saved(`Resource group ${name} was saved.`);
          }}
        />
      )}
      {access && (
        <AccessDialog
          group={access}
          onClose={() => setAccess(null)}
          onSaved={() => {
            acts.saved(`Who may use ${access.name} was saved.`);
            setAccess(null);
          }}
        />
      )}
    </AdminList>
  );
}

export function ResourcesTab(props: { ctx: IAdminContext }): JSX.Element {
  const tabs = [{ id: 'groups', label: 'Resource groups', render: () => <GroupsPanel ctx={props.ctx} /> }];
  if (props.ctx.superadmin) {
    tabs.unshift({ id: 'agents', label: 'Agents', render: () => <AgentsPanel /> });
  }
  return <TabPages label="Resources" tabs={tabs} />;
}
