import { arc, formatValue, niceStep, withUnit } from '../src/charts';

describe('chart arithmetic', () => {
  it('picks round grid steps for four lines', () => {
    expect(niceStep(100, false)).toBe(25);
    expect(niceStep(9, false)).toBe(2.5);
    expect(niceStep(3, true)).toBe(1);
    expect(niceStep(0, true)).toBe(1);
    expect(niceStep(0, false)).toBe(0.25);
    expect(niceStep(7000, true)).toBe(2000);
  });

  it('writes values with three significant digits at most', () => {
    expect(formatValue(0.012345)).toBe('0.0123');
    expect(formatValue(1.5)).toBe('1.5');
    expect(formatValue(240.4)).toBe('240');
    expect(formatValue(2.6, true)).toBe('3');
  });

  it('puts the unit after a number, singular for one', () => {
    expect(withUnit('1', ['core', 'cores'])).toBe('1 core');
    expect(withUnit('2', ['core', 'cores'])).toBe('2 cores');
    expect(withUnit('4 GiB', '')).toBe('4 GiB');
  });

  it('draws a ring arc from twelve o’clock', () => {
    expect(arc(60, 60, 48, 0)).toBe('M 60 12 A 48 48 0 0 1 60 12');
    expect(arc(60, 60, 48, 0.75)).toMatch(/^M 60 12 A 48 48 0 1 1 /);
  });
});
