/**
 * The start dialog (F18, F20): environment and version, project, resource group, name,
 * folders to mount, a preset that still fits or a custom allocation, environment variables.
 */
import * as React from 'react';
import { errorText, requestAPI, ICheckPresets, IPreset } from '../api';
import { customResources } from '../slots';
import { parseEnviron } from './environ';

export { parseEnviron } from './environ';
import { Field, Message, Options, showForm, uid } from '../components';
import { formatAmount, formatBytes, SLOT_LABELS } from '../format';

interface IImage {
  reference: string;
  registry: string;
  name: string;
  tag: string;
  resource_limits: { [slot: string]: string };
}

interface ILaunchOptions {
  group: string | null;
  groups: { id: string; name: string }[];
  scaling_groups: string[];
  images: IImage[];
}

interface IFolder {
  id: string;
  name: string;
  automount: boolean;
  permission: string;
}

/** What POST session is sent. */
export interface IStartRequest {
  name?: string;
  image: string;
  group?: string;
  preset?: string;
  config: {
    scaling_group?: string;
    mounts?: string[];
    resources?: { [slot: string]: string };
    resource_opts?: { shmem?: string };
    environ?: { [name: string]: string };
  };
}

const NAME_RE = /^[A-Za-z0-9_-]{1,64}$/;

function presetText(p: IPreset): string {
  const parts: string[] = [];
  for (const [slot, value] of Object.entries(p.resource_slots)) {
    if (Number(value) === 0) {
      continue;
    }
    const label = SLOT_LABELS[slot] || slot;
    parts.push(`${label} ${formatAmount(slot, value)}`);
  }
  if (p.shared_memory) {
    parts.push(`shm ${formatBytes(p.shared_memory)}`);
  }
  return `${p.name} (${parts.join(', ')})`;
}

function imageGroups(images: IImage[]): Map<string, IImage[]> {
  const out = new Map<string, IImage[]>();
  for (const image of images) {
    const key = image.registry === 'local' ? image.name : `${image.registry}/${image.name}`;
    out.set(key, [...(out.get(key) || []), image]);
  }
  return out;
}

