/**
 * Domains and projects: the caps on what all sessions of a domain, or of a project (group),
 * hold together, and their descriptions. Superadmins change domains; the admins of a domain
 * change its projects. A cap left blank is no cap (the manager merges what is sent, so a cap
 * cleared in an edit is sent as "unlimited").
 */
import React, { useState } from 'react';

import { IAdminContext } from './adminkit';
import { api, segment, Slots } from '../api';
import { AdminList, Button, FormDialog, SlotInputs, TabPages, TextField, useActions, useLoad } from '../components';
import { formatSlots } from '../format';
import { slotForm, SlotForm, slotsPayload } from '../slots';

export interface IDomain {
  name: string;
  description: string;
  is_active: boolean;
  total_resource_slots: Slots;
}

export interface IProject extends IDomain {
  id: string;
  domain_name: string;
  members: string[];
}

/** The body of PATCH /admin/domains/{name} or /admin/groups/{name}. */
export function capsPayload(slots: SlotForm, description: string, before: Slots): Record<string, unknown> {
  return {
    total_resource_slots: slotsPayload(slots, slot =>
      before[slot] !== undefined && before[slot] !== 'Infinity' ? 'unlimited' : undefined
    ),
    description
  };
}

/** "CPU 8, RAM 16 GiB", or "none" for no cap at all. */
export function capsText(slots: Slots): string {
  return Object.keys(slots).length ? formatSlots(slots) : 'none';
}

function CapsDialog(props: {
  title: string;
  path: string;
  org: IDomain;
  onClose: () => void;
  onSaved: () => void;
}): JSX.Element {
  const [slots, setSlots] = useState<SlotForm>(slotForm(props.org.total_resource_slots));
  const [description, setDescription] = useState(props.org.description);
  const submit = async () => {
    await api(props.path, 'PATCH', capsPayload(slots, description, props.org.total_resource_slots));
    props.onSaved();
  };
  return (
    <FormDialog title={props.title} submitLabel="Save" onSubmit={submit} onClose={props.onClose} wide>
      <TextField label="Description" name="description" value={description} onChange={setDescription} />
      <h3>Caps on what all its sessions hold together</h3>
      <p className="jp-BackendAI-hint">
        Running sessions are never ended by a lower cap; new ones are refused until they fit again.
      </p>
      <SlotInputs form={slots} onChange={setSlots} blankMeans="no cap" />
    </FormDialog>
  );
}

function DomainsPanel(props: { ctx: IAdminContext }): JSX.Element {
  const domains = useLoad(() => api<{ domains: IDomain[] }>('admin/domains').then(r => r.domains), []);
  const acts = useActions(domains.reload);
  const [editing, setEditing] = useState<IDomain | null>(null);
  const su = props.ctx.superadmin;
  return (
    <AdminList
      label="Domains"
      list={domains}
      what="domains"
      actions={acts}
      note={!su && <p className="jp-BackendAI-hint">Only a superadmin may change a domain's caps.</p>}
      caption="Domains and their caps"
      rowKey={d => d.name}
      columns={[
        { label: 'Name', render: d => d.name },
        { label: 'Description', render: d => d.description || '—' },
        { label: 'Caps', render: d => capsText(d.total_resource_slots) }
      ]}
      rowActions={
        su
          ? d => (
              <Button onClick={() => setEditing(d)} aria-label={`Edit domain ${d.name}`}>
                Edit
              </Button>
            )
          : undefined
      }
    >
      {editing && (
        <CapsDialog
          title={`Edit domain ${editing.name}`}
          path={`admin/domains/${segment(editing.name)}`}
          org={editing}
          onClose={() => setEditing(null)}
          onSaved={() => {
            acts.saved(`Domain ${editing.name} was saved.`);
            setEditing(null);
          }}
        />
      )}
    </AdminList>
  );
}

function ProjectsPanel(): JSX.Element {
  const projects = useLoad(() => api<{ groups: IProject[] }>('admin/groups').then(r => r.groups), []);
  const acts = useActions(projects.reload);
  const [editing, setEditing] = useState<IProject | null>(null);
  return (
    <AdminList
      label="Projects"
      list={projects}
      what="projects"
      actions={acts}
      caption="Projects (groups) and their caps"
      rowKey={g => `${g.domain_name}/${g.name}`}
      columns={[
        { label: 'Domain', render: g => g.domain_name },
        { label: 'Name', render: g => g.name },
        { label: 'Description', render: g => g.description || '—' },
        { label: 'Members', render: g => g.members.length },
        { label: 'Caps', render: g => capsText(g.total_resource_slots) }
      ]}
      rowActions={g => (
        <Button onClick={() => setEditing(g)} aria-label={`Edit project ${g.domain_name}/${g.name}`}>
          Edit
        </Button>
      )}
    >
      {editing && (
        <CapsDialog
          title={`Edit project ${editing.name} (${editing.domain_name})`}
          path={`admin/groups/${segment(editing.name)}?domain=${encodeURIComponent(editing.domain_name)}`}
          org={editing}
          onClose={() => setEditing(null)}
          onSaved={() => {
            acts.saved(`Project ${editing.name} was saved.`);
            setEditing(null);
          }}
        />
      )}
    </AdminList>
  );
}

export function OrganisationTab(props: { ctx: IAdminContext }): JSX.Element {
  const tabs = [
    { id: 'domains', label: 'Domains', render: () => <DomainsPanel ctx={props.ctx} /> },
    { id: 'projects', label: 'Projects', render: () => <ProjectsPanel /> }
  ];
  return <TabPages label="Domains and projects" tabs={tabs} />;
}
