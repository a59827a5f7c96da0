"""After the demo hub answers: give each demo user a folder with a file in it (through the
manager's API, as the user), and print the shell ``export`` lines that point a JupyterLab at
the hub as ``alice`` (the endpoint and her keypair). Run by binder/start."""

from __future__ import annotations

import argparse
import shlex
import tempfile
from pathlib import Path

from jupyter_backendai.client import Client, ManagerError
from jupyter_backendai.db import admin, connect

README = """This folder belongs to {user} in the jupyter-backendai demo.
Folders outlive sessions: mount it when you launch one (it appears in the session's home folder as {folder}),
or browse it from a notebook with jupyter_backendai.widgets.FolderBrowser("{folder}").
"""


def keys(db_url: str, username: str) -> tuple[str, str]:
    factory = connect(db_url)
    try:
        with factory() as db:
            keypair = next(k for k in admin.get_user(db, username).keypairs if k.is_active)
            return keypair.access_key, keypair.secret_key
    finally:
        factory.kw["bind"].dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db-url", required=True)
    parser.add_argument("--endpoint", required=True, help="the manager's URL, through the proxy")
    parser.add_argument("--users", default="alice,bob")
    parser.add_argument("--folder", default="demo-data")
    parser.add_argument("--lab-user", default="alice")
    args = parser.parse_args()
    for user in args.users.split(","):
        access, secret = keys(args.db_url, user)
        with Client(args.endpoint, access_key=access, secret_key=secret) as client:
            if args.folder not in [f["name"] for f in client.list_folders()]:
                try:
                    client.create_folder(args.folder)
                except ManagerError as e:
                    if e.status != 409:  # made by a start a moment ago
                        raise
            with tempfile.TemporaryDirectory() as tmp:
                readme = Path(tmp) / "README.txt"
                readme.write_text(README.format(user=user, folder=args.folder))
                client.upload(args.folder, readme, progress=False)
    access, secret = keys(args.db_url, args.lab_user)
    for name, value in (
        ("BACKENDAI_ENDPOINT", args.endpoint),
        ("BACKEND_ACCESS_KEY", access),
        ("BACKEND_SECRET_KEY", secret),
    ):
        print(f"export {name}={shlex.quote(value)}")


if __name__ == "__main__":
    main()
