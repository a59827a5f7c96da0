import { useState } from 'react';

export interface IShow {
  name: string;
  value: string;
  onChange: (value: string) => void;
  options: { value: string; label: string }[];
}

/** A list's "Show" choice: what is chosen (the first option at first) and AdminList's `show`. */
export function useShow(name: string, options: [string, string][]): [string, IShow] {
  const [value, setValue] = useState(options[0][0]);
  const choices = options.map(([v, label]) => ({ value: v, label }));
  return [value, { name, value, onChange: setValue, options: choices }];
}
