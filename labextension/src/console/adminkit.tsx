/**
 * What the Administration tabs share: who is administering, confirmations, slot inputs, and
 * the "shown once" result of creating a user or a keypair.
 */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import React, { useState } from 'react';

import {
  api,
  Btn,
  DataTable,
  ErrorMessage,
  errorText,
  FormDialog,
  IColumn,
  ILoaded,
  Loading,
  parseSize,
  SectionHeader,
  segment,
  SelectField,
  Slots,
  StatusMessage,
  TextField
} from './common';

export interface IAdminContext {
  /** True for a superadmin; a domain admin gets the read-only views of global objects. */
  superadmin: boolean;
  domain: string;
  email: string;
}

export interface IPolicy {
  name: string;
  total_resource_slots: Slots;
  max_concurrent_sessions: number;
  max_containers_per_session: number;
  idle_timeout: number;
  max_session_lifetime: number;
  max_pending_session_count: number | null;
  allowed_vfolder_hosts: string[];
  max_vfolder_count: number;
  max_vfolder_size: number;
  created_at: string | null;
}

export interface IKeypair {
  access_key: string;
  secret_key?: string;
  user_id: string;
  is_active: boolean;
  is_admin: boolean;
  resource_policy: string;
  rate_limit: number;
  num_queries: number;
  last_used: string | null;
  created_at: string | null;
}

/** Ask before something that cannot be undone; true when the user agreed. */
export async function confirm(title: string, body: string, label: string): Promise<boolean> {
  const answer = await showDialog({
    title,
    body,
    buttons: [Dialog.cancelButton(), Dialog.warnButton({ label })]
  });
  return answer.button.accept;
}

/** The editable slots, with what a blank field means. */
export const SLOT_FIELDS: { slot: string; label: string; placeholder: string }[] = [
  { slot: 'cpu', label: 'CPU (cores)', placeholder: 'e.g. 4' },
  { slot: 'mem', label: 'RAM', placeholder: 'e.g. 16g' },
  { slot: 'cuda.device', label: 'GPU (whole devices)', placeholder: 'e.g. 1' },
  { slot: 'cuda.shares', label: 'fGPU (shares)', placeholder: 'e.g. 0.5' }
];

/** Slot amounts as the form edits them: strings, "" for "not given". */
export type SlotForm = Record<string, string>;

/** The form's text for a stored amount: bytes as "4g"-style text for memory, "" for unlimited. */
export function slotText(slot: string, value: string | undefined): string {
  if (value === undefined || value === null || value === 'Infinity') {
    return '';
  }
  if (slot === 'mem' || slot === 'shmem') {
    const n = Number(value);
    for (const [unit, size] of [
      ['t', 1024 ** 4],
      ['g', 1024 ** 3],
      ['m', 1024 ** 2],
      ['k', 1024]
    ] as [string, number][]) {
      if (n >= size && n % size === 0) {
        return `${n / size}${unit}`;
      }
    }
  }
  return String(value);
}

export function slotForm(slots: Slots | undefined): SlotForm {
  const out: SlotForm = {};
  for (const f of SLOT_FIELDS) {
    out[f.slot] = slotText(f.slot, slots?.[f.slot]);
  }
  return out;
}

/**
 * The slots to send: given amounts as typed (the manager parses "16g"); blank ones are left
 * out, or sent as `blank` (e.g. "unlimited" when an edit clears a limit that was set).
 */
export function slotsPayload(form: SlotForm, blank?: (slot: string) => string | undefined): Slots {
  const out: Slots = {};
  for (const f of SLOT_FIELDS) {
    const text = (form[f.slot] || '').trim();
    if (text) {
      out[f.slot] = text;
    } else if (blank) {
      const value = blank(f.slot);
      if (value !== undefined) {
        out[f.slot] = value;
      }
    }
  }
  return out;
}

export function SlotInputs(props: {
  form: SlotForm;
  onChange: (form: SlotForm) => void;
  blankMeans: string;
  prefix?: string;
}): JSX.Element {
  return (
    <div className="jp-BackendAI-c-grid">
      {SLOT_FIELDS.map(f => (
        <TextField
          key={f.slot}
          label={`${props.prefix || ''}${f.label}`}
          name={f.slot}
          value={props.form[f.slot] || ''}
          placeholder={`${f.placeholder}; blank: ${props.blankMeans}`}
          onChange={value => props.onChange({ ...props.form, [f.slot]: value })}
        />
      ))}
    </div>
  );
}

/** A whole number from a form field, or an error naming the field. */
export function wholeNumber(label: string, text: string, fallback = 0): number {
  const t = text.trim();
  if (t === '') {
    return fallback;
  }
  const n = Number(t);
  if (!Number.isInteger(n) || n < 0) {
    throw new Error(`${label} must be a whole number of 0 or more.`);
  }
  return n;
}

/** Bytes from "10g"-style text, or an error naming the field. */
export function bytesField(label: string, text: string): number {
  if (text.trim() === '') {
    return 0;
  }
  const n = parseSize(text);
  if (n === null) {
    throw new Error(`${label}: write a size like 10g or 512m.`);
  }
  return n;
}

