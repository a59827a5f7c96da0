/**
 * Statistics: daily usage over a chosen period (at most 100 days, as the manager allows) from
 * `resource/usage/period` — sessions, CPU core-hours, memory GiB-hours and GPU-hours. Admins
 * see their domain's or everyone's figures and may narrow them to one user.
 */
import React, { useMemo, useState } from 'react';

import { IPoint } from '../charts';
import { api, query } from '../api';
import { BarChart, Button, ErrorMessage, Loading, SectionHeader, SelectField, TextField, useLoad } from '../components';

export const MAX_PERIOD_DAYS = 100;

export interface IUsageItem {
  date: string;
  username: string;
  user_email: string;
  group_name: string | null;
  num_sessions: number;
  session_ids: string[];
  cpu_seconds: number;
  mem_byte_seconds: number;
  gpu_seconds: number;
  cuda_shares_seconds: number;
  cuda_device_seconds: number;
}

interface IUsagePeriod {
  start_date: string;
  end_date: string;
  scope: 'all' | 'domain' | 'user';
  items: IUsageItem[];
}

/** A local date as YYYY-MM-DD (what <input type="date"> holds). */
export function isoDay(date: Date): string {
  const y = date.getFullYear();
  const m = String(date.getMonth() + 1).padStart(2, '0');
  const d = String(date.getDate()).padStart(2, '0');
  return `${y}-${m}-${d}`;
}

function daysBefore(days: number): string {
  const date = new Date();
  date.setDate(date.getDate() - days);
  return isoDay(date);
}

/** Every day from `first` to `last` (YYYY-MM-DD, both included). */
export function daysBetween(first: string, last: string): string[] {
  const out: string[] = [];
  const day = new Date(`${first}T00:00:00Z`);
  const end = new Date(`${last}T00:00:00Z`);
  for (let i = 0; day <= end && i <= MAX_PERIOD_DAYS; i++) {
    out.push(day.toISOString().slice(0, 10));
    day.setUTCDate(day.getUTCDate() + 1);
  }
  return out;
}

/** Sum the items of each day with `value`; days without items are 0. */
export function perDay(days: string[], items: IUsageItem[], value: (item: IUsageItem) => number): IPoint[] {
  const sums = new Map<string, number>(days.map(d => [d, 0]));
  for (const item of items) {
    if (sums.has(item.date)) {
      sums.set(item.date, (sums.get(item.date) || 0) + value(item));
    }
  }
  return days.map(day => ({ day, value: sums.get(day) || 0 }));
}

function periodProblem(start: string, end: string): string {
  if (!start || !end) {
    return 'Choose both days of the period.';
  }
  if (end < start) {
    return 'The last day is before the first day.';
  }
  if (daysBetween(start, end).length > MAX_PERIOD_DAYS) {
    return `A period is at most ${MAX_PERIOD_DAYS} days.`;
  }
  return '';
}

export function Statistics(): JSX.Element {
  const [start, setStart] = useState(daysBefore(6));
  const [end, setEnd] = useState(isoDay(new Date()));
  const [period, setPeriod] = useState({ start: daysBefore(6), end: isoDay(new Date()) });
  const [user, setUser] = useState('');
  const problem = periodProblem(start, end);

  const usage = useLoad(
    () =>
      api<IUsagePeriod>(
        'resource/usage/period' +
          query({
            start_date: period.start.replace(/-/g, ''),
            end_date: period.end.replace(/-/g, '')
          })
      ),
    [period.start, period.end]
  );
  const quick = (days: number) => {
    const next = { start: daysBefore(days - 1), end: isoDay(new Date()) };
    setStart(next.start);
    setEnd(next.end);
    setPeriod(next);
  };
  const show = (event?: React.FormEvent) => {
    event?.preventDefault();
    if (!problem) {
      setPeriod({ start, end });
    }
  };

  const items = useMemo(() => (usage.data?.items || []).filter(i => !user || i.username === user), [usage.data, user]);
  const users = useMemo(() => Array.from(new Set((usage.data?.items || []).map(i => i.username))).sort(), [usage.data]);
  // The manager counts days in UTC; the chart shows the days it was asked for.
  const days = daysBetween(period.start, period.end);
  const scope = usage.data?.scope;

  return (
    <div className="jp-BackendAI-page jp-BackendAI-statistics">
      <SectionHeader title="Statistics" onRefresh={usage.reload} />
      <form className="jp-BackendAI-switchers" onSubmit={show} aria-label="Period">
        <TextField label="First day" type="date" name="start_date" value={start} onChange={setStart} />
        <TextField label="Last day" type="date" name="end_date" value={end} onChange={setEnd} />
        <div className="jp-BackendAI-toolbar jp-BackendAI-alignEnd">
          <Button type="submit" kind="accept" disabled={!!problem}>
            Show
          </Button>
          <Button onClick={() => quick(7)}>Last 7 days</Button>
          <Button onClick={() => quick(30)}>Last 30 days</Button>
        </div>
        {scope && scope !== 'user' && (
          <SelectField
            label="User"
            name="user"
            value={user}
            onChange={setUser}
            options={[{ value: '', label: scope === 'all' ? 'Everyone' : 'Everyone in the domain' }, ...users]}
          />
        )}
      </form>
      <ErrorMessage error={problem || usage.error} />
      {usage.loading && !usage.data && <Loading what="usage" />}
      {usage.data && (
        <>
          <p className="jp-BackendAI-hint" role="status">
            {period.start} to {period.end} (days in UTC): {items.reduce((s, i) => s + i.num_sessions, 0)} session-days
            {scope === 'all' ? ', all users' : scope === 'domain' ? ', your domain' : ', your sessions'}.
          </p>
          <div className="jp-BackendAI-charts">
            <BarChart
              id="sessions"
              title="Sessions"
              unit={['session', 'sessions']}
              integer
              points={perDay(days, items, i => i.num_sessions)}
            />
            <BarChart id="cpu" title="CPU" unit="core-hours" points={perDay(days, items, i => i.cpu_seconds / 3600)} />
            <BarChart
              id="memory"
              title="Memory"
              unit="GiB-hours"
              points={perDay(days, items, i => i.mem_byte_seconds / 1024 ** 3 / 3600)}
            />
            <BarChart id="gpu" title="GPU" unit="GPU-hours" points={perDay(days, items, i => i.gpu_seconds / 3600)} />
          </div>
        </>
      )}
    </div>
  );
}
