/**
 * Shared pieces of the console widgets: calls to the manager, amount formatting, and small
 * accessible React components (labelled fields, an error banner, a modal form dialog, tabs,
 * tables) styled with JupyterLab's theme variables (style/console.css).
 */
import React, { useCallback, useEffect, useRef, useState } from 'react';

import { ManagerError, requestAPI } from '../handler';
import { Field, Tabs as PanelTabs } from '../ui';

/** Resource slots as the manager sends them: every amount a string, unlimited as "Infinity". */
export type Slots = Record<string, string>;

/** The text to show for a failed call: the manager's reason when there is one. */
export function errorText(error: unknown): string {
  if (error instanceof ManagerError) {
    return error.reason || error.message;
  }
  if (error && typeof error === 'object' && 'reason' in error) {
    return String((error as { reason: unknown }).reason);
  }
  if (error instanceof Error) {
    return error.message;
  }
  return String(error);
}

/** A JSON call to the manager through the server extension (`backendai/<path>`). */
export function api<T = any>(
  path: string,
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE' = 'GET',
  body?: unknown
): Promise<T> {
  const init: RequestInit = { method };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers = { 'Content-Type': 'application/json' };
  }
  return requestAPI<T>(path, init);
}

/** A path segment for the manager's URLs (image references keep their slashes). */
export function segment(value: string, keepSlashes = false): string {
  return keepSlashes
    ? value.split('/').map(encodeURIComponent).join('/')
    : encodeURIComponent(value);
}

