import * as React from 'react';

import { Button } from './Button';

/** A header row for a section of a console page: its title, a refresh button and other buttons. */
export function SectionHeader(props: {
  title: string;
  onRefresh?: () => void;
  children?: React.ReactNode;
  level?: 2 | 3;
}): JSX.Element {
  const Heading = props.level === 3 ? 'h3' : 'h2';
  return (
    <div className="jp-BackendAI-sectionHeader">
      <Heading>{props.title}</Heading>
      <div className="jp-BackendAI-toolbar">
        {props.children}
        {props.onRefresh && (
          <Button onClick={props.onRefresh} aria-label={`Refresh ${props.title}`} title="Refresh">
            ⟳ Refresh
          </Button>
        )}
      </div>
    </div>
  );
}
