/**
 * Summary (F11–F14): what the user holds against what they may still allocate, per project
 * (group) and resource group, from `resource/check-presets`, and running sessions against the
 * keypair policy's limit (from `auth/profile`).
 */
import { CommandRegistry } from '@lumino/commands';
import React, { useState } from 'react';

import { api, ICheckPresets, IProfile } from '../api';
import { allocatable } from '../slots';
import { Button, DataTable, ErrorMessage, Gauge, Loading, SectionHeader, SelectField, useLoad } from '../components';
import { amount, formatAmount, formatBytes, formatSlots, plainNumber } from '../format';

interface ISlotView {
  slot: string;
  label: string;
  unit: string | [string, string];
  format: (v: number) => string;
}

const SLOT_VIEWS: ISlotView[] = [
  { slot: 'cpu', label: 'CPU', unit: ['core', 'cores'], format: v => plainNumber(v) },
  { slot: 'mem', label: 'RAM', unit: '', format: v => formatBytes(v) },
  { slot: 'cuda.device', label: 'GPU', unit: ['GPU', 'GPUs'], format: v => plainNumber(v) },
  { slot: 'cuda.shares', label: 'fGPU', unit: 'fGPU', format: v => plainNumber(v) }
];

export function Summary(props: { commands: CommandRegistry }): JSX.Element {
  const profile = useLoad(() => api<IProfile>('auth/profile'), []);
  const [chosenGroup, setGroup] = useState('');
  const [chosenScalingGroup, setScalingGroup] = useState('');
  const [round, setRound] = useState(0);
  const settled = !!(profile.data || profile.error);

  // The project a spawn would use ("default" first) until the user picks another.
  const groups = profile.data?.groups || [];
  const group = groups.includes(chosenGroup) ? chosenGroup : groups.includes('default') ? 'default' : groups[0] || '';

  // Without a resource group the answer lists all that are open to the user, for the switcher.
  const all = useLoad(
    () =>
      settled
        ? api<ICheckPresets>('resource/check-presets', 'POST', group ? { group } : {})
        : Promise.resolve(undefined),
    [settled, group, round]
  );
  const names = Object.keys(all.data?.scaling_groups || {});
  const scalingGroup = names.includes(chosenScalingGroup) ? chosenScalingGroup : names[0] || '';
  const one = useLoad(
    () =>
      scalingGroup
        ? api<ICheckPresets>('resource/check-presets', 'POST', {
            ...(group ? { group } : {}),
            scaling_group: scalingGroup
          })
        : Promise.resolve(undefined),
    [group, scalingGroup, round]
  );
  const running = useLoad(() => api<{ total_count: number }>('session?status=running&page_size=1'), [round]);

  const refresh = () => {
    profile.reload();
    setRound(r => r + 1);
  };
  const check = one.data || all.data;
  const policy = profile.data?.resource_policy;
  const maxSessions = policy?.max_concurrent_sessions || 0;
  const canStart = props.commands.hasCommand('backendai:start-session');

  return (
    <div className="jp-BackendAI-page jp-BackendAI-summary">
      <SectionHeader title="Summary" onRefresh={refresh}>
        {canStart && (
          <Button kind="accept" onClick={() => void props.commands.execute('backendai:start-session')}>
            + Start a session
          </Button>
        )}
      </SectionHeader>
      <ErrorMessage error={profile.error || all.error || one.error || running.error} />
      <div className="jp-BackendAI-switchers">
        <SelectField
          label="Project"
          name="group"
          value={group}
          onChange={setGroup}
          options={(profile.data?.groups || []).map(g => ({ value: g, label: g }))}
          hint={profile.data && !profile.data.groups.length ? 'You are in no project.' : undefined}
          disabled={!profile.data?.groups.length}
        />
        <SelectField
          label="Resource group"
          name="scaling_group"
          value={scalingGroup}
          onChange={setScalingGroup}
          options={names.map(n => ({ value: n, label: n }))}
          hint={all.data && !names.length ? 'No resource group is open to you.' : undefined}
          disabled={!names.length}
        />
      </div>
      {!check && (all.loading || one.loading) && <Loading what="resources" />}
      {check && (
        <>
          <h3>Resources</h3>
          <p className="jp-BackendAI-hint">
            Used by your sessions against what you may allocate: the smallest of your keypair policy
            {policy ? ` (${policy.name})` : ''}, the project's limit and the free capacity of the resource group.
          </p>
          <div className="jp-BackendAI-gauges">
            {SLOT_VIEWS.map(view => {
              const figures = allocatable(check, view.slot, scalingGroup);
              return (
                <Gauge
                  key={view.slot}
                  id={view.slot}
                  label={view.label}
                  used={figures.used}
                  total={figures.total}
                  unit={view.unit}
                  format={view.format}
                  detail={`bounded by ${figures.limitedBy}`}
                />
              );
            })}
            <Gauge
              id="sessions"
              label="Sessions"
              used={running.data?.total_count ?? 0}
              total={maxSessions > 0 ? maxSessions : Infinity}
              format={v => String(v)}
              detail={policy ? `running; the limit of the policy ${policy.name}` : 'running'}
            />
          </div>
          <h3>Project {check.group || ''}</h3>
          <DataTable
            caption="The project's usage against its limits"
            rowKey={row => row.slot}
            rows={SLOT_VIEWS}
            columns={[
              { label: 'Resource', render: v => v.label },
              { label: 'Project uses', render: v => formatAmount(v.slot, check.group_using[v.slot] ?? '0') },
              { label: 'Project limit', render: v => formatAmount(v.slot, check.group_limits[v.slot] ?? 'Infinity') },
              { label: 'You use', render: v => formatAmount(v.slot, check.keypair_using[v.slot] ?? '0') },
              {
                label: 'Your policy allows',
                render: v => formatAmount(v.slot, check.keypair_limits[v.slot] ?? 'Infinity')
              }
            ]}
          />
          <h3>Presets</h3>
          <DataTable
            caption="Resource presets and whether they still fit"
            rowKey={p => p.name}
            rows={check.presets}
            empty="No presets."
            columns={[
              { label: 'Preset', render: p => p.name },
              { label: 'Resources', render: p => formatSlots(p.resource_slots) },
              {
                label: 'Shared memory',
                render: p => (p.shared_memory ? formatBytes(amount(p.shared_memory)) : 'default')
              },
              {
                label: 'Fits now',
                render: p => (
                  <span className={p.allocatable ? 'jp-BackendAI-ok' : 'jp-BackendAI-no'}>
                    {p.allocatable ? 'yes' : 'no'}
                  </span>
                )
              }
            ]}
          />
        </>
      )}
    </div>
  );
}
