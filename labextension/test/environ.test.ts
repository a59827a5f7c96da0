import { parseEnviron } from '../src/sessions/environ';

describe('environment variables of the start dialog', () => {
  it('reads KEY=value lines, skipping blanks and comments', () => {
    expect(parseEnviron('A=1\n\n# note\nB = two=2\r\nC=')).toEqual({
      environ: { A: '1', B: ' two=2', C: '' },
      error: ''
    });
  });

  it('names the line that is not KEY=value, and a key given twice', () => {
    expect(parseEnviron('A=1\nnonsense').error).toBe('Line 2 is not KEY=value.');
    expect(parseEnviron('=1').error).toBe('Line 1 is not KEY=value.');
    expect(parseEnviron('A=1\nA=2').error).toBe('A is given twice.');
  });
});
