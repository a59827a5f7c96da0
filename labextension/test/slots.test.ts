import type { ICheckPresets } from '../src/api/types';
import { allocatable, bytesField, customResources, slotForm, slotsPayload, slotText, wholeNumber } from '../src/slots';

describe('slot payloads', () => {
  it('sends the typed amounts and leaves blank ones out', () => {
    expect(slotsPayload({ cpu: ' 2 ', mem: '16g', 'cuda.device': '', 'cuda.shares': '' })).toEqual({
      cpu: '2',
      mem: '16g'
    });
  });

  it('sends what a blank means when asked (clearing a limit that was set)', () => {
    const before: Record<string, string> = { cpu: '4', mem: '1073741824' };
    const blank = (slot: string) => (slot in before ? 'Infinity' : undefined);
    expect(slotsPayload({ cpu: '', mem: '2g', 'cuda.device': '', 'cuda.shares': '' }, blank)).toEqual({
      cpu: 'Infinity',
      mem: '2g'
    });
  });

  it('edits stored amounts as people type them', () => {
    expect(slotText('mem', '17179869184')).toBe('16g');
    expect(slotText('mem', '1572864')).toBe('1536k');
    expect(slotText('shmem', '67108864')).toBe('64m');
    expect(slotText('mem', '1000')).toBe('1000');
    expect(slotText('cpu', '0.5')).toBe('0.5');
    expect(slotText('cpu', 'Infinity')).toBe('');
    expect(slotText('cpu', undefined)).toBe('');
    expect(slotForm({ cpu: '2', mem: '4294967296' })).toEqual({
      cpu: '2',
      mem: '4g',
      'cuda.device': '',
      'cuda.shares': ''
    });
  });

  it('asks GPUs only where the resource group offers them', () => {
    const fields = { cpu: '1', mem: '1g', gpu: '1', fgpu: '0.5' };
    expect(customResources(fields, { gpu: false, fgpu: true })).toEqual({ cpu: '1', mem: '1g', 'cuda.shares': '0.5' });
    expect(customResources({ cpu: '', mem: '', gpu: '', fgpu: '' }, { gpu: true, fgpu: true })).toEqual({});
  });

  it('checks whole numbers and sizes, naming the field', () => {
    expect(wholeNumber('Folders', ' 3 ')).toBe(3);
    expect(wholeNumber('Folders', '', 7)).toBe(7);
    expect(() => wholeNumber('Folders', '1.5')).toThrow('Folders must be a whole number of 0 or more.');
    expect(() => wholeNumber('Folders', '-1')).toThrow('Folders');
    expect(bytesField('Folder capacity', '2g')).toBe(2 * 1024 ** 3);
    expect(bytesField('Folder capacity', '')).toBe(0);
    expect(() => bytesField('Folder capacity', 'big')).toThrow('Folder capacity: write a size like 10g or 512m.');
  });
});

function check(part: Partial<ICheckPresets>): ICheckPresets {
  return {
    keypair_limits: {},
    keypair_using: {},
    keypair_remaining: {},
    group_limits: {},
    group_using: {},
    group_remaining: {},
    scaling_group_remaining: {},
    scaling_groups: {},
    presets: [],
    group: null,
    scaling_group: null,
    ...part
  };
}

describe('allocatable', () => {
  it('is bounded by the smallest of keypair, project and resource group', () => {
    const answer = check({
      keypair_using: { cpu: '1' },
      keypair_remaining: { cpu: '3' },
      group_remaining: { cpu: '2' },
      scaling_group_remaining: { cpu: '8' }
    });
    expect(allocatable(answer, 'cpu', '')).toEqual({ used: 1, total: 3, limitedBy: 'the project limit' });
  });

  it('reads a missing limit as none, and a named resource group as its own free capacity', () => {
    const answer = check({
      keypair_using: { mem: '1073741824' },
      keypair_remaining: { mem: 'Infinity' },
      scaling_group_remaining: { mem: '0' },
      scaling_groups: { gpu: { using: {}, remaining: { mem: '1073741824' } } }
    });
    expect(allocatable(answer, 'mem', 'gpu')).toEqual({
      used: 1073741824,
      total: 2147483648,
      limitedBy: 'free capacity in gpu'
    });
    expect(allocatable(answer, 'mem', '').limitedBy).toBe('free capacity');
  });

  it('stays unlimited when nothing bounds it', () => {
    const answer = check({ scaling_group_remaining: { cpu: 'Infinity' } });
    expect(allocatable(answer, 'cpu', '')).toEqual({ used: 0, total: Infinity, limitedBy: 'your keypair policy' });
  });
});
