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

export interface IUsage {
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
