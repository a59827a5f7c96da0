/**
 * A session's Logs dialog: what its container (or process) wrote to stdout and stderr, as the
 * manager keeps it (`GET /session/{id}/logs`), while it runs and after it ended; Refresh reads
 * it again.
 */
import * as React from 'react';
import { errorText, ISession, ISessionLogs, requestAPI } from '../api';
import { Button, Message, showInfo } from '../components';
import { formatBytes, formatTime } from '../format';

function LogsView(props: { session: ISession }): JSX.Element {
  const name = props.session.name;
  const [answer, setAnswer] = React.useState<ISessionLogs | null>(null);
  const [error, setError] = React.useState('');
  const [loading, setLoading] = React.useState(false);
  const text = React.useRef<HTMLPreElement>(null);

  const load = React.useCallback(async () => {
    setLoading(true);
    try {
      // By id: an administrator reads another user's session without naming its owner.
      setAnswer(await requestAPI<ISessionLogs>(`session/${encodeURIComponent(props.session.id)}/logs`));
      setError('');
    } catch (e) {
      setError(errorText(e));
    }
    setLoading(false);
  }, [props.session.id]);

  React.useEffect(() => {
    void load();
  }, [load]);

  React.useEffect(() => {
    // The newest output is at the end: show it.
    if (text.current) {
      text.current.scrollTop = text.current.scrollHeight;
    }
  }, [answer]);

  const result = answer ? answer.result : null;
  return (
    <div className="jp-BackendAI-logs">
      <div className="jp-BackendAI-actions">
        <Button label="Refresh" title={`Refresh the logs of ${name}`} disabled={loading} onClick={() => void load()} />
        <span className="jp-BackendAI-hint" role="status">
          {loading
            ? 'Loading…'
            : result
              ? `${result.status}, ${formatBytes(result.kept_bytes)} kept` +
                (result.updated_at ? `, as of ${formatTime(result.updated_at)}` : '')
              : ''}
        </span>
      </div>
      {error ? <Message kind="error">{error}</Message> : null}
      {result && result.dropped_bytes > 0 ? (
        <div className="jp-BackendAI-hint">
          Only the last {formatBytes(result.kept_bytes)} are kept: {formatBytes(result.dropped_bytes)} of older output
          were dropped.
        </div>
      ) : null}
      {answer && answer.note ? <Message kind="info">{answer.note}</Message> : null}
      <pre ref={text} className="jp-BackendAI-code jp-BackendAI-logText" aria-label={`Logs of ${name}`} tabIndex={0}>
        {result ? result.logs || 'No output yet.' : ''}
      </pre>
    </div>
  );
}

/** Open the Logs dialog of a session (any status). */
export async function showLogs(session: ISession): Promise<void> {
  await showInfo(`Logs: ${session.name}`, <LogsView session={session} />, { className: 'jp-BackendAI-logsDialog' });
}
