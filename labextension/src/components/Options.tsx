import * as React from 'react';

/** A select's options whose values are their labels. */
export function Options(props: { values: string[] }): JSX.Element {
  return (
    <>
      {props.values.map(v => (
        <option key={v} value={v}>
          {v}
        </option>
      ))}
    </>
  );
}
