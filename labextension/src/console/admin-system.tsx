/**
 * System settings (F46, read-only) and Maintenance (F47): recalculate usage, rescan images,
 * clean up image rows nothing uses (a dry run first).
 */
import React, { useState } from 'react';

import { IRescanReport, rescanText } from './admin-environments';
import { api, errorText } from '../api';
import { Button, confirm, ErrorMessage, Loading, SectionHeader, StatusMessage, useLoad } from '../components';
import { formatBytes, formatDuration } from '../format';

interface ISystem {
  version: string;
  api_version: string;
  database: { dialect: string; driver: string };
  storage: { root: string; hosts: string[] };
  counts: Record<string, number>;
  limits: Record<string, number>;
  service: { base_url: string; ip: string; port: number; hub_api: boolean };
}

const COUNT_LABELS: Record<string, string> = {
  users: 'Users',
  active_users: 'Active users',
  sessions: 'Sessions (ever)',
  active_sessions: 'Sessions holding resources',
  agents: 'Agents',
  alive_agents: 'Connected agents',
  images: 'Images',
  registries: 'Registries',
  domains: 'Domains',
  groups: 'Projects'
};

function Pairs(props: { label: string; items: [string, React.ReactNode][] }): JSX.Element {
  return (
    <section className="jp-BackendAI-card" aria-label={props.label}>
      <h3>{props.label}</h3>
      <dl className="jp-BackendAI-dl">
        {props.items.map(([k, v]) => (
          <React.Fragment key={k}>
            <dt>{k}</dt>
            <dd>{v}</dd>
          </React.Fragment>
        ))}
      </dl>
    </section>
  );
}

export function SystemTab(): JSX.Element {
  const system = useLoad(() => api<ISystem>('admin/settings'), []);
  const s = system.data;
  return (
    <section aria-label="System settings">
      <SectionHeader title="System settings" level={3} onRefresh={system.reload} />
      <ErrorMessage error={system.error} />
      {system.loading && !s && <Loading what="settings" />}
      {s && (
        <div className="jp-BackendAI-cards">
          <Pairs
            label="Service"
            items={[
              ['Version', s.version],
              ['API version', s.api_version],
              ['Database', `${s.database.dialect} (${s.database.driver})`],
              ['Storage hosts', s.storage.hosts.join(', ') || '—'],
              ['Storage root', s.storage.root],
              ['Base URL', s.service.base_url],
              ['Listens on', `${s.service.ip}:${s.service.port}`],
              ['Hub API', s.service.hub_api ? 'configured' : 'not configured']
            ]}
          />
          <Pairs
            label="Limits"
            items={[
              ['Rate limit window', formatDuration(s.limits.rate_limit_window_seconds)],
              ['Largest JSON body', formatBytes(s.limits.max_json_body)],
              ['Largest upload', formatBytes(s.limits.max_upload_size)],
              ['Transfer links valid for', formatDuration(s.limits.transfer_token_lifetime)],
              ['Hub tokens remembered for', formatDuration(s.limits.hub_token_cache_seconds)]
            ]}
          />
          <Pairs
            label="Counts"
            items={Object.entries(s.counts).map(([k, v]) => [COUNT_LABELS[k] || k, v] as [string, React.ReactNode])}
          />
        </div>
      )}
    </section>
  );
}

interface ICleanup {
  removed: string[];
  kept_in_use: string[];
  dry_run: boolean;
}

export function MaintenanceTab(): JSX.Element {
  const [busy, setBusy] = useState('');
  const [error, setError] = useState('');
  const [done, setDone] = useState('');
  const run = async (what: string, work: () => Promise<string | undefined>) => {
    setBusy(what);
    setError('');
    setDone('');
    try {
      const text = await work();
      if (text) {
        setDone(text);
      }
    } catch (reason) {
      setError(errorText(reason));
    } finally {
      setBusy('');
    }
  };
  const recalculate = () =>
    run('recalculate', async () => {
      const answer = await api<{ checked: number; terminated: { username: string; server_name: string }[] }>(
        'admin/maintenance/recalculate-usage',
        'POST',
        {}
      );
      const ended = answer.terminated.map(t => `${t.username}/${t.server_name}`);
      return (
        `Checked ${answer.checked} session(s) holding resources; ` +
        (ended.length ? `ended ${ended.length} whose server was gone: ${ended.join(', ')}.` : 'all of them run.')
      );
    });
  const rescan = () =>
    run('rescan', async () => rescanText(await api<IRescanReport>('admin/images/rescan', 'POST', {})));
  const cleanup = () =>
    run('cleanup', async () => {
      const dry = await api<ICleanup>('admin/images/cleanup', 'POST', { dry_run: true });
      if (!dry.removed.length) {
        return 'No image to clean up: every image is installed on an agent or used by a session.';
      }
      const ok = await confirm(
        'Clean up images?',
        `These image entries are not installed on any agent and no session uses them: ${dry.removed.join(', ')}.`,
        `Remove ${dry.removed.length}`
      );
      if (!ok) {
        return 'Nothing was removed.';
      }
      const answer = await api<ICleanup>('admin/images/cleanup', 'POST', { dry_run: false });
      return `Removed ${answer.removed.length} image entr${answer.removed.length === 1 ? 'y' : 'ies'}.`;
    });
  return (
    <section aria-label="Maintenance">
      <SectionHeader title="Maintenance" level={3} />
      <ErrorMessage error={error} onDismiss={() => setError('')} />
      <StatusMessage text={done} />
      <div className="jp-BackendAI-cards">
        <div className="jp-BackendAI-card">
          <h3>Recalculate usage</h3>
          <p className="jp-BackendAI-hint">
            Ends sessions that still hold resources although the hub no longer runs their server.
          </p>
          <Button kind="accept" onClick={() => void recalculate()} disabled={!!busy}>
            {busy === 'recalculate' ? 'Recalculating…' : 'Recalculate usage'}
          </Button>
        </div>
        <div className="jp-BackendAI-card">
          <h3>Rescan images</h3>
          <p className="jp-BackendAI-hint">
            Reads every registry and adds or updates the images labeled for the platform.
          </p>
          <Button kind="accept" onClick={() => void rescan()} disabled={!!busy}>
            {busy === 'rescan' ? 'Rescanning…' : 'Rescan images'}
          </Button>
        </div>
        <div className="jp-BackendAI-card">
          <h3>Clean up images</h3>
          <p className="jp-BackendAI-hint">
            Forgets image entries that no agent has and no session uses; you see the list before anything goes.
          </p>
          <Button kind="warn" onClick={() => void cleanup()} disabled={!!busy}>
            {busy === 'cleanup' ? 'Checking…' : 'Clean up images'}
          </Button>
        </div>
      </div>
    </section>
  );
}
