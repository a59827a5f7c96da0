import * as React from 'react';

export interface IColumn<T> {
  label: string;
  render: (row: T) => React.ReactNode;
  className?: string;
}

/** A table with a caption (for screen readers), column headers and rows keyed by `data-key`. */
export function DataTable<T>(props: {
  caption: string;
  columns: IColumn<T>[];
  rows: T[];
  rowKey: (row: T) => string;
  empty?: string;
  actions?: (row: T) => React.ReactNode;
}): JSX.Element {
  return (
    <div className="jp-BackendAI-tableWrap">
      <table className="jp-BackendAI-table jp-BackendAI-dataTable">
        <caption className="jp-BackendAI-sr">{props.caption}</caption>
        <thead>
          <tr>
            {props.columns.map(c => (
              <th scope="col" key={c.label} className={c.className}>
                {c.label}
              </th>
            ))}
            {props.actions && (
              <th scope="col">
                <span className="jp-BackendAI-sr">Actions</span>
              </th>
            )}
          </tr>
        </thead>
        <tbody>
          {props.rows.length === 0 && (
            <tr>
              <td colSpan={props.columns.length + (props.actions ? 1 : 0)} className="jp-BackendAI-empty">
                {props.empty || 'Nothing here yet.'}
              </td>
            </tr>
          )}
          {props.rows.map(row => (
            <tr key={props.rowKey(row)} data-key={props.rowKey(row)}>
              {props.columns.map(c => (
                <td key={c.label} className={c.className}>
                  {c.render(row)}
                </td>
              ))}
              {props.actions && <td className="jp-BackendAI-actions">{props.actions(row)}</td>}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