function StartForm(props: { update: (value: IStartRequest | null) => void; folderPreselect?: string[] }): JSX.Element {
  const ids = React.useMemo(
    () => ({
      env: uid('start-env'),
      version: uid('start-version'),
      group: uid('start-group'),
      sg: uid('start-sg'),
      name: uid('start-name'),
      preset: uid('start-preset'),
      cpu: uid('start-cpu'),
      mem: uid('start-mem'),
      shmem: uid('start-shmem'),
      gpu: uid('start-gpu'),
      fgpu: uid('start-fgpu'),
      environ: uid('start-environ')
    }),
    []
  );
  const [options, setOptions] = React.useState<ILaunchOptions | null>(null);
  const [folders, setFolders] = React.useState<IFolder[]>([]);
  const [check, setCheck] = React.useState<ICheckPresets | null>(null);
  const [error, setError] = React.useState('');
  const [group, setGroup] = React.useState('');
  const [sg, setSG] = React.useState('');
  const [env, setEnv] = React.useState('');
  const [image, setImage] = React.useState('');
  const [name, setName] = React.useState('');
  const [chosen, setChosen] = React.useState<string[]>(props.folderPreselect || []);
  const [mode, setMode] = React.useState<'preset' | 'custom'>('preset');
  const [preset, setPreset] = React.useState('');
  const [cpu, setCPU] = React.useState('1');
  const [mem, setMem] = React.useState('1g');
  const [shmem, setShmem] = React.useState('');
  const [gpu, setGPU] = React.useState('');
  const [fgpu, setFGPU] = React.useState('');
  const [environText, setEnvironText] = React.useState('');

  // The project decides which images and resource groups are offered.
  React.useEffect(() => {
    let live = true;
    const q = group ? `?group=${encodeURIComponent(group)}` : '';
    requestAPI<ILaunchOptions>(`resource/launch-options${q}`)
      .then(answer => {
        if (!live) {
          return;
        }
        setOptions(answer);
        setError('');
        if (!group && answer.group) {
          setGroup(answer.group);
        }
        if (!answer.scaling_groups.includes(sg)) {
          setSG(answer.scaling_groups[0] || '');
        }
        const envs = imageGroups(answer.images);
        if (!envs.has(env)) {
          const first = envs.keys().next();
          setEnv(first.done ? '' : first.value);
        }
      })
      .catch(e => live && setError(errorText(e)));
    return () => {
      live = false;
    };
    // The project decides the options; the current choices are only kept when still offered.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [group]);

  React.useEffect(() => {
    requestAPI<IFolder[]>('folders')
      .then(list => setFolders(list))
      .catch(e => setError(errorText(e)));
  }, []);

  // What fits depends on the project and the resource group.
  React.useEffect(() => {
    if (!sg) {
      return;
    }
    let live = true;
    // A user in no project asks without one: the manager then checks the policy and domain only.
    requestAPI<ICheckPresets>('resource/check-presets', {
      method: 'POST',
      body: JSON.stringify(group ? { group, scaling_group: sg } : { scaling_group: sg })
    })
      .then(answer => {
        if (!live) {
          return;
        }
        setCheck(answer);
        const fitting = answer.presets.filter(p => p.allocatable);
        if (!fitting.find(p => p.name === preset)) {
          setPreset(fitting.length ? fitting[0].name : '');
        }
        if (!fitting.length) {
          setMode('custom');
        }
      })
      .catch(e => live && setError(errorText(e)));
    return () => {
      live = false;
    };
    // Asked again only when the project or resource group changes, not when a preset is picked.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [group, sg]);

  const envs = options ? imageGroups(options.images) : new Map<string, IImage[]>();
  const versions = envs.get(env) || [];
  React.useEffect(() => {
    if (!versions.find(v => v.reference === image)) {
      setImage(versions.length ? versions[0].reference : '');
    }
    // `versions` follows from these two; the chosen image is kept while it is one of them.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [env, options]);

  const fitting = check ? check.presets.filter(p => p.allocatable) : [];
  const hidden = check ? check.presets.length - fitting.length : 0;
  const remaining = check ? check.scaling_group_remaining || {} : {};
  const offersGPU = 'cuda.device' in remaining;
  const offersFGPU = 'cuda.shares' in remaining;
  const mountable = folders.filter(f => !f.automount);
  const automount = folders.filter(f => f.automount);
  const nameOK = !name || NAME_RE.test(name);
  const environ = parseEnviron(environText);

  let value: IStartRequest | null = null;
  if (image && nameOK && !environ.error && (mode === 'custom' || preset)) {
    value = {
      image,
      group: group || undefined,
      config: { scaling_group: sg || undefined, mounts: chosen }
    };
    if (Object.keys(environ.environ).length) {
      value.config.environ = environ.environ;
    }
    if (name) {
      value.name = name;
    }
    if (mode === 'preset') {
      value.preset = preset;
    } else {
      value.config.resources = customResources({ cpu, mem, gpu, fgpu }, { gpu: offersGPU, fgpu: offersFGPU });
      if (shmem) {
        value.config.resource_opts = { shmem };
      }
    }
  }
  props.update(value);

  const toggle = (folder: string) =>
    setChosen(chosen.includes(folder) ? chosen.filter(f => f !== folder) : [...chosen, folder]);

  return (
    <div className="jp-BackendAI-start">
      {error ? <Message kind="error">{error}</Message> : null}
      <Field label="Environment" id={ids.env}>
        <select id={ids.env} value={env} onChange={e => setEnv(e.target.value)}>
          <Options values={[...envs.keys()]} />
        </select>
      </Field>
      {options && !options.images.length ? (
        <Message kind="warning">No environment is available to this project.</Message>
      ) : null}
      <Field label="Version" id={ids.version}>
        <select id={ids.version} value={image} onChange={e => setImage(e.target.value)}>
          {versions.map(v => (
            <option key={v.reference} value={v.reference}>
              {v.tag}
              {Object.keys(v.resource_limits || {}).length
                ? ` (minimum ${Object.entries(v.resource_limits)
                    .map(([s, a]) => `${s} ${formatAmount(s, a)}`)
                    .join(', ')})`
                : ''}
            </option>
          ))}
        </select>
      </Field>
      <Field label="Project" id={ids.group}>
        <select id={ids.group} value={group} onChange={e => setGroup(e.target.value)}>
          {options && !options.groups.length ? <option value="">(no project)</option> : null}
          {(options?.groups || []).map(g => (
            <option key={g.id} value={g.name}>
              {g.name}
            </option>
          ))}
        </select>
      </Field>
      <Field label="Resource group" id={ids.sg}>
        <select id={ids.sg} value={sg} onChange={e => setSG(e.target.value)}>
          <Options values={options?.scaling_groups || []} />
        </select>
      </Field>
      <Field label="Session name (optional)" id={ids.name} hint="1 to 64 letters, digits, - or _">
        <input id={ids.name} type="text" value={name} aria-invalid={!nameOK} onChange={e => setName(e.target.value)} />
      </Field>
      {!nameOK ? <Message kind="error">A session name is 1 to 64 letters, digits, '-' or '_'.</Message> : null}
      <fieldset className="jp-BackendAI-fieldset">
        <legend>Folders to mount (at /home/work/&lt;name&gt;)</legend>
        {mountable.length === 0 ? <div className="jp-BackendAI-hint">You have no folders yet.</div> : null}
        {mountable.map(f => {
          const id = `${ids.name}-folder-${f.id}`;
          return (
            <div key={f.id} className="jp-BackendAI-check">
              <input id={id} type="checkbox" checked={chosen.includes(f.name)} onChange={() => toggle(f.name)} />
              <label htmlFor={id}>
                {f.name}
                {f.permission === 'ro' ? ' (read only)' : ''}
              </label>
            </div>
          );
        })}
        {automount.length ? (
          <div className="jp-BackendAI-hint">Always mounted: {automount.map(f => f.name).join(', ')}</div>
        ) : null}
      </fieldset>
      {chosen.length === 0 ? (
        <Message kind="warning">
          No folder is mounted: files written outside folders are lost when the session ends.
        </Message>
      ) : null}
      <fieldset className="jp-BackendAI-fieldset">
        <legend>Resources</legend>
        <div className="jp-BackendAI-check">
          <input
            id={`${ids.preset}-mode-preset`}
            type="radio"
            name={`${ids.preset}-mode`}
            checked={mode === 'preset'}
            disabled={!fitting.length}
            onChange={() => setMode('preset')}
          />
          <label htmlFor={`${ids.preset}-mode-preset`}>Preset</label>
          <input
            id={`${ids.preset}-mode-custom`}
            type="radio"
            name={`${ids.preset}-mode`}
            checked={mode === 'custom'}
            onChange={() => setMode('custom')}
          />
          <label htmlFor={`${ids.preset}-mode-custom`}>Custom allocation</label>
        </div>
        {mode === 'preset' ? (
          <Field
            label="Resource preset"
            id={ids.preset}
            hint={hidden ? `${hidden} preset(s) that no longer fit are not offered.` : undefined}
          >
            <select id={ids.preset} value={preset} onChange={e => setPreset(e.target.value)}>
              {fitting.map(p => (
                <option key={p.name} value={p.name}>
                  {presetText(p)}
                </option>
              ))}
            </select>
          </Field>
        ) : (
          <div className="jp-BackendAI-grid">
            <Field label="CPU cores" id={ids.cpu}>
              <input id={ids.cpu} type="number" min="0" step="0.5" value={cpu} onChange={e => setCPU(e.target.value)} />
            </Field>
            <Field label="RAM (e.g. 2g)" id={ids.mem}>
              <input id={ids.mem} type="text" value={mem} onChange={e => setMem(e.target.value)} />
            </Field>
            <Field label="Shared memory (e.g. 64m)" id={ids.shmem}>
              <input id={ids.shmem} type="text" value={shmem} onChange={e => setShmem(e.target.value)} />
            </Field>
            {offersGPU ? (
              <Field label="GPU devices" id={ids.gpu}>
                <input id={ids.gpu} type="number" min="0" step="1" value={gpu} onChange={e => setGPU(e.target.value)} />
              </Field>
            ) : null}
            {offersFGPU ? (
              <Field label="fGPU" id={ids.fgpu}>
                <input
                  id={ids.fgpu}
                  type="number"
                  min="0"
                  step="0.1"
                  value={fgpu}
                  onChange={e => setFGPU(e.target.value)}
                />
              </Field>
            ) : null}
          </div>
        )}
        {check ? (
          <div className="jp-BackendAI-hint">
            Still available to you in {sg}: CPU {formatAmount('cpu', remaining.cpu)}, RAM{' '}
            {formatAmount('mem', remaining.mem)}
          </div>
        ) : null}
      </fieldset>
      <Field
        label="Environment variables"
        id={ids.environ}
        hint="One KEY=value per line. Names the product sets (JUPYTERHUB_*, BACKENDAI_*, NVIDIA_*, HOME, ...) are refused."
      >
        <textarea
          id={ids.environ}
          rows={3}
          spellCheck={false}
          placeholder="KEY=value"
          value={environText}
          aria-invalid={!!environ.error}
          aria-describedby={`${ids.environ}-hint`}
          onChange={e => setEnvironText(e.target.value)}
        />
      </Field>
      {environ.error ? <Message kind="error">{environ.error}</Message> : null}
    </div>
  );
}

/** Show the start dialog; resolves with the request to send, or null when cancelled. */
export function showStartDialog(folders?: string[]): Promise<IStartRequest | null> {
  return showForm<IStartRequest>(
    'Start a session',
    update => <StartForm update={update} folderPreselect={folders} />,
    'Start',
    { className: 'jp-BackendAI-startDialog' }
  );
}

/** Start a session as the dialog asked; answers the manager's create answer. */
export async function startSession(request: IStartRequest): Promise<any> {
  return requestAPI('session', { method: 'POST', body: JSON.stringify(request) });
}
