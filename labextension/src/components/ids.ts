/** Document-unique ids for label/control pairs. */
import { useRef } from 'react';

let lastId = 0;

/** A new id, `jp-BackendAI-<prefix>-<n>`. */
export function uid(prefix: string): string {
  lastId += 1;
  return `jp-BackendAI-${prefix}-${lastId}`;
}

/** An id kept for the component's life. */
export function useId(prefix = 'field'): string {
  const ref = useRef<string>();
  if (!ref.current) {
    ref.current = uid(prefix);
  }
  return ref.current;
}
