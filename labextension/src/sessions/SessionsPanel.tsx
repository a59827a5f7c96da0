/**
 * The Sessions side panel (F17, F21, F23, F33): Running / Finished / Others (admins),
 * polled while the panel is visible; start, apps, SSH/SFTP and terminate.
 */
import * as React from 'react';

import { showLogs } from './LogsDialog';
import { showStartDialog, startSession } from './StartDialog';
import {
  ACTIVE_STATUSES,
  errorText,
  isAdmin,
  ISession,
  ISessionDetail,
  ISessionList,
  IWhoAmI,
  requestAPI,
  WhoAmIModel
} from '../api';
import { Button, confirm, Message, PanelHead, showError, showInfo, Tabs, WhoPanel } from '../components';
import { formatAmount, formatBytes, formatElapsed, formatGPU, formatTime } from '../format';

/** Seconds between refreshes while the panel is shown. */
export const POLL_SECONDS = 5;

type TabId = 'running' | 'finished' | 'others';

function slotsOf(s: ISession): { [slot: string]: string } {
  const occupied = s.occupied_slots || {};
  return Object.keys(occupied).length ? occupied : s.requested_slots || {};
}

function elapsed(s: ISession, now: number): string {
  const start = s.started_at || s.created_at;
  if (!start) {
    return '–';
  }
  const end = s.terminated_at ? new Date(s.terminated_at).getTime() : now;
  return formatElapsed((end - new Date(start).getTime()) / 1000);
}

async function showApps(session: ISession): Promise<void> {
  let detail: ISessionDetail;
  try {
    detail = await requestAPI<ISessionDetail>(`session/${encodeURIComponent(session.id)}`);
  } catch (e) {
    await showError('Apps', errorText(e));
    return;
  }
  const body = (
    <ul className="jp-BackendAI-apps" aria-label={`Apps of ${session.name}`}>
      {detail.apps.map(app => (
        <li key={app.name}>
          {app.url ? (
            <a
              href={app.url}
              target="_blank"
              rel="noopener noreferrer"
              className="jp-BackendAI-appLink"
              data-app-name={app.name}
            >
              {app.title || app.name}
            </a>
          ) : (
            <span>
              {app.title || app.name} ({app.protocol}
              {app.ports.length ? ` port ${app.ports.join(', ')}` : ''}, no web page)
            </span>
          )}
        </li>
      ))}
    </ul>
  );
  await showInfo(`Apps of ${session.name}`, body);
}

function serverPrefix(detail: ISessionDetail): string | null {
  const lab = detail.apps.find(a => a.name === 'jupyterlab' && a.url);
  return lab && lab.url ? lab.url.replace(/\/lab$/, '/') : null;
}

async function showSSH(session: ISession): Promise<void> {
  let detail: ISessionDetail;
  let publicKey = '';
  try {
    detail = await requestAPI<ISessionDetail>(`session/${encodeURIComponent(session.id)}`);
    publicKey = (await requestAPI<{ ssh_public_key: string }>('resource/ssh-keypair')).ssh_public_key;
  } catch (e) {
    await showError('SSH / SFTP', errorText(e));
    return;
  }
  const prefix = serverPrefix(detail);
  const ssh = detail.ssh;
  const body = ssh ? (
    <div className="jp-BackendAI-ssh">
      <dl className="jp-BackendAI-dl">
        <dt>Host</dt>
        <dd>{ssh.host}</dd>
        <dt>Port</dt>
        <dd>{ssh.port}</dd>
        <dt>User</dt>
        <dd>work</dd>
      </dl>
      <p>Connect with the session's key (SFTP clients take the same host, port, user and key):</p>
      <pre className="jp-BackendAI-code">{`ssh -i id_container -p ${ssh.port} work@${ssh.host}\nsftp -i id_container -P ${ssh.port} work@${ssh.host}`}</pre>
      {prefix ? (
        <p>
          <a
            href={`${prefix}files/id_container?download=1`}
            download="id_container"
            target="_blank"
            rel="noopener noreferrer"
            className="jp-BackendAI-keyLink"
          >
            Download the key (id_container)
          </a>
        </p>
      ) : null}
      <p className="jp-BackendAI-hint">Your public key (from your SSH keypair; Settings can make a new one):</p>
      <pre className="jp-BackendAI-code jp-BackendAI-wrap">{publicKey}</pre>
    </div>
  ) : (
    <Message kind="info">This session runs no SSH server (it is not running, or its backend offers none).</Message>
  );
  await showInfo(`SSH / SFTP: ${session.name}`, body);
}

