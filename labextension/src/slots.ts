/**
 * Slot amounts in forms and what may still be allocated: the pure rules behind the start
 * dialog, Summary and Administration's slot fields (tested with jest, no JupyterLab import).
 */
import type { ICheckPresets, Slots } from './api/types';
import { amount, parseSize } from './format';

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

/** The custom allocation of the start dialog: the given amounts, GPUs only where offered. */
export function customResources(
  fields: { cpu: string; mem: string; gpu: string; fgpu: string },
  offers: { gpu: boolean; fgpu: boolean }
): Slots {
  const resources: Slots = {};
  if (fields.cpu) {
    resources.cpu = fields.cpu;
  }
  if (fields.mem) {
    resources.mem = fields.mem;
  }
  if (offers.gpu && fields.gpu) {
    resources['cuda.device'] = fields.gpu;
  }
  if (offers.fgpu && fields.fgpu) {
    resources['cuda.shares'] = fields.fgpu;
  }
  return resources;
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

/** What bounds the amount still allocatable: the smallest of the keypair, project and resource group. */
export function allocatable(
  check: ICheckPresets,
  slot: string,
  scalingGroup: string
): { used: number; total: number; limitedBy: string } {
  const used = amount(check.keypair_using[slot]);
  const sgFree = scalingGroup
    ? amount(check.scaling_groups[scalingGroup]?.remaining?.[slot])
    : amount(check.scaling_group_remaining[slot]);
  const bounds: [number, string][] = [
    [amount(check.keypair_remaining[slot] ?? 'Infinity'), 'your keypair policy'],
    [amount(check.group_remaining[slot] ?? 'Infinity'), 'the project limit'],
    [sgFree, scalingGroup ? `free capacity in ${scalingGroup}` : 'free capacity']
  ];
  let [remaining, limitedBy] = bounds[0];
  for (const [value, why] of bounds.slice(1)) {
    if (value < remaining) {
      remaining = value;
      limitedBy = why;
    }
  }
  return { used, total: used + remaining, limitedBy };
}
