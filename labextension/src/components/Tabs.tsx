import * as React from 'react';

export interface ITab {
  id: string;
  label: string;
}

/**
 * WAI-ARIA tabs and their panel (the children): a click or Enter selects; arrow keys, Home and
 * End move between tabs. `focusablePanel` makes the panel a tab stop (for panels that may hold
 * nothing focusable).
 */
export function Tabs(props: {
  tabs: ITab[];
  current: string;
  label: string;
  idPrefix: string;
  onChange: (id: string) => void;
  focusablePanel?: boolean;
  children?: React.ReactNode;
}): JSX.Element {
  const refs = React.useRef<(HTMLButtonElement | null)[]>([]);
  const index = Math.max(
    0,
    props.tabs.findIndex(t => t.id === props.current)
  );
  const move = (to: number) => {
    const n = props.tabs.length;
    const next = ((to % n) + n) % n;
    props.onChange(props.tabs[next].id);
    refs.current[next]?.focus();
  };
  const onKeyDown = (event: React.KeyboardEvent) => {
    switch (event.key) {
      case 'ArrowRight':
      case 'ArrowDown':
        move(index + 1);
        break;
      case 'ArrowLeft':
      case 'ArrowUp':
        move(index - 1);
        break;
      case 'Home':
        move(0);
        break;
      case 'End':
        move(props.tabs.length - 1);
        break;
      default:
        return;
    }
    event.preventDefault();
  };
  return (
    <>
      <div className="jp-BackendAI-tablist" role="tablist" aria-label={props.label} onKeyDown={onKeyDown}>
        {props.tabs.map((tab, i) => (
          <button
            key={tab.id}
            ref={el => {
              refs.current[i] = el;
            }}
            id={`${props.idPrefix}-tab-${tab.id}`}
            data-tab={tab.id}
            role="tab"
            type="button"
            aria-selected={tab.id === props.current}
            aria-controls={`${props.idPrefix}-tabpanel`}
            tabIndex={tab.id === props.current ? 0 : -1}
            className={'jp-BackendAI-tab' + (tab.id === props.current ? ' jp-mod-current' : '')}
            onClick={() => props.onChange(tab.id)}
          >
            {tab.label}
          </button>
        ))}
      </div>
      <div
        id={`${props.idPrefix}-tabpanel`}
        role="tabpanel"
        aria-labelledby={`${props.idPrefix}-tab-${props.current}`}
        className="jp-BackendAI-tabpanel"
        tabIndex={props.focusablePanel ? 0 : undefined}
      >
        {props.children}
      </div>
    </>
  );
}
