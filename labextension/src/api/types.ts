/**
 * What the manager answers, as the panels and the console read it. Types and constants only
 * (no import), so that pure helpers and their jest tests can use them.
 */

/** Resource slots as the manager sends them: every amount a string, unlimited as "Infinity". */
export type Slots = Record<string, string>;

/** `auth/whoami`: who is logged in. */
export interface IWhoAmI {
  username: string;
  email: string;
  role: string;
  domain: string;
  access_key: string;
}

/** Whether a role may open Administration. */
export function isAdminRole(role: string | undefined): boolean {
  return role === 'admin' || role === 'superadmin';
}

export function isAdmin(who: IWhoAmI | null): boolean {
  return !!who && isAdminRole(who.role);
}

/** `auth/profile`. */
export interface IProfile {
  username: string;
  email: string;
  full_name: string;
  role: string;
  domain: string;
  groups: string[];
  access_key: string;
  resource_policy: {
    name: string;
    total_resource_slots: Slots;
    max_concurrent_sessions: number;
    [key: string]: unknown;
  };
  preferred_ssh_port: number | null;
}

export interface IPreset {
  name: string;
  resource_slots: Slots;
  shared_memory: string | null;
  allocatable: boolean;
}

/** `resource/check-presets`: limits, use and what remains, per keypair, project and resource group. */
export interface ICheckPresets {
  keypair_limits: Slots;
  keypair_using: Slots;
  keypair_remaining: Slots;
  group_limits: Slots;
  group_using: Slots;
  group_remaining: Slots;
  scaling_group_remaining: Slots;
  scaling_groups: Record<string, { using: Slots; remaining: Slots }>;
  presets: IPreset[];
  group: string | null;
  scaling_group: string | null;
}

// --- sessions ----------------------------------------------------------------------------------

export interface ISessionUsage {
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
  usage: ISessionUsage | null;
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

// --- folders -----------------------------------------------------------------------------------

export interface IFolder {
  id: string;
  name: string;
  host: string;
  usage_mode: string;
  permission: string;
  max_size: number | null;
  created_at: string | null;
  is_owner: boolean;
  ownership_type: string;
  type: string;
  via: 'owner' | 'group' | 'shared';
  user_email: string | null;
  group: string | null;
  group_name: string | null;
  automount: boolean;
}

export interface IFileEntry {
  name: string;
  type: 'file' | 'dir' | 'symlink' | string;
  size: number;
  mtime?: string;
  modified?: string;
  ctime?: string;
}

export interface IFolderUsage {
  used_bytes: number;
  file_count: number;
  max_size: number | null;
  /** Used past the capacity: uploads are refused until it shrinks. */
  over_capacity?: boolean;
  /** Whether the storage itself holds the folder to its capacity (a quota) or only the manager does. */
  capacity_enforced?: boolean;
}

export interface IInvitation {
  id: string;
  inviter: string;
  invitee: string;
  perm: string;
  state: string;
  vfolder_id: string;
  vfolder_name: string | null;
}

/** One user a folder is shared with, as the owner sees it (Backend.AI's /folders/_/shared). */
export interface IShare {
  vfolder_id: string;
  vfolder_name: string;
  owner: string;
  shared_to: { uuid: string; email: string };
  perm: string;
}

// --- administration ----------------------------------------------------------------------------

export interface IPolicy {
  name: string;
  total_resource_slots: Slots;
  max_concurrent_sessions: number;
  max_containers_per_session: number;
  idle_timeout: number;
  max_session_lifetime: number;
  max_pending_session_count: number | null;
  allowed_vfolder_hosts: string[];
  max_vfolder_count: number;
  max_vfolder_size: number;
  created_at: string | null;
}

export interface IKeypair {
  access_key: string;
  secret_key?: string;
  user_id: string;
  is_active: boolean;
  is_admin: boolean;
  resource_policy: string;
  rate_limit: number;
  num_queries: number;
  last_used: string | null;
  created_at: string | null;
}
