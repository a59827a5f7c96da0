"""The hub stops the manager service with SIGINT (then SIGTERM): it ends in order, without a traceback."""

import signal

import pytest

from testing.manager import Manager
from testing.sessions import ProductDB


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_the_manager_ends_quietly_on_the_hubs_stop_signals(tmp_path, sig):
    pdb = ProductDB(tmp_path)
    service = Manager(tmp_path, pdb)
    try:
        service.process.send_signal(sig)
        assert service.process.wait(15) == 0
        text = service.log_text()
        assert "Traceback" not in text and "KeyboardInterrupt" not in text, text
    finally:
        service.stop()
        pdb.close()
