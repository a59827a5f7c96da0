"""A fresh key for the product database's secrets, for a test run or a benchmark run.

Set in this process's environment, it is inherited by the hubs, managers and CLIs the run starts,
so that none of them writes a key file into the directory the run was started in.
"""

from __future__ import annotations

import os

from cryptography.fernet import Fernet

from jupyter_backendai.db.encryption import ENV_KEY, ENV_KEY_FILE


def use_fresh_db_key() -> None:
    os.environ.pop(ENV_KEY_FILE, None)
    os.environ[ENV_KEY] = Fernet.generate_key().decode()
