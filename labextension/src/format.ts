/**
 * Amounts, sizes, durations and times for people, by the rules of
 * `jupyter_backendai/core/slots.py` (`format_amount`): binary units, at most two decimals
 * rounded down and without trailing zeros, "unlimited" for no limit, and the exact byte count
 * beside a size that rounding changed, so that two different sizes never read the same.
 *
 * Pure: no JupyterLab import, so that jest runs it as it is.
 */

/** Slots measured in bytes, as `core.slots.BYTE_SLOTS` (and any `*.mem`). */
export const BYTE_SLOTS: ReadonlySet<string> = new Set(['mem', 'shmem', 'cuda.mem', 'disk']);

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];

/** What a missing value reads as. */
export const NONE = '—';

/** Labels of the well-known slots in one-line summaries ("CPU 2, RAM 4 GiB"). */
export const SLOT_LABELS: Record<string, string> = {
  cpu: 'CPU',
  mem: 'RAM',
  'cuda.device': 'GPU',
  'cuda.shares': 'fGPU',
  shmem: 'shared memory'
};

export function isByteSlot(name: string): boolean {
  return BYTE_SLOTS.has(name) || name.endsWith('.mem');
}

/** A slot amount as a number: Infinity for "Infinity"/"unlimited", 0 when absent or not a number. */
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

const DECIMAL = /^\s*([0-9]*)(?:\.([0-9]*))?\s*$/;

/**
 * A number without exponent or trailing zeros (Python's `format(d.normalize(), 'f')`).
 * A decimal string is kept digit for digit; a float loses the noise of binary arithmetic
 * (0.1 + 0.2 reads "0.3").
 */
export function plainNumber(value: number | string): string {
  if (typeof value === 'string') {
    const match = DECIMAL.exec(value);
    if (match && (match[1] || match[2])) {
      const whole = (match[1] || '0').replace(/^0+(?=\d)/, '');
      const fraction = (match[2] || '').replace(/0+$/, '');
      return fraction ? `${whole}.${fraction}` : whole;
    }
    value = Number(value);
  }
  if (!Number.isFinite(value)) {
    return value > 0 ? 'unlimited' : String(value);
  }
  const rounded = Number(value.toPrecision(12));
  const text = String(rounded);
  if (!/e/i.test(text)) {
    return text;
  }
  return Math.abs(rounded) >= 1
    ? rounded.toLocaleString('en-US', { useGrouping: false, maximumFractionDigits: 0 })
    : rounded.toFixed(20).replace(/\.?0+$/, '');
}

/** A byte count in binary units: the text (two decimals, rounded down) and whether it is exact. */
function sizeParts(bytes: number): { text: string; exact: boolean } {
  const sign = bytes < 0 ? '-' : '';
  const n = Math.floor(Math.abs(bytes));
  let unit = 0;
  while (unit < UNITS.length - 1 && n >= 1024 ** (unit + 1)) {
    unit += 1;
  }
  const base = 1024 ** unit;
  const whole = Math.floor(n / base);
  const rest = n - whole * base;
  const hundredths = Math.floor((rest * 100) / base);
  const number = plainNumber(`${whole}.${String(hundredths).padStart(2, '0')}`);
  return { text: `${sign}${number} ${UNITS[unit]}`, exact: (rest * 100) % base === 0 };
}

/** A size for people ("2.01 MiB", "4 GiB"); "—" when there is none. */
export function formatBytes(value: number | string | null | undefined): string {
  if (value === null || value === undefined || value === '') {
    return NONE;
  }
  const n = amount(value);
  if (!Number.isFinite(n)) {
    return 'unlimited';
  }
  if (typeof value === 'string' && !Number.isFinite(Number(value))) {
    return value;
  }
  return sizeParts(n).text;
}

/**
 * One slot's amount as `core.slots.format_amount` writes it: "0.5", "4 GiB", "unlimited", and
 * "3.33 GiB (3579139413 B)" when the rounded size is not the amount. A missing amount is 0.
 */
export function formatAmount(name: string, value: string | number | undefined | null): string {
  const n = amount(value);
  if (!Number.isFinite(n)) {
    return 'unlimited';
  }
  if (isByteSlot(name)) {
    const { text, exact } = sizeParts(n);
    return exact ? text : `${text} (${plainNumber(Math.floor(n))} B)`;
  }
  return typeof value === 'string' && value.trim() !== '' ? plainNumber(value) : plainNumber(n);
}

/** Slots in one line: "CPU 2, RAM 4 GiB" ("—" for none). */
export function formatSlots(slots: Record<string, string> | undefined | null): string {
  const entries = Object.entries(slots || {});
  if (!entries.length) {
    return NONE;
  }
  return entries.map(([k, v]) => `${SLOT_LABELS[k] || k} ${formatAmount(k, v)}`).join(', ');
}

/** GPU of a slot set: whole devices and fractional shares ("1 GPU, 0.5 fGPU", or "0"). */
export function formatGPU(slots: Record<string, string> | undefined | null): string {
  const parts: string[] = [];
  if (slots && amount(slots['cuda.device']) > 0) {
    parts.push(`${formatAmount('cuda.device', slots['cuda.device'])} GPU`);
  }
  if (slots && amount(slots['cuda.shares']) > 0) {
    parts.push(`${formatAmount('cuda.shares', slots['cuda.shares'])} fGPU`);
  }
  return parts.length ? parts.join(', ') : '0';
}

/** A configured duration: 0 or none reads `zero` ("never"), 3600 "1 h", 90 "90 s". */
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

/** Time gone by, as a clock: "1h 02m 03s", "2d 3h 04m", "4m 05s". */
export function formatElapsed(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) {
    return NONE;
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

/** A timestamp in the browser's locale ("—" for none; the text itself when it is not a date). */
export function formatTime(iso: string | null | undefined): string {
  if (!iso) {
    return NONE;
  }
  const date = new Date(iso);
  return Number.isNaN(date.getTime())
    ? iso
    : date.toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'short' });
}

// The same sizes as core.slots' _SIZE: "g" and "gb" are both GiB, as in Backend.AI and Docker.
const SIZE = /^\s*([0-9]*\.?[0-9]+)\s*(?:([kmgtpe])(?:ib|b|i)?|b)?\s*$/i;

/** "10g" → 10737418240, rounded down to whole bytes; null when it is not a size. */
export function parseSize(text: string): number | null {
  const match = SIZE.exec(text);
  if (!match) {
    return null;
  }
  const power = match[2] ? 'kmgtpe'.indexOf(match[2].toLowerCase()) + 1 : 0;
  return Math.floor(Number(match[1]) * 1024 ** power);
}
