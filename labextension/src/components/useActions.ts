import { useState } from 'react';

import { errorText } from '../api/request';
import { confirm } from './showModal';

/** What a list's actions report: the last failure (dismissable) and the last success. */
export interface IActions {
  error: string;
  setError: (error: string) => void;
  done: string;
  setDone: (done: string) => void;
  /**
   * Run `call` (after `ask`ing, when given), then report `what` and reload the list, or report
   * why it failed.
   */
  run: (what: string, call: () => Promise<unknown>, ask?: [string, string, string]) => Promise<void>;
  /** A dialog saved: report it and reload the list. */
  saved: (what: string) => void;
}

export function useActions(reload: () => void): IActions {
  const [error, setError] = useState('');
  const [done, setDone] = useState('');
  const run = async (what: string, call: () => Promise<unknown>, ask?: [string, string, string]) => {
    if (ask && !(await confirm(...ask))) {
      return;
    }
    setError('');
    setDone('');
    try {
      await call();
      setDone(what);
      reload();
    } catch (reason) {
      setError(errorText(reason));
    }
  };
  const saved = (what: string) => {
    setDone(what);
    reload();
  };
  return { error, setError, done, setDone, run, saved };
}
