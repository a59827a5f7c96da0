import * as React from 'react';

import { PASSWORD_RULES } from '../passwords';

/** The password rules with a mark for each one the password keeps. */
export function PasswordRules(props: { password: string; id?: string }): JSX.Element {
  return (
    <ul className="jp-BackendAI-rules" id={props.id} aria-label="Password rules">
      {PASSWORD_RULES.map(rule => {
        const ok = rule.ok(props.password);
        return (
          <li key={rule.label} className={ok ? 'jp-BackendAI-rule-ok' : 'jp-BackendAI-rule-missing'}>
            <span aria-hidden="true">{ok ? '✓' : '•'}</span> {rule.label}
            <span className="jp-BackendAI-sr">{ok ? ' (met)' : ' (not met yet)'}</span>
          </li>
        );
      })}
    </ul>
  );
}
