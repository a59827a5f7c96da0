import { DependencyList, useCallback, useEffect, useState } from 'react';

import { errorText } from '../api/request';

export interface ILoaded<T> {
  data: T | undefined;
  error: string;
  loading: boolean;
  reload: () => void;
}

/** Run `load` now and whenever `deps` change; `reload()` runs it again. */
export function useLoad<T>(load: () => Promise<T>, deps: DependencyList): ILoaded<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState('');
  const [loading, setLoading] = useState(true);
  const [round, setRound] = useState(0);
  useEffect(() => {
    let live = true;
    setLoading(true);
    load().then(
      value => {
        if (live) {
          setData(value);
          setError('');
          setLoading(false);
        }
      },
      reason => {
        if (live) {
          setError(errorText(reason));
          setLoading(false);
        }
      }
    );
    return () => {
      live = false;
    };
    // `load` is a new closure on every render; `deps` say when its answer changes.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, round]);
  const reload = useCallback(() => setRound(r => r + 1), []);
  return { data, error, loading, reload };
}
