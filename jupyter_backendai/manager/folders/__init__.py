"""Backend.AI's ``/folders`` API (F24–F32): folders, their files, invitations and sharing.

Paths and answers follow Backend.AI's manager so that its client and SDK work unchanged; the
rules (names, hosts, who may do what) live in :mod:`jupyter_backendai.db.folders` and the file
operations (no ``..``, no symbolic link followed) in :mod:`jupyter_backendai.storage`. This
package only maps one to the other, and checks the permission each endpoint needs:

* ``ro`` to read (list, usage, download),
* ``rw`` to write (mkdir, upload, rename or move a file): a read-only share must not change
  anything,
* ``wd`` to delete files, and ownership (or administration of the group) with ``wd`` to
  rename or delete the folder itself.

``{name}`` in a path is a folder name or its id (hex or dashed UUID); tornado hands us the
URL-decoded text, so names in any script work. Backend.AI's client sends a JSON body even on
GET and DELETE; query arguments are accepted too (:meth:`APIHandler.param`).

A folder's directory is made when the folder is created here, and lazily (like the spawner
does) when a folder created elsewhere (the CLI, the db layer) is first used for files.

One module per group of endpoints, each with its ``handlers`` list (the app routes them):
:mod:`.lifecycle` (``/folders``, ``/folders/{name}``: list, create, look up, rename, clone,
delete), :mod:`.usage` (sizes and quotas), :mod:`.files` (a folder's files and transfer links)
and :mod:`.sharing` (invitations and shares); :mod:`.common` holds the base handler and the
folder's JSON, :mod:`.listing` what keeps listings cheap.
"""
