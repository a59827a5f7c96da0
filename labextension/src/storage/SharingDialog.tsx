/**
 * The owner's view of who a user folder is shared with (Backend.AI's /folders/_/shared): each
 * user who accepted an invitation with their permission, which the owner changes or revokes.
 */
import * as React from 'react';
import { errorText, IFolder, IShare, query, requestAPI } from '../api';
import { Button, Message, showInfo } from '../components';

const PERMISSIONS: [string, string][] = [
  ['ro', 'read only'],
  ['rw', 'read and write'],
  ['wd', 'read, write and delete']
];

function FolderSharing(props: { folder: IFolder }): JSX.Element {
  const folder = props.folder;
  const [shares, setShares] = React.useState<IShare[] | null>(null);
  // The permission chosen in each row, by e-mail, until it is applied.
  const [chosen, setChosen] = React.useState<{ [email: string]: string }>({});
  const [error, setError] = React.useState('');
  const [done, setDone] = React.useState('');
  const [busy, setBusy] = React.useState(false);

  // Only the newest listing is shown: one asked before a change may answer after it.
  const round = React.useRef(0);
  const load = React.useCallback(async () => {
    const mine = ++round.current;
    try {
      const answer = await requestAPI<{ shared: IShare[] }>('folders/_/shared' + query({ vfolder_id: folder.id }));
      if (mine === round.current) {
        setShares(answer.shared);
        setChosen({});
      }
    } catch (e) {
      if (mine === round.current) {
        setError(errorText(e));
      }
    }
  }, [folder.id]);

  React.useEffect(() => {
    void load();
  }, [load]);

  // perm null revokes the share. A refusal (say, the user left the folder meanwhile) shows the
  // manager's reason; the list is read again either way, so that it shows what is true now.
  const apply = async (share: IShare, perm: string | null) => {
    setBusy(true);
    setError('');
    setDone('');
    try {
      const answer = await requestAPI<{ msg: string }>('folders/_/shared', {
        method: 'POST',
        body: JSON.stringify({ vfolder: folder.id, user: share.shared_to.email, perm })
      });
      setDone(answer?.msg || 'Done.');
    } catch (e) {
      setError(errorText(e));
    }
    await load();
    setBusy(false);
  };

  return (
    <div>
      {error ? <Message kind="error">{error}</Message> : null}
      {done ? <Message kind="info">{done}</Message> : null}
      {shares === null ? (
        error ? null : (
          <div className="jp-BackendAI-hint">Loading …</div>
        )
      ) : !shares.length ? (
        <div className="jp-BackendAI-empty">
          {folder.name} is not shared with anyone. Users you invite appear here once they accept.
        </div>
      ) : (
        <table className="jp-BackendAI-table" aria-label={`Users ${folder.name} is shared with`}>
          <thead>
            <tr>
              <th scope="col">User</th>
              <th scope="col">Permission</th>
              <th scope="col">
                <span className="jp-BackendAI-sr">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {shares.map(share => {
              const email = share.shared_to.email;
              const value = chosen[email] || share.perm;
              return (
                <tr key={email} data-share-email={email}>
                  <td>{email}</td>
                  <td>
                    <select
                      aria-label={`Permission of ${email}`}
                      value={value}
                      disabled={busy}
                      onChange={e => {
                        const perm = e.target.value;
                        setChosen(c => ({ ...c, [email]: perm }));
                      }}
                    >
                      {PERMISSIONS.map(([perm, label]) => (
                        <option key={perm} value={perm}>
                          {label}
                        </option>
                      ))}
                    </select>
                  </td>
                  <td className="jp-BackendAI-rowActions">
                    <Button
                      label="Change"
                      title={`Change the permission of ${email}`}
                      accept
                      disabled={busy || value === share.perm}
                      onClick={() => void apply(share, value)}
                    />
                    <Button
                      label="Revoke"
                      title={`Revoke the share of ${email}`}
                      warn
                      disabled={busy}
                      onClick={() => void apply(share, null)}
                    />
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      <div className="jp-BackendAI-hint">
        A change applies at once to the user's folder list and to their upload and download links; sessions they already
        run keep the folder as it was mounted until they end. A revoked user needs a new invitation to get it back.
        Inside a session, read and write also lets them delete files.
      </div>
    </div>
  );
}

/** The owner's sharing dialog of one of their user folders; resolves when it is closed. */
export async function showSharingDialog(folder: IFolder): Promise<void> {
  await showInfo(`Sharing of ${folder.name}`, <FolderSharing folder={folder} />, { className: 'jp-BackendAI-form' });
}
