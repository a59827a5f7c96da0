/** The manager's API as the extension uses it: calls, errors, answer types, who is logged in. */
import { errorText, requestAPI } from './request';
import { IWhoAmI } from './types';
import { WhoAmIModel } from './whoami';

export * from './request';
export * from './types';
export * from './url';
export { WhoAmIModel } from './whoami';

/** The extension's who-is-logged-in model, asking the manager's `auth/whoami`. */
export function createWhoAmI(interval?: number): WhoAmIModel {
  return new WhoAmIModel({ fetch: () => requestAPI<IWhoAmI>('auth/whoami'), errorText, interval });
}
