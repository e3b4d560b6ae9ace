import json
import socket
import subprocess
import sys

import pytest

from storage.lock import WorkdirBusy, workdir_lock


def test_second_run_on_a_busy_workdir_is_refused(tmp_path):
    with workdir_lock(tmp_path):
        with pytest.raises(WorkdirBusy, match="in use by process"):
            with workdir_lock(tmp_path):
                pass
    assert not (tmp_path / ".lock").exists()


def test_lock_of_a_dead_process_is_taken_over(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / ".lock").write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname()}))
    with workdir_lock(tmp_path):
        assert json.loads((tmp_path / ".lock").read_text())["pid"] != int(dead.stdout)
    assert not (tmp_path / ".lock").exists()


def test_lock_held_by_a_live_process_names_it(tmp_path):
    live = subprocess.Popen([sys.executable, "-c", "import signal; signal.pause()"])
    try:
        (tmp_path / ".lock").write_text(json.dumps({"pid": live.pid, "host": socket.gethostname()}))
        with pytest.raises(WorkdirBusy, match=str(live.pid)):
            with workdir_lock(tmp_path):
                pass
    finally:
        live.kill()
        live.wait()
