import React from 'react';

import { Button } from './Button';

/** A row's Edit and Delete buttons, named "Edit <noun> <name>" and "Delete <noun> <name>". */
export function EditDelete(props: {
  noun: string;
  name: string;
  onEdit: () => void;
  onDelete: () => void;
}): JSX.Element {
  return (
    <>
      <Button onClick={props.onEdit} aria-label={`Edit ${props.noun} ${props.name}`}>
        Edit
      </Button>
      <Button kind="warn" onClick={props.onDelete} aria-label={`Delete ${props.noun} ${props.name}`}>
        Delete
      </Button>
    </>
  );
}
