/**
 * Administration (F35–F47), for admins and superadmins only: a domain admin sees the users and
 * keypairs of their domain and reads the global objects; a superadmin changes everything.
 */
import React from 'react';

import { CredentialsTab, UsersTab } from './admin-users';
import { EnvironmentsTab } from './admin-environments';
import { OrganisationTab } from './admin-orgs';
import { PoliciesTab } from './admin-policies';
import { ResourcesTab } from './admin-resources';
import { MaintenanceTab, SystemTab } from './admin-system';
import { IAdminContext } from './adminkit';
import { SectionHeader, TabPages } from '../components';

export function Administration(props: { ctx: IAdminContext }): JSX.Element {
  const { ctx } = props;
  const tabs = [
    { id: 'users', label: 'Users', render: () => <UsersTab ctx={ctx} /> },
    { id: 'credentials', label: 'Credentials', render: () => <CredentialsTab /> },
    { id: 'policies', label: 'Resource Policies', render: () => <PoliciesTab ctx={ctx} /> },
    { id: 'environments', label: 'Environments', render: () => <EnvironmentsTab ctx={ctx} /> },
    { id: 'resources', label: 'Resources', render: () => <ResourcesTab ctx={ctx} /> },
    { id: 'domains', label: 'Domains & projects', render: () => <OrganisationTab ctx={ctx} /> }
  ];
  if (ctx.superadmin) {
    tabs.push(
      { id: 'system', label: 'System settings', render: () => <SystemTab /> },
      { id: 'maintenance', label: 'Maintenance', render: () => <MaintenanceTab /> }
    );
  }
  return (
    <div className="jp-BackendAI-page jp-BackendAI-admin">
      <SectionHeader title="Administration">
        <span className="jp-BackendAI-hint">
          {ctx.superadmin ? 'Superadmin' : `Admin of the domain ${ctx.domain}`} ({ctx.email})
        </span>
      </SectionHeader>
      <TabPages label="Administration" tabs={tabs} />
    </div>
  );
}
