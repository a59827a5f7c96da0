import * as React from 'react';

import { useId } from './ids';
import { Tabs } from './Tabs';

/** Tabs whose panels are render functions; the selected one is kept here unless given. */
export function TabPages(props: {
  label: string;
  tabs: { id: string; label: string; render: () => React.ReactNode }[];
  selected?: string;
  onSelect?: (id: string) => void;
}): JSX.Element {
  const base = useId('tabs');
  const [own, setOwn] = React.useState(props.tabs[0]?.id);
  const current = props.tabs.find(t => t.id === (props.selected ?? own)) || props.tabs[0];
  return (
    <div className="jp-BackendAI-tabs">
      <Tabs
        idPrefix={base}
        label={props.label}
        tabs={props.tabs}
        current={current?.id}
        onChange={id => {
          setOwn(id);
          props.onSelect?.(id);
        }}
        focusablePanel
      >
        {current?.render()}
      </Tabs>
    </div>
  );
}