/** What a creation answered that is shown only once: a keypair's secret key. */
export function SecretResult(props: {
  title: string;
  keypair: IKeypair;
  note?: string;
  onClose: () => void;
}): JSX.Element {
  return (
    <FormDialog title={props.title} submitLabel="" closeOnly onSubmit={() => undefined} onClose={props.onClose}>
      {props.note && <p>{props.note}</p>}
      <dl className="jp-BackendAI-c-dl">
        <dt>Access key</dt>
        <dd>
          <code>{props.keypair.access_key}</code>
        </dd>
        <dt>Secret key</dt>
        <dd>
          <code>{props.keypair.secret_key}</code>
        </dd>
      </dl>
      <p className="jp-BackendAI-c-hint">The secret key is shown only now; copy it before closing.</p>
    </FormDialog>
  );
}

/** What a list's actions report: the last failure (dismissable) and the last success. */
export interface IActions {
  error: string;
  setError: (error: string) => void;
  done: string;
  setDone: (done: string) => void;
  /**
   * Run `call` (after `ask`ing, when given), then report `what` and reload the list, or report
   * why it failed.
   */
  run: (what: string, call: () => Promise<unknown>, ask?: [string, string, string]) => Promise<void>;
  /** A dialog saved: report it and reload the list. */
  saved: (what: string) => void;
}

export function useActions(reload: () => void): IActions {
  const [error, setError] = useState('');
  const [done, setDone] = useState('');
  const run = async (what: string, call: () => Promise<unknown>, ask?: [string, string, string]) => {
    if (ask && !(await confirm(...ask))) {
      return;
    }
    setError('');
    setDone('');
    try {
      await call();
      setDone(what);
      reload();
    } catch (reason) {
      setError(errorText(reason));
    }
  };
  const saved = (what: string) => {
    setDone(what);
    reload();
  };
  return { error, setError, done, setDone, run, saved };
}

export interface IShow {
  name: string;
  value: string;
  onChange: (value: string) => void;
  options: { value: string; label: string }[];
}

/** A list's "Show" choice: what is chosen (the first option at first) and AdminList's `show`. */
export function useShow(name: string, options: [string, string][]): [string, IShow] {
  const [value, setValue] = useState(options[0][0]);
  const choices = options.map(([v, label]) => ({ value: v, label }));
  return [value, { name, value, onChange: setValue, options: choices }];
}

/**
 * One administered list: a labelled section with its header (title, refresh, `toolbar`), the
 * load's or the last action's error, the last success, and the table; `children` (its dialogs)
 * follow the table.
 */
export function AdminList<T>(props: {
  label: string;
  title?: string;
  list: ILoaded<T[]>;
  /** What "Loading …" names. */
  what: string;
  caption: string;
  columns: IColumn<T>[];
  rowKey: (row: T) => string;
  rowActions?: (row: T) => React.ReactNode;
  actions?: IActions;
  /** A "Show" choice of which rows to list (active, all...), from useShow. */
  show?: IShow;
  toolbar?: React.ReactNode;
  note?: React.ReactNode;
  children?: React.ReactNode;
}): JSX.Element {
  const { list, actions } = props;
  return (
    <section aria-label={props.label}>
      <SectionHeader title={props.title || props.label} level={3} onRefresh={list.reload}>
        {props.show && <SelectField label="Show" {...props.show} />}
        {props.toolbar}
      </SectionHeader>
      {props.note}
      <ErrorMessage
        error={list.error || actions?.error}
        onDismiss={actions?.error ? () => actions.setError('') : undefined}
      />
      <StatusMessage text={actions?.done} />
      {list.loading && !list.data && <Loading what={props.what} />}
      {list.data && (
        <DataTable
          caption={props.caption}
          rows={list.data}
          rowKey={props.rowKey}
          columns={props.columns}
          actions={props.rowActions}
        />
      )}
      {props.children}
    </section>
  );
}

/** A row's Edit and Delete buttons, named "Edit <noun> <name>" and "Delete <noun> <name>". */
export function EditDelete(props: {
  noun: string;
  name: string;
  onEdit: () => void;
  onDelete: () => void;
}): JSX.Element {
  return (
    <>
      <Btn onClick={props.onEdit} aria-label={`Edit ${props.noun} ${props.name}`}>
        Edit
      </Btn>
      <Btn kind="warn" onClick={props.onDelete} aria-label={`Delete ${props.noun} ${props.name}`}>
        Delete
      </Btn>
    </>
  );
}

/**
 * Save a named object: PATCH `<path>/<before>` when editing, else POST `<path>` with the name;
 * resolves with the name it has.
 */
export async function saveNamed(
  path: string,
  before: string | undefined,
  name: string,
  body: Record<string, unknown>
): Promise<string> {
  if (before !== undefined) {
    await api(`${path}/${segment(before)}`, 'PATCH', body);
    return before;
  }
  await api(path, 'POST', { name: name.trim(), ...body });
  return name.trim();
}