/** A query string from the defined values of `params`. */
export function query(
  params: Record<string, string | number | boolean | undefined | null>
): string {
  const parts = Object.entries(params)
    .filter(([, v]) => v !== undefined && v !== null && v !== '')
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`);
  return parts.length ? `?${parts.join('&')}` : '';
}

// --- amounts -----------------------------------------------------------------------------------

const BYTE_SLOTS = new Set(['mem', 'shmem', 'cuda.mem', 'disk']);
const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** A slot amount as a number (Infinity for "Infinity"; 0 when absent or not a number). */
export function amount(value: string | number | undefined | null): number {
  if (value === undefined || value === null || value === '') {
    return 0;
  }
  if (typeof value === 'number') {
    return value;
  }
  if (/^(infinity|unlimited)$/i.test(value.trim())) {
    return Infinity;
  }
  const n = Number(value);
  return Number.isFinite(n) ? n : 0;
}

/** Bytes for people: "4 GiB", "512 MiB". */
export function formatBytes(bytes: number, digits = 1): string {
  if (!Number.isFinite(bytes)) {
    return 'unlimited';
  }
  let unit = 0;
  let value = bytes;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const text = unit === 0 ? String(Math.round(value)) : trimNumber(value, digits);
  return `${text} ${UNITS[unit]}`;
}

/** A number with at most `digits` decimals, without trailing zeros. */
export function trimNumber(value: number, digits = 2): string {
  if (!Number.isFinite(value)) {
    return 'unlimited';
  }
  return String(Number(value.toFixed(digits)));
}

/** One slot's amount for people ("2 cores" is left to the caller: this is "2", "4 GiB", "unlimited"). */
export function formatSlot(name: string, value: string | number | undefined): string {
  const n = amount(value);
  if (!Number.isFinite(n)) {
    return 'unlimited';
  }
  return BYTE_SLOTS.has(name) ? formatBytes(n) : trimNumber(n);
}

/** Slots in one line: "cpu 2, mem 4 GiB". */
export function formatSlots(slots: Slots | undefined | null): string {
  const entries = Object.entries(slots || {});
  if (!entries.length) {
    return '—';
  }
  return entries.map(([k, v]) => `${SLOT_LABELS[k] || k} ${formatSlot(k, v)}`).join(', ');
}

export const SLOT_LABELS: Record<string, string> = {
  cpu: 'CPU',
  mem: 'RAM',
  'cuda.device': 'GPU',
  'cuda.shares': 'fGPU',
  shmem: 'shared memory'
};

/** Seconds for people: "0" → "never", 3600 → "1 h". */
export function formatDuration(seconds: number | null | undefined, zero = 'never'): string {
  if (!seconds) {
    return zero;
  }
  const units: [number, string][] = [
    [86400, 'd'],
    [3600, 'h'],
    [60, 'min']
  ];
  for (const [size, label] of units) {
    if (seconds >= size && seconds % size === 0) {
      return `${seconds / size} ${label}`;
    }
  }
  return `${seconds} s`;
}

/** A timestamp in the browser's locale, or "—". */
export function formatTime(iso: string | null | undefined): string {
  if (!iso) {
    return '—';
  }
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

const SIZE = /^\s*([0-9]*\.?[0-9]+)\s*(?:([kmgtp])(?:ib|b|i)?|b)?\s*$/i;

/** "10g" → 10737418240 (binary units, like the manager); null when it is not a size. */
export function parseSize(text: string): number | null {
  const match = SIZE.exec(text);
  if (!match) {
    return null;
  }
  const power = match[2] ? 'kmgtp'.indexOf(match[2].toLowerCase()) + 1 : 0;
  return Math.floor(Number(match[1]) * 1024 ** power);
}

// --- password rules (the same as jupyter_backendai.core.passwords) -------------------------------

export interface IPasswordRule {
  label: string;
  ok: (password: string) => boolean;
}

export const PASSWORD_RULES: IPasswordRule[] = [
  { label: 'at least 8 characters', ok: p => Array.from(p).length >= 8 },
  { label: 'a letter', ok: p => /\p{L}/u.test(p) },
  { label: 'a digit', ok: p => /\p{Nd}/u.test(p) },
  {
    label: 'a special character (not a space)',
    ok: p => /[^\p{L}\p{Nd}\s\p{C}]/u.test(p)
  }
];

/** The password rules with a mark for each one the password keeps. */
export function PasswordRules(props: { password: string; id?: string }): JSX.Element {
  return (
    <ul className="jp-BackendAI-c-rules" id={props.id} aria-label="Password rules">
      {PASSWORD_RULES.map(rule => {
        const ok = rule.ok(props.password);
        return (
          <li key={rule.label} className={ok ? 'jp-BackendAI-c-rule-ok' : 'jp-BackendAI-c-rule-missing'}>
            <span aria-hidden="true">{ok ? '✓' : '•'}</span> {rule.label}
            <span className="jp-BackendAI-c-sr-only">{ok ? ' (met)' : ' (not met yet)'}</span>
          </li>
        );
      })}
    </ul>
  );
}

// --- loading -----------------------------------------------------------------------------------

export interface ILoaded<T> {
  data: T | undefined;
  error: string;
  loading: boolean;
  reload: () => void;
}

/** Run `load` now and whenever `deps` change; `reload()` runs it again. */
export function useLoad<T>(load: () => Promise<T>, deps: React.DependencyList): ILoaded<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState('');
  const [loading, setLoading] = useState(true);
  const [round, setRound] = useState(0);
  useEffect(() => {
    let live = true;
    setLoading(true);
    load().then(
      value => {
        if (live) {
          setData(value);
          setError('');
          setLoading(false);
        }
      },
      reason => {
        if (live) {
          setError(errorText(reason));
          setLoading(false);
        }
      }
    );
    return () => {
      live = false;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, round]);
  const reload = useCallback(() => setRound(r => r + 1), []);
  return { data, error, loading, reload };
}

let nextId = 0;

/** A document-unique id for label/control pairs. */
export function useId(prefix = 'jp-BackendAI-c-field'): string {
  const ref = useRef<string>();
  if (!ref.current) {
    nextId += 1;
    ref.current = `${prefix}-${nextId}`;
  }
  return ref.current;
}

// --- small components ---------------------------------------------------------------------------

/** The manager's reason for a refusal, announced to screen readers. */
export function ErrorMessage(props: { error?: string; onDismiss?: () => void }): JSX.Element | null {
  if (!props.error) {
    return null;
  }
  return (
    <div className="jp-BackendAI-c-error" role="alert">
      <span>{props.error}</span>
      {props.onDismiss && (
        <button
          type="button"
          className="jp-BackendAI-c-linkButton"
          onClick={props.onDismiss}
          aria-label="Dismiss the message"
        >
          ×
        </button>
      )}
    </div>
  );
}

/** A polite status line (successes, "loading…"). */
export function StatusMessage(props: { text?: string }): JSX.Element | null {
  if (!props.text) {
    return null;
  }
  return (
    <div className="jp-BackendAI-c-status" role="status">
      {props.text}
    </div>
  );
}

export function Loading(props: { what?: string }): JSX.Element {
  return (
    <div className="jp-BackendAI-c-loading" role="status" aria-live="polite">
      Loading{props.what ? ` ${props.what}` : ''}…
    </div>
  );
}

type ButtonKind = 'accept' | 'warn' | 'reject' | 'plain';

/** A JupyterLab-styled button; `kind` picks the accent (accept: brand, warn: error colour). */
export function Btn(
  props: React.ButtonHTMLAttributes<HTMLButtonElement> & { kind?: ButtonKind }
): JSX.Element {
  const { kind = 'plain', className, type, ...rest } = props;
  const mod = kind === 'plain' ? '' : `jp-mod-${kind}`;
  return (
    <button
      type={type || 'button'}
      className={`jp-Button jp-mod-styled jp-BackendAI-c-button ${mod} ${className || ''}`}
      {...rest}
    />
  );
}

/** What a text field and a select share: the id, name, value, hint reference and change. */
function controlProps(
  id: string,
  props: { name?: string; value: string; disabled?: boolean; hint?: string; onChange: (value: string) => void }
) {
  return {
    id,
    name: props.name,
    value: props.value,
    disabled: props.disabled,
    'aria-describedby': props.hint ? `${id}-hint` : undefined,
    onChange: (e: React.ChangeEvent<HTMLInputElement | HTMLSelectElement>) => props.onChange(e.target.value)
  };
}

export function TextField(props: {
  label: string;
  value: string;
  onChange: (value: string) => void;
  type?: string;
  hint?: string;
  placeholder?: string;
  required?: boolean;
  disabled?: boolean;
  autoComplete?: string;
  min?: number;
  max?: number;
  name?: string;
}): JSX.Element {
  const id = useId();
  return (
    <Field prefix="jp-BackendAI-c" label={props.label} id={id} hint={props.hint}>
      <input
        {...controlProps(id, props)}
        className="jp-mod-styled jp-BackendAI-c-input"
        type={props.type || 'text'}
        placeholder={props.placeholder}
        required={props.required}
        autoComplete={props.autoComplete}
        min={props.min}
        max={props.max}
      />
    </Field>
  );
}

/** A number field; `min` is 0 unless given. */
export function NumberField(props: Omit<Parameters<typeof TextField>[0], 'type'>): JSX.Element {
  return <TextField type="number" min={0} {...props} />;
}

export function SelectField(props: {
  label: string;
  value: string;
  onChange: (value: string) => void;
  options: (string | { value: string; label: string })[];
  hint?: string;
  disabled?: boolean;
  name?: string;
}): JSX.Element {
  const id = useId();
  return (
    <Field prefix="jp-BackendAI-c" label={props.label} id={id} hint={props.hint}>
      <select {...controlProps(id, props)} className="jp-BackendAI-c-select">
        {props.options.map(o => {
          const opt = typeof o === 'string' ? { value: o, label: o } : o;
          return (
            <option key={opt.value} value={opt.value}>
              {opt.label}
            </option>
          );
        })}
      </select>
    </Field>
  );
}

export function CheckField(props: {
  label: string;
  checked: boolean;
  onChange: (checked: boolean) => void;
  disabled?: boolean;
  name?: string;
}): JSX.Element {
  const id = useId();
  return (
    <div className="jp-BackendAI-c-field jp-BackendAI-c-check">
      <input
        id={id}
        name={props.name}
        type="checkbox"
        checked={props.checked}
        disabled={props.disabled}
        onChange={e => props.onChange(e.target.checked)}
      />
      <label htmlFor={id}>{props.label}</label>
    </div>
  );
}

/** Checkboxes for a set of names (groups, domains...), in a labelled fieldset. */
export function MultiCheck(props: {
  legend: string;
  options: string[];
  value: string[];
  onChange: (value: string[]) => void;
  empty?: string;
}): JSX.Element {
  const base = useId('jp-BackendAI-c-multi');
  return (
    <fieldset className="jp-BackendAI-c-fieldset">
      <legend>{props.legend}</legend>
      {props.options.length === 0 && <div className="jp-BackendAI-c-hint">{props.empty || 'none'}</div>}
      {props.options.map((option, i) => (
        <div className="jp-BackendAI-c-check" key={option}>
          <input
            type="checkbox"
            id={`${base}-${i}`}
            checked={props.value.includes(option)}
            onChange={e =>
              props.onChange(
                e.target.checked
                  ? [...props.value, option]
                  : props.value.filter(v => v !== option)
              )
            }
          />
          <label htmlFor={`${base}-${i}`}>{option}</label>
        </div>
      ))}
    </fieldset>
  );
}

/** The open form dialogs, innermost last: Escape closes only that one. */
const openDialogs: object[] = [];

const FOCUSABLE =
  'a[href], button:not([disabled]), input:not([disabled]), select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex="-1"])';

/**
 * A modal form dialog: Escape or Cancel closes it, Enter submits, focus starts on the first
 * field, stays inside while open and returns to where it was afterwards.
 */
export function FormDialog(props: {
  title: string;
  submitLabel: string;
  onSubmit: () => Promise<void> | void;
  onClose: () => void;
  children: React.ReactNode;
  danger?: boolean;
  wide?: boolean;
  /** An error from outside (a failed submit shows its own). */
  error?: string;
  /** Hide the submit button (a read-only result). */
  closeOnly?: boolean;
}): JSX.Element {
  const titleId = useId('jp-BackendAI-c-dialog-title');
  const ref = useRef<HTMLFormElement>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState('');
  const close = useRef(props.onClose);
  close.current = props.onClose;
  useEffect(() => {
    const before = document.activeElement as HTMLElement | null;
    const first = ref.current?.querySelector<HTMLElement>(
      'input:not([disabled]), select:not([disabled]), textarea, button'
    );
    first?.focus();
    // Escape closes the topmost dialog wherever the focus is (JupyterLab's own shortcuts
    // listen on the document too, so this listens before them, in the capture phase).
    const token = {};
    openDialogs.push(token);
    const onEscape = (event: KeyboardEvent) => {
      if (event.key === 'Escape' && openDialogs[openDialogs.length - 1] === token) {
        event.preventDefault();
        event.stopPropagation();
        close.current();
      }
    };
    document.addEventListener('keydown', onEscape, true);
    return () => {
      document.removeEventListener('keydown', onEscape, true);
      openDialogs.splice(openDialogs.indexOf(token), 1);
      before?.focus?.();
    };
  }, []);
  const onKeyDown = (event: React.KeyboardEvent) => {
    if (event.key === 'Tab' && ref.current) {
      const items = Array.from(ref.current.querySelectorAll<HTMLElement>(FOCUSABLE));
      if (!items.length) {
        return;
      }
      const first = items[0];
      const last = items[items.length - 1];
      if (event.shiftKey && document.activeElement === first) {
        last.focus();
        event.preventDefault();
      } else if (!event.shiftKey && document.activeElement === last) {
        first.focus();
        event.preventDefault();
      }
    }
  };
  const submit = async (event: React.FormEvent) => {
    event.preventDefault();
    if (busy || props.closeOnly) {
      return;
    }
    setBusy(true);
    setError('');
    try {
      await props.onSubmit();
    } catch (reason) {
      setError(errorText(reason));
    } finally {
      setBusy(false);
    }
  };
  return (
    <div className="jp-BackendAI-c-overlay" onKeyDown={onKeyDown}>
      <form
        ref={ref}
        className={`jp-BackendAI-c-dialog ${props.wide ? 'jp-BackendAI-c-dialog-wide' : ''}`}
        role="dialog"
        aria-modal="true"
        aria-labelledby={titleId}
        onSubmit={submit}
      >
        <h2 id={titleId} className="jp-BackendAI-c-dialog-title">
          {props.title}
        </h2>
        <div className="jp-BackendAI-c-dialog-body">{props.children}</div>
        <ErrorMessage error={error || props.error} />
        <div className="jp-BackendAI-c-dialog-buttons">
          <Btn kind="reject" onClick={props.onClose}>
            {props.closeOnly ? 'Close' : 'Cancel'}
          </Btn>
          {!props.closeOnly && (
            // Not disabled while busy: a disabled button would drop the focus out of the dialog.
            <Btn type="submit" kind={props.danger ? 'warn' : 'accept'} aria-disabled={busy}>
              {busy ? 'Working…' : props.submitLabel}
            </Btn>
          )}
        </div>
      </form>
    </div>
  );
}

/** Tabs whose panels are render functions; the selected one is kept here unless given. */
export function Tabs(props: {
  label: string;
  tabs: { id: string; label: string; render: () => React.ReactNode }[];
  selected?: string;
  onSelect?: (id: string) => void;
}): JSX.Element {
  const base = useId('jp-BackendAI-c-tabs');
  const [own, setOwn] = useState(props.tabs[0]?.id);
  const current = props.tabs.find(t => t.id === (props.selected ?? own)) || props.tabs[0];
  return (
    <div className="jp-BackendAI-c-tabs">
      <PanelTabs
        prefix="jp-BackendAI-c"
        idPrefix={base}
        label={props.label}
        tabs={props.tabs}
        current={current?.id}
        onChange={id => {
          setOwn(id);
          props.onSelect?.(id);
        }}
        focusablePanel
      >
        {current?.render()}
      </PanelTabs>
    </div>
  );
}

export interface IColumn<T> {
  label: string;
  render: (row: T) => React.ReactNode;
  className?: string;
}

/** A table with a caption (for screen readers) and column headers. */
export function DataTable<T>(props: {
  caption: string;
  columns: IColumn<T>[];
  rows: T[];
  rowKey: (row: T) => string;
  empty?: string;
  actions?: (row: T) => React.ReactNode;
}): JSX.Element {
  return (
    <div className="jp-BackendAI-c-tableWrap">
      <table className="jp-BackendAI-c-table">
        <caption className="jp-BackendAI-c-sr-only">{props.caption}</caption>
        <thead>
          <tr>
            {props.columns.map(c => (
              <th scope="col" key={c.label} className={c.className}>
                {c.label}
              </th>
            ))}
            {props.actions && (
              <th scope="col">
                <span className="jp-BackendAI-c-sr-only">Actions</span>
              </th>
            )}
          </tr>
        </thead>
        <tbody>
          {props.rows.length === 0 && (
            <tr>
              <td colSpan={props.columns.length + (props.actions ? 1 : 0)} className="jp-BackendAI-c-empty">
                {props.empty || 'Nothing here yet.'}
              </td>
            </tr>
          )}
          {props.rows.map(row => (
            <tr key={props.rowKey(row)} data-key={props.rowKey(row)}>
              {props.columns.map(c => (
                <td key={c.label} className={c.className}>
                  {c.render(row)}
                </td>
              ))}
              {props.actions && <td className="jp-BackendAI-c-actions">{props.actions(row)}</td>}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** A header row for a section: its title, a refresh button and other buttons. */
export function SectionHeader(props: {
  title: string;
  onRefresh?: () => void;
  children?: React.ReactNode;
  level?: 2 | 3;
}): JSX.Element {
  const Heading = props.level === 3 ? 'h3' : 'h2';
  return (
    <div className="jp-BackendAI-c-sectionHeader">
      <Heading>{props.title}</Heading>
      <div className="jp-BackendAI-c-toolbar">
        {props.children}
        {props.onRefresh && (
          <Btn onClick={props.onRefresh} aria-label={`Refresh ${props.title}`} title="Refresh">
            ⟳ Refresh
          </Btn>
        )}
      </div>
    </div>
  );
}

/** A read-only text (a key) with a copy button. */
export function CopyText(props: { label: string; value: string; rows?: number }): JSX.Element {
  const id = useId();
  const [copied, setCopied] = useState(false);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(props.value);
      setCopied(true);
    } catch {
      const el = document.getElementById(id) as HTMLTextAreaElement | null;
      el?.select();
    }
  };
  return (
    <Field prefix="jp-BackendAI-c" label={props.label} id={id}>
      <textarea
        id={id}
        className="jp-mod-styled jp-BackendAI-c-key"
        readOnly
        rows={props.rows || 3}
        value={props.value}
      />
      <div className="jp-BackendAI-c-toolbar">
        <Btn onClick={copy} aria-label={`Copy ${props.label}`}>
          Copy
        </Btn>
        <span role="status" className="jp-BackendAI-c-hint">
          {copied ? 'Copied.' : ''}
        </span>
      </div>
    </Field>
  );
}

/** Save `text` as a file named `name` in the browser's downloads. */
export function downloadText(name: string, text: string, type = 'application/octet-stream'): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
