import {
  amount,
  formatAmount,
  formatBytes,
  formatDuration,
  formatElapsed,
  formatGPU,
  formatSlots,
  formatTime,
  parseSize,
  plainNumber
} from '../src/format';

describe('formatAmount reads as core.slots.format_amount', () => {
  // Each expected text is what format_amount(name, parse_amount(name, value)) prints.
  it.each([
    ['mem', '0', '0 B'],
    ['mem', '1023', '1023 B'],
    ['mem', '1024', '1 KiB'],
    ['mem', '1536', '1.5 KiB'],
    ['mem', '268435456', '256 MiB'],
    ['mem', '1073741824', '1 GiB'],
    ['mem', '2109497', '2.01 MiB (2109497 B)'],
    ['mem', '3579139413', '3.33 GiB (3579139413 B)'],
    ['mem', '68719476736', '64 GiB'],
    ['mem', 'Infinity', 'unlimited'],
    ['cuda.mem', '1610612736', '1.5 GiB'],
    ['shmem', '67108864', '64 MiB'],
    ['cpu', '0.5', '0.5'],
    ['cpu', '2', '2'],
    ['cpu', '16.000', '16'],
    ['cpu', '0.10', '0.1'],
    ['cuda.shares', '2.5', '2.5'],
    ['cuda.device', '1', '1'],
    ['cpu', 'Infinity', 'unlimited'],
    ['mem', '1180591620717411303424', '1024 EiB']
  ])('%s %s → %s', (name, value, text) => {
    expect(formatAmount(name, value)).toBe(text);
  });

  it('reads a missing amount as 0 and "unlimited" as no limit', () => {
    expect(formatAmount('cpu', undefined)).toBe('0');
    expect(formatAmount('mem', '')).toBe('0 B');
    expect(formatAmount('mem', 'unlimited')).toBe('unlimited');
  });

  it('drops the noise of float arithmetic', () => {
    expect(formatAmount('cpu', 0.1 + 0.2)).toBe('0.3');
    expect(plainNumber(1 / 3)).toBe('0.333333333333');
    expect(plainNumber(1e-7)).toBe('0.0000001');
    expect(plainNumber(1e21)).toBe('1000000000000000000000');
  });
});

describe('formatBytes', () => {
  it('rounds down to two decimals without the exact count', () => {
    expect(formatBytes(2 * 1024 * 1024 + 12345)).toBe('2.01 MiB');
    expect(formatBytes(1024 * 1024 - 1)).toBe('1023.99 KiB');
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes('4294967296')).toBe('4 GiB');
  });

  it('says when there is no size, or no limit', () => {
    expect(formatBytes(null)).toBe('—');
    expect(formatBytes(undefined)).toBe('—');
    expect(formatBytes(Infinity)).toBe('unlimited');
    expect(formatBytes('Infinity')).toBe('unlimited');
    expect(formatBytes('n/a')).toBe('n/a');
  });
});

describe('slot summaries', () => {
  it('labels the known slots in the manager order', () => {
    expect(formatSlots({ cpu: '16', mem: '68719476736' })).toBe('CPU 16, RAM 64 GiB');
    expect(formatSlots({ 'cuda.shares': '2', 'tpu.device': '1' })).toBe('fGPU 2, tpu.device 1');
    expect(formatSlots({})).toBe('—');
    expect(formatSlots(null)).toBe('—');
  });

  it('writes GPUs as devices and shares', () => {
    expect(formatGPU({ 'cuda.device': '1', 'cuda.shares': '0.5' })).toBe('1 GPU, 0.5 fGPU');
    expect(formatGPU({ cpu: '1' })).toBe('0');
    expect(formatGPU(undefined)).toBe('0');
  });

  it('reads amounts as numbers', () => {
    expect(amount('Infinity')).toBe(Infinity);
    expect(amount(' unlimited ')).toBe(Infinity);
    expect(amount('0.5')).toBe(0.5);
    expect(amount('lots')).toBe(0);
    expect(amount(undefined)).toBe(0);
  });
});

describe('durations and times', () => {
  it('writes a configured duration in its largest whole unit', () => {
    expect(formatDuration(0)).toBe('never');
    expect(formatDuration(null, 'none')).toBe('none');
    expect(formatDuration(3600)).toBe('1 h');
    expect(formatDuration(172800)).toBe('2 d');
    expect(formatDuration(120)).toBe('2 min');
    expect(formatDuration(90)).toBe('90 s');
  });

  it('writes time gone by as a clock', () => {
    expect(formatElapsed(3723)).toBe('1h 02m 03s');
    expect(formatElapsed(65)).toBe('1m 05s');
    expect(formatElapsed(2 * 86400 + 3 * 3600 + 4 * 60)).toBe('2d 3h 04m');
    expect(formatElapsed(-1)).toBe('—');
  });

  it('keeps a text that is not a date', () => {
    expect(formatTime(null)).toBe('—');
    expect(formatTime('soon')).toBe('soon');
    expect(formatTime('2026-01-02T03:04:05Z')).not.toBe('—');
  });
});

describe('parseSize reads sizes as core.slots does', () => {
  it.each([
    ['10g', 10 * 1024 ** 3],
    ['512m', 512 * 1024 ** 2],
    ['1.5GiB', 1.5 * 1024 ** 3],
    ['100k', 102400],
    ['2 gb', 2 * 1024 ** 3],
    ['1e', 1024 ** 6],
    ['1073741824', 1073741824],
    ['10b', 10]
  ])('%s → %d', (text, bytes) => {
    expect(parseSize(text)).toBe(bytes);
  });

  it.each(['', 'lots', '-1g', '1x', '1.2.3m'])('refuses %p', text => {
    expect(parseSize(text)).toBeNull();
  });
});
