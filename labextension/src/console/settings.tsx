/**
 * Settings: change password (F15), the SSH public key and a new pair (F16; the private key is
 * shown once, with a download), and the preferred SSH port (F34).
 */
import React, { useEffect, useState } from 'react';
import { api, errorText, IProfile } from '../api';
import {
  Button,
  confirm,
  CopyText,
  downloadText,
  ErrorMessage,
  Loading,
  PasswordRules,
  SectionHeader,
  StatusMessage,
  TextField,
  useLoad
} from '../components';
import { PASSWORD_RULES } from '../passwords';

const PORT_MIN = 10000;
const PORT_MAX = 65000;

function PasswordForm(): JSX.Element {
  const [old, setOld] = useState('');
  const [next, setNext] = useState('');
  const [again, setAgain] = useState('');
  const [error, setError] = useState('');
  const [done, setDone] = useState('');
  const [busy, setBusy] = useState(false);
  const weak = PASSWORD_RULES.some(rule => !rule.ok(next));
  const differ = again !== '' && again !== next;

  const submit = async (event: React.FormEvent) => {
    event.preventDefault();
    setError('');
    setDone('');
    if (differ) {
      setError('The two new passwords differ.');
      return;
    }
    setBusy(true);
    try {
      await api('auth/update-password', 'POST', {
        old_password: old,
        new_password: next,
        new_password2: again
      });
      setOld('');
      setNext('');
      setAgain('');
      setDone('Your password was changed.');
    } catch (reason) {
      setError(errorText(reason));
    } finally {
      setBusy(false);
    }
  };

  return (
    <form className="jp-BackendAI-card" onSubmit={submit} aria-labelledby="jp-BackendAI-password-title">
      <h3 id="jp-BackendAI-password-title">Change password</h3>
      <TextField
        label="Current password"
        type="password"
        name="old_password"
        autoComplete="current-password"
        value={old}
        onChange={setOld}
        required
      />
      <TextField
        label="New password"
        type="password"
        name="new_password"
        autoComplete="new-password"
        value={next}
        onChange={setNext}
        required
      />
      <PasswordRules password={next} />
      <TextField
        label="New password again"
        type="password"
        name="new_password2"
        autoComplete="new-password"
        value={again}
        onChange={setAgain}
        required
        hint={differ ? 'The two new passwords differ.' : undefined}
      />
      <ErrorMessage error={error} />
      <StatusMessage text={done} />
      <Button type="submit" kind="accept" disabled={busy || !old || weak || !again || differ}>
        Change password
      </Button>
    </form>
  );
}

function SSHKeys(): JSX.Element {
  const key = useLoad(() => api<{ ssh_public_key: string }>('resource/ssh-keypair'), []);
  const [fresh, setFresh] = useState<{ ssh_public_key: string; ssh_private_key: string } | null>(null);
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);

  const refresh = async () => {
    const agreed = await confirm(
      'Generate a new SSH keypair?',
      'Sessions started from now on accept only the new key; the private key is shown once. ' +
        'Running sessions keep the old one.',
      'Generate'
    );
    if (!agreed) {
      return;
    }
    setBusy(true);
    setError('');
    try {
      setFresh(await api('resource/ssh-keypair', 'POST', {}));
      key.reload();
    } catch (reason) {
      setError(errorText(reason));
    } finally {
      setBusy(false);
    }
  };

  return (
    <section className="jp-BackendAI-card" aria-labelledby="jp-BackendAI-ssh-title">
      <h3 id="jp-BackendAI-ssh-title">SSH keypair</h3>
      <p className="jp-BackendAI-hint">
        Sessions accept this public key for SSH and SFTP; inside a session the private key is /home/work/id_container.
      </p>
      <ErrorMessage error={key.error || error} />
      {key.loading && !key.data && <Loading what="the public key" />}
      {key.data && <CopyText label="Public key" value={fresh?.ssh_public_key || key.data.ssh_public_key} />}
      {fresh && (
        <div className="jp-BackendAI-secret" role="region" aria-label="The new keypair">
          <p>
            <strong>This private key is shown only now.</strong> Download it or copy it before you leave this page.
          </p>
          <CopyText label="New private key" value={fresh.ssh_private_key} rows={6} />
          <Button kind="accept" onClick={() => downloadText('id_container', fresh.ssh_private_key)}>
            Download id_container
          </Button>
        </div>
      )}
      <Button kind="warn" onClick={refresh} disabled={busy}>
        Generate a new keypair
      </Button>
    </section>
  );
}

function SSHPort(): JSX.Element {
  const profile = useLoad(() => api<IProfile>('auth/profile'), []);
  const [port, setPort] = useState('');
  const [error, setError] = useState('');
  const [done, setDone] = useState('');
  useEffect(() => {
    if (profile.data) {
      setPort(profile.data.preferred_ssh_port ? String(profile.data.preferred_ssh_port) : '');
    }
  }, [profile.data]);

  const save = async (value: number | null) => {
    setError('');
    setDone('');
    try {
      const answer = await api<{ preferred_ssh_port: number | null }>('auth/profile', 'PATCH', {
        preferred_ssh_port: value
      });
      setPort(answer.preferred_ssh_port ? String(answer.preferred_ssh_port) : '');
      setDone(
        answer.preferred_ssh_port
          ? `New sessions use port ${answer.preferred_ssh_port} when it is free.`
          : 'New sessions get a random port.'
      );
    } catch (reason) {
      setError(errorText(reason));
    }
  };
  const submit = (event: React.FormEvent) => {
    event.preventDefault();
    if (port.trim() === '') {
      void save(null);
      return;
    }
    const n = Number(port);
    if (!Number.isInteger(n) || n < PORT_MIN || n > PORT_MAX) {
      setError(`The port must be a whole number from ${PORT_MIN} to ${PORT_MAX}.`);
      return;
    }
    void save(n);
  };

  return (
    <form className="jp-BackendAI-card" onSubmit={submit} aria-labelledby="jp-BackendAI-port-title">
      <h3 id="jp-BackendAI-port-title">Preferred SSH port</h3>
      <ErrorMessage error={profile.error} />
      <TextField
        label="Port"
        type="number"
        name="preferred_ssh_port"
        min={PORT_MIN}
        max={PORT_MAX}
        value={port}
        onChange={setPort}
        placeholder="random"
        hint={`${PORT_MIN}–${PORT_MAX}; taken when free, else a random port. Empty: always random.`}
      />
      <ErrorMessage error={error} />
      <StatusMessage text={done} />
      <div className="jp-BackendAI-toolbar">
        <Button type="submit" kind="accept" disabled={!profile.data}>
          Save port
        </Button>
        <Button onClick={() => void save(null)} disabled={!profile.data}>
          Use a random port
        </Button>
      </div>
    </form>
  );
}

export function Settings(): JSX.Element {
  return (
    <div className="jp-BackendAI-page jp-BackendAI-settings">
      <SectionHeader title="Settings" />
      <div className="jp-BackendAI-cards">
        <PasswordForm />
        <SSHKeys />
        <SSHPort />
      </div>
    </div>
  );
}
