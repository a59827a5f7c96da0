export type Slots = { [slot: string]: string };

export interface IUsage {
  at: string | null;
  cpu_percent: number | null;
  cpu_seconds: number | null;
  mem_bytes: number | null;
  io_read_bytes: number | null;
  io_write_bytes: number | null;
  gpu_percent: number | null;
}

export interface ISession {
  id: string;
  name: string;
  server_name: string | null;
  image: string;
  status: string;
  status_info: string | null;
  resource_group: string | null;
  occupied_slots: Slots;
  requested_slots: Slots;
  created_at: string | null;
  started_at: string | null;
  terminated_at: string | null;
  usage: IUsage | null;
  username: string;
  user_email: string;
}

export interface IApp {
  name: string;
  title?: string;
  protocol: string;
  ports: number[];
  url: string | null;
}

export interface ISessionDetail extends ISession {
  group: string | null;
  mounts: any[];
  apps: IApp[];
  ssh: { host: string; port: number } | null;
  status_history: { status: string; reason: string; at: string }[];
}

/** `GET /session/{id}/logs`: Backend.AI's `result.logs`, with what is kept and dropped. */
export interface ISessionLogs {
  result: {
    logs: string;
    status: string;
    kept_bytes: number;
    dropped_bytes: number;
    updated_at: string | null;
  };
  note?: string;
}

export interface ISessionList {
  total_count: number;
  page: number;
  page_size: number;
  items: ISession[];
}

export interface IWhoAmI {
  username: string;
  email: string;
  role: string;
  domain: string;
  access_key: string;
}

export const PENDING_STATUSES = ['PENDING'];
export const ACTIVE_STATUSES = [
  'PENDING',
  'SCHEDULED',
  'PREPARING',
  'PULLING',
  'CREATING',
  'RUNNING',
  'RESTARTING',
  'TERMINATING'
];

export function isAdmin(who: IWhoAmI | null): boolean {
  return !!who && (who.role === 'admin' || who.role === 'superadmin');
}
