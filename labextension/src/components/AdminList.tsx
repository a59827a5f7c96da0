import React from 'react';

import { DataTable, IColumn } from './DataTable';
import { ErrorMessage } from './ErrorMessage';
import { Loading } from './Loading';
import { SectionHeader } from './SectionHeader';
import { SelectField } from './SelectField';
import { StatusMessage } from './StatusMessage';
import { IActions } from './useActions';
import { ILoaded } from './useLoad';
import { IShow } from './useShow';

/**
 * One administered list: a labelled section with its header (title, refresh, `toolbar`), the
 * load's or the last action's error, the last success, and the table; `children` (its dialogs)
 * follow the table.
 */
export function AdminList<T>(props: {
  label: string;
  title?: string;
  list: ILoaded<T[]>;
  /** What "Loading …" names. */
  what: string;
  caption: string;
  columns: IColumn<T>[];
  rowKey: (row: T) => string;
  rowActions?: (row: T) => React.ReactNode;
  actions?: IActions;
  /** A "Show" choice of which rows to list (active, all...), from useShow. */
  show?: IShow;
  toolbar?: React.ReactNode;
  note?: React.ReactNode;
  children?: React.ReactNode;
}): JSX.Element {
  const { list, actions } = props;
  return (
    <section aria-label={props.label}>
      <SectionHeader title={props.title || props.label} level={3} onRefresh={list.reload}>
        {props.show && <SelectField label="Show" {...props.show} />}
        {props.toolbar}
      </SectionHeader>
      {props.note}
      <ErrorMessage
        error={list.error || actions?.error}
        onDismiss={actions?.error ? () => actions.setError('') : undefined}
      />
      <StatusMessage text={actions?.done} />
      {list.loading && !list.data && <Loading what={props.what} />}
      {list.data && (
        <DataTable
          caption={props.caption}
          rows={list.data}
          rowKey={props.rowKey}
          columns={props.columns}
          actions={props.rowActions}
        />
      )}
      {props.children}
    </section>
  );
}
