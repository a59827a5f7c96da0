/**
 * What the Administration tabs share: who is administering, confirmations, slot inputs, and
 * the "shown once" result of creating a user or a keypair.
 */
import React, { useState } from 'react';
import { api, errorText, IKeypair, segment } from '../api';
import {
  Button,
  confirm,
  DataTable,
  ErrorMessage,
  FormDialog,
  IColumn,
  ILoaded,
  Loading,
  SectionHeader,
  SelectField,
  StatusMessage,
  TextField
} from '../components';
import { SLOT_FIELDS, SlotForm } from '../slots';

export interface IAdminContext {
  /** True for a superadmin; a domain admin gets the read-only views of global objects. */
  superadmin: boolean;
  domain: string;
  email: string;
}

export function SlotInputs(props: {
  form: SlotForm;
  onChange: (form: SlotForm) => void;
  blankMeans: string;
  prefix?: string;
}): JSX.Element {
  return (
    <div className="jp-BackendAI-grid">
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
      <dl className="jp-BackendAI-dl">
        <dt>Access key</dt>
        <dd>
          <code>{props.keypair.access_key}</code>
        </dd>
        <dt>Secret key</dt>
        <dd>
          <code>{props.keypair.secret_key}</code>
        </dd>
      </dl>
      <p className="jp-BackendAI-hint">The secret key is shown only now; copy it before closing.</p>
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
      <Button onClick={props.onEdit} aria-label={`Edit ${props.noun} ${props.name}`}>
        Edit
      </Button>
      <Button kind="warn" onClick={props.onDelete} aria-label={`Delete ${props.noun} ${props.name}`}>
        Delete
      </Button>
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
