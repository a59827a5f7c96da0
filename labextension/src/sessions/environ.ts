/** The start dialog's environment variables (pure, tested with jest). */

/**
 * KEY=value lines (blank lines and '#' comments skipped) as config.environ, or the reason they
 * are not. Only the shape is checked here: which names a user may set is the manager's rule
 * (core.environ), and its refusal names the variable.
 */
export function parseEnviron(text: string): { environ: { [name: string]: string }; error: string } {
  const environ: { [name: string]: string } = {};
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (!line.trim() || line.trim().startsWith('#')) {
      continue;
    }
    const at = line.indexOf('=');
    const key = at < 0 ? '' : line.slice(0, at).trim();
    if (!key) {
      return { environ, error: `Line ${i + 1} is not KEY=value.` };
    }
    if (key in environ) {
      return { environ, error: `${key} is given twice.` };
    }
    environ[key] = line.slice(at + 1);
  }
  return { environ, error: '' };
}