async function terminate(session: ISession, refresh: () => void): Promise<void> {
  const ok = await confirm(
    'Terminate the session?',
    `Terminate "${session.name}"? Files outside mounted folders are lost.`,
    'Terminate'
  );
  if (!ok) {
    return;
  }
  try {
    // By id: an administrator can end another user's session without naming its owner.
    await requestAPI(`session/${encodeURIComponent(session.id)}`, { method: 'DELETE' });
  } catch (e) {
    await showError('Terminate', errorText(e));
  }
  refresh();
}

function SessionCard(props: {
  session: ISession;
  now: number;
  queue: { position: number | null; length: number | null } | undefined;
  showOwner: boolean;
  refresh: () => void;
}): JSX.Element {
  const s = props.session;
  const slots = slotsOf(s);
  const usage = s.usage;
  const active = ACTIVE_STATUSES.includes(s.status);
  const titleId = `jp-BackendAI-session-${s.id}`;
  return (
    <li className="jp-BackendAI-card jp-BackendAI-session" aria-labelledby={titleId} data-session-name={s.name}>
      <div className="jp-BackendAI-cardHead">
        <span id={titleId} className="jp-BackendAI-cardTitle">
          {s.name}
        </span>
        <span className={`jp-BackendAI-status jp-BackendAI-status-${s.status}`}>{s.status}</span>
      </div>
      {s.status === 'PENDING' && props.queue && props.queue.position ? (
        <div className="jp-BackendAI-queue" role="status">
          Waiting in {s.resource_group}: position {props.queue.position} of {props.queue.length}
        </div>
      ) : null}
      {s.status_info ? <div className="jp-BackendAI-hint">{s.status_info}</div> : null}
      <dl className="jp-BackendAI-dl">
        <dt>ID</dt>
        <dd title={s.id}>{s.id.slice(0, 8)}</dd>
        {props.showOwner ? (
          <>
            <dt>Owner</dt>
            <dd>{s.user_email || s.username}</dd>
          </>
        ) : null}
        <dt>Image</dt>
        <dd>{s.image}</dd>
        <dt>Resource group</dt>
        <dd>{s.resource_group || '–'}</dd>
        <dt>CPU</dt>
        <dd>{formatAmount('cpu', slots.cpu)}</dd>
        <dt>RAM</dt>
        <dd>{formatAmount('mem', slots.mem)}</dd>
        <dt>GPU</dt>
        <dd>{formatGPU(slots)}</dd>
        {usage ? (
          <>
            <dt>Usage</dt>
            <dd className="jp-BackendAI-usage">
              CPU {usage.cpu_percent !== null ? `${Math.round(usage.cpu_percent)}%` : '–'}, memory{' '}
              {formatBytes(usage.mem_bytes)}, I/O {formatBytes(usage.io_read_bytes)} read /{' '}
              {formatBytes(usage.io_write_bytes)} written
              {usage.gpu_percent !== null ? `, GPU ${Math.round(usage.gpu_percent)}%` : ''}
            </dd>
          </>
        ) : null}
        <dt>Started</dt>
        <dd>{formatTime(s.started_at || s.created_at)}</dd>
        <dt>{s.terminated_at ? 'Ran for' : 'Elapsed'}</dt>
        <dd>{elapsed(s, props.now)}</dd>
      </dl>
      <div className="jp-BackendAI-actions">
        {s.status === 'RUNNING' ? (
          <>
            <Button label="Apps" title={`Apps of ${s.name}`} onClick={() => void showApps(s)} />
            <Button label="SSH / SFTP" title={`SSH / SFTP of ${s.name}`} onClick={() => void showSSH(s)} />
          </>
        ) : null}
        <Button label="Logs" title={`Logs of ${s.name}`} onClick={() => void showLogs(s)} />
        {active ? (
          <Button
            label="Terminate"
            title={`Terminate ${s.name}`}
            warn
            onClick={() => void terminate(s, props.refresh)}
          />
        ) : null}
      </div>
    </li>
  );
}

interface IViewProps {
  visible: boolean;
  who: IWhoAmI | null;
  whoError: string;
  register: (refresh: () => void) => void;
}

