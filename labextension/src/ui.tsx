/**
 * Small pieces shared by the Sessions and Data & Storage panels: formatting, labelled
 * fields, tabs with arrow-key navigation, and form dialogs whose body is a React component.
 */
import { Dialog, ReactWidget, showDialog } from '@jupyterlab/apputils';
import { LabIcon } from '@jupyterlab/ui-components';
import * as React from 'react';

import { reasonOf, requestAPI } from './handler';
import { IWhoAmI } from './sessions/types';

let lastId = 0;
/** A document-unique id for label/control pairs. */
export function uid(prefix: string): string {
  lastId += 1;
  return `jp-BackendAI-${prefix}-${lastId}`;
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

export function formatBytes(value: number | string | null | undefined): string {
  if (value === null || value === undefined || value === '') {
    return '–';
  }
  let n = Number(value);
  if (!isFinite(n)) {
    return String(value);
  }
  let unit = 0;
  while (Math.abs(n) >= 1024 && unit < UNITS.length - 1) {
    n /= 1024;
    unit += 1;
  }
  const digits = unit === 0 || n >= 100 ? 0 : n >= 10 ? 1 : 2;
  return `${n.toFixed(digits)} ${UNITS[unit]}`;
}

/** "1h 02m 03s" from seconds. */
export function formatDuration(seconds: number): string {
  if (!isFinite(seconds) || seconds < 0) {
    return '–';
  }
  const s = Math.floor(seconds % 60);
  const m = Math.floor((seconds / 60) % 60);
  const h = Math.floor((seconds / 3600) % 24);
  const d = Math.floor(seconds / 86400);
  const pad = (x: number) => String(x).padStart(2, '0');
  if (d > 0) {
    return `${d}d ${h}h ${pad(m)}m`;
  }
  if (h > 0) {
    return `${h}h ${pad(m)}m ${pad(s)}s`;
  }
  return `${m}m ${pad(s)}s`;
}

export function formatTime(iso: string | null | undefined): string {
  if (!iso) {
    return '–';
  }
  const date = new Date(iso);
  return isNaN(date.getTime()) ? iso : date.toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'short' });
}

/** A slot amount as Backend.AI sends it (a decimal string) in a readable form. */
export function formatSlot(slot: string, value: string | number | undefined): string {
  if (value === undefined || value === null || value === '') {
    return '0';
  }
  if (slot === 'mem') {
    return formatBytes(value);
  }
  const n = Number(value);
  return isFinite(n) ? String(Math.round(n * 100) / 100) : String(value);
}

/** GPU of a slot set: whole devices and fractional shares. */
export function formatGPU(slots: { [key: string]: string } | undefined): string {
  if (!slots) {
    return '0';
  }
  const parts: string[] = [];
  if (slots['cuda.device'] && Number(slots['cuda.device']) > 0) {
    parts.push(`${formatSlot('cuda.device', slots['cuda.device'])} GPU`);
  }
  if (slots['cuda.shares'] && Number(slots['cuda.shares']) > 0) {
    parts.push(`${formatSlot('cuda.shares', slots['cuda.shares'])} fGPU`);
  }
  return parts.length ? parts.join(', ') : '0';
}

/** An inline message: errors are announced to screen readers. */
export function Message(props: {
  kind: 'error' | 'warning' | 'info';
  children: React.ReactNode;
}): JSX.Element {
  return (
    <div
      className={`jp-BackendAI-message jp-BackendAI-message-${props.kind}`}
      role={props.kind === 'error' ? 'alert' : 'status'}
    >
      {props.children}
    </div>
  );
}

/**
 * A label and its control, tied by id; the hint's id is `<id>-hint` (for aria-describedby).
 * `prefix` picks the stylesheet's classes: the side panels' (default) or the console's.
 */
export function Field(props: {
  label: string;
  id: string;
  hint?: string;
  children: React.ReactNode;
  prefix?: 'jp-BackendAI' | 'jp-BackendAI-c';
}): JSX.Element {
  const prefix = props.prefix || 'jp-BackendAI';
  return (
    <div className={`${prefix}-field`}>
      <label htmlFor={props.id}>{props.label}</label>
      {props.children}
      {props.hint ? (
        <div className={`${prefix}-hint`} id={`${props.id}-hint`}>
          {props.hint}
        </div>
      ) : null}
    </div>
  );
}

/** A select's options whose values are their labels. */
export function Options(props: { values: string[] }): JSX.Element {
  return (
    <>
      {props.values.map(v => (
        <option key={v} value={v}>
          {v}
        </option>
      ))}
    </>
  );
}

export interface ITab {
  id: string;
  label: string;
}

/**
 * WAI-ARIA tabs and their panel (the children): a click or Enter selects; arrow keys, Home and
 * End move between tabs. `prefix` picks the stylesheet's classes (side panels' or console's);
 * `focusablePanel` makes the panel a tab stop (for panels that may hold nothing focusable).
 */
