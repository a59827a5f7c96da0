/** What the Administration tabs share beyond the UI kit: who administers, and saving a named object. */
import { api, segment } from '../api';

export interface IAdminContext {
  /** True for a superadmin; a domain admin gets the read-only views of global objects. */
  superadmin: boolean;
  domain: string;
  email: string;
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