function SessionsView(props: IViewProps): JSX.Element {
  const [tab, setTab] = React.useState<TabId>('running');
  const [items, setItems] = React.useState<ISession[]>([]);
  const [total, setTotal] = React.useState(0);
  const [error, setError] = React.useState('');
  const [loaded, setLoaded] = React.useState(false);
  const [now, setNow] = React.useState(Date.now());
  const [queues, setQueues] = React.useState<{ [id: string]: { position: number | null; length: number | null } }>({});
  const admin = isAdmin(props.who);

  const refresh = React.useCallback(async () => {
    const status = tab === 'finished' ? 'finished' : 'running';
    const all = tab === 'others';
    try {
      const answer = await requestAPI<ISessionList>(
        `session?status=${status}&page_size=100${all ? '&all_users=true' : ''}`
      );
      let list = answer.items;
      if (all && props.who) {
        list = list.filter(s => s.username !== props.who!.username);
      }
      setItems(list);
      setTotal(all ? list.length : answer.total_count);
      setError('');
      const pending = list.filter(s => s.status === 'PENDING');
      const positions: typeof queues = {};
      await Promise.all(
        pending.map(async s => {
          try {
            positions[s.id] = await requestAPI(`session/${encodeURIComponent(s.id)}/queue`);
          } catch {
            // An older manager has no queue endpoint: the status line still says PENDING.
          }
        })
      );
      setQueues(positions);
    } catch (e) {
      setError(errorText(e));
    }
    setLoaded(true);
    setNow(Date.now());
  }, [tab, props.who]);

  React.useEffect(() => {
    props.register(() => void refresh());
    // The panel widget keeps the last refresh function; `register` itself never changes.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [refresh]);

  React.useEffect(() => {
    if (!props.visible) {
      return;
    }
    void refresh();
    const timer = window.setInterval(() => void refresh(), POLL_SECONDS * 1000);
    const clock = window.setInterval(() => setNow(Date.now()), 1000);
    return () => {
      window.clearInterval(timer);
      window.clearInterval(clock);
    };
  }, [props.visible, refresh]);

  const tabs = [
    { id: 'running', label: 'Running' },
    { id: 'finished', label: 'Finished' },
    ...(admin ? [{ id: 'others', label: 'Others' }] : [])
  ];

  const start = async () => {
    const request = await showStartDialog();
    if (!request) {
      return;
    }
    try {
      await startSession(request);
      setTab('running');
    } catch (e) {
      await showError('The session was not started', errorText(e));
    }
    void refresh();
  };

  return (
    <div className="jp-BackendAI-panel">
      <PanelHead title="Sessions" whoError={props.whoError}>
        <Button label="Start" title="Start a session" accept onClick={() => void start()} />
        <Button label="Refresh" title="Refresh the session list" onClick={() => void refresh()} />
      </PanelHead>
      <Tabs
        tabs={tabs}
        current={tab}
        label="Sessions"
        idPrefix="jp-BackendAI-sessions"
        onChange={id => {
          setLoaded(false);
          setItems([]);
          setTab(id as TabId);
        }}
      >
        {error ? <Message kind="error">{error}</Message> : null}
        {loaded && !error && items.length === 0 ? (
          <div className="jp-BackendAI-empty">
            {tab === 'running'
              ? 'No session is running.'
              : tab === 'finished'
                ? 'No finished session.'
                : "No other user's session."}
          </div>
        ) : null}
        <ul className="jp-BackendAI-list" aria-label={`${tab} sessions`}>
          {items.map(s => (
            <SessionCard
              key={s.id}
              session={s}
              now={now}
              queue={queues[s.id]}
              showOwner={tab === 'others'}
              refresh={() => void refresh()}
            />
          ))}
        </ul>
        {total > items.length ? (
          <div className="jp-BackendAI-hint">
            Showing the latest {items.length} of {total}.
          </div>
        ) : null}
      </Tabs>
    </div>
  );
}

/** The side-panel widget; it polls only while shown. */
export class SessionsPanel extends WhoPanel {
  constructor(whoami: WhoAmIModel) {
    super('backendai-sessions', 'jp-BackendAI-sessionsPanel', 'Backend.AI sessions', whoami);
  }

  /** Refresh the list now (after a session was started from elsewhere). */
  refresh(): void {
    this._refresh();
  }

  /** Open the start dialog, start the session and show it. */
  async startSession(folders?: string[]): Promise<void> {
    const request = await showStartDialog(folders);
    if (!request) {
      return;
    }
    try {
      await startSession(request);
    } catch (e) {
      await showError('The session was not started', errorText(e));
    }
    this._refresh();
  }

  protected onAfterShow(): void {
    this.update();
  }

  protected onAfterHide(): void {
    this.update();
  }

  protected render(): JSX.Element {
    return (
      <SessionsView
        visible={this.isVisible}
        who={this.who}
        whoError={this.whoError}
        register={fn => (this._refresh = fn)}
      />
    );
  }

  private _refresh: () => void = () => undefined;
}