export function Tabs(props: {
  tabs: ITab[];
  current: string;
  label: string;
  idPrefix: string;
  onChange: (id: string) => void;
  prefix?: 'jp-BackendAI' | 'jp-BackendAI-c';
  focusablePanel?: boolean;
  children?: React.ReactNode;
}): JSX.Element {
  const prefix = props.prefix || 'jp-BackendAI';
  const refs = React.useRef<(HTMLButtonElement | null)[]>([]);
  const index = Math.max(
    0,
    props.tabs.findIndex(t => t.id === props.current)
  );
  const move = (to: number) => {
    const n = props.tabs.length;
    const next = ((to % n) + n) % n;
    props.onChange(props.tabs[next].id);
    refs.current[next]?.focus();
  };
  const onKeyDown = (event: React.KeyboardEvent) => {
    switch (event.key) {
      case 'ArrowRight':
      case 'ArrowDown':
        move(index + 1);
        break;
      case 'ArrowLeft':
      case 'ArrowUp':
        move(index - 1);
        break;
      case 'Home':
        move(0);
        break;
      case 'End':
        move(props.tabs.length - 1);
        break;
      default:
        return;
    }
    event.preventDefault();
  };
  return (
    <>
      <div className={`${prefix}-tablist`} role="tablist" aria-label={props.label} onKeyDown={onKeyDown}>
        {props.tabs.map((tab, i) => (
          <button
            key={tab.id}
            ref={el => (refs.current[i] = el)}
            id={`${props.idPrefix}-tab-${tab.id}`}
            data-tab={tab.id}
            role="tab"
            type="button"
            aria-selected={tab.id === props.current}
            aria-controls={`${props.idPrefix}-tabpanel`}
            tabIndex={tab.id === props.current ? 0 : -1}
            className={`${prefix}-tab` + (tab.id === props.current ? ' jp-mod-current' : '')}
            onClick={() => props.onChange(tab.id)}
          >
            {tab.label}
          </button>
        ))}
      </div>
      <div
        id={`${props.idPrefix}-tabpanel`}
        role="tabpanel"
        aria-labelledby={`${props.idPrefix}-tab-${props.current}`}
        className={`${prefix}-tabpanel`}
        tabIndex={props.focusablePanel ? 0 : undefined}
      >
        {props.children}
      </div>
    </>
  );
}

/** A side panel's head (its title and buttons), and why who is logged in is unknown. */
export function PanelHead(props: { title: string; whoError: string; children: React.ReactNode }): JSX.Element {
  return (
    <>
      <div className="jp-BackendAI-panelHead">
        <h2 className="jp-BackendAI-title">{props.title}</h2>
        <div className="jp-BackendAI-actions">{props.children}</div>
      </div>
      {props.whoError ? <Message kind="error">{props.whoError}</Message> : null}
    </>
  );
}

/** A text button with the theme's look. */
export function Button(props: {
  label: string;
  onClick: () => void;
  title?: string;
  accept?: boolean;
  warn?: boolean;
  disabled?: boolean;
  className?: string;
}): JSX.Element {
  let cls = 'jp-BackendAI-button';
  if (props.accept) {
    cls += ' jp-mod-accept';
  }
  if (props.warn) {
    cls += ' jp-mod-warn';
  }
  if (props.className) {
    cls += ' ' + props.className;
  }
  return (
    <button
      type="button"
      className={cls}
      onClick={props.onClick}
      title={props.title || props.label}
      aria-label={props.title || props.label}
      disabled={props.disabled}
    >
      {props.label}
    </button>
  );
}

/** A small button showing one of JupyterLab's icons; its name is in aria-label and title. */
export function IconButton(props: {
  icon: LabIcon;
  title: string;
  onClick: () => void;
  warn?: boolean;
}): JSX.Element {
  return (
    <button
      type="button"
      className={'jp-BackendAI-iconButton' + (props.warn ? ' jp-mod-warn' : '')}
      onClick={props.onClick}
      title={props.title}
      aria-label={props.title}
    >
      <props.icon.react tag="span" elementSize="small" />
    </button>
  );
}

/**
 * The body of a form dialog: a React component that reports its value and whether it is
 * complete through `update`; `getValue()` is what the dialog resolves with.
 */
export class FormBody<T> extends ReactWidget {
  constructor(
    render: (update: (value: T | null) => void) => JSX.Element,
    className = ''
  ) {
    super();
    this._render = render;
    this.addClass('jp-BackendAI-form');
    if (className) {
      this.addClass(className);
    }
  }

  getValue(): T | null {
    return this._value;
  }

  protected render(): JSX.Element {
    return this._render(value => {
      this._value = value;
    });
  }

  private _render: (update: (value: T | null) => void) => JSX.Element;
  private _value: T | null = null;
}

/**
 * Show a form dialog; resolves with the form's value when accepted (null when cancelled or
 * when the form was incomplete).
 */
export async function showForm<T>(
  title: string,
  render: (update: (value: T | null) => void) => JSX.Element,
  okLabel: string,
  options: { warn?: boolean; className?: string } = {}
): Promise<T | null> {
  const body = new FormBody<T>(render, options.className);
  const result = await showDialog({
    title,
    body,
    buttons: [
      Dialog.cancelButton(),
      options.warn ? Dialog.warnButton({ label: okLabel }) : Dialog.okButton({ label: okLabel })
    ],
    focusNodeSelector: 'input, select'
  });
  if (!result.button.accept) {
    return null;
  }
  return result.value;
}

/** Confirm a destructive action. */
export async function confirm(title: string, text: string, okLabel: string): Promise<boolean> {
  const result = await showDialog({
    title,
    body: text,
    buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: okLabel })]
  });
  return result.button.accept;
}

/** A side panel that shows who is logged in (auth/whoami, asked once when it is made). */
export abstract class WhoPanel extends ReactWidget {
  constructor(id: string, className: string, caption: string) {
    super();
    this.id = id;
    this.addClass(className);
    this.title.caption = caption;
    void this._loadWho();
  }

  protected who: IWhoAmI | null = null;
  protected whoError = '';

  private async _loadWho(): Promise<void> {
    try {
      this.who = await requestAPI<IWhoAmI>('auth/whoami');
    } catch (e) {
      this.whoError = reasonOf(e);
    }
    this.update();
  }
}
