/** Pieces of the manager's URLs (pure). */

/** A path segment for the manager's URLs (image references keep their slashes). */
export function segment(value: string, keepSlashes = false): string {
  return keepSlashes ? value.split('/').map(encodeURIComponent).join('/') : encodeURIComponent(value);
}

/** A query string from the given values of `params` (undefined, null and "" are left out). */
export function query(params: Record<string, string | number | boolean | undefined | null>): string {
  const parts = Object.entries(params)
    .filter(([, v]) => v !== undefined && v !== null && v !== '')
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`);
  return parts.length ? `?${parts.join('&')}` : '';
}
