"""scripts/up.sh (make up): binds the UI to 127.0.0.1 and leaves no process behind on TERM or INT."""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# Stands in for `airflow standalone`: three components that ignore TERM, as the real ones were seen to,
# one of them in a process group of its own.
FAKE_AIRFLOW = """#!/usr/bin/env bash
echo "$AIRFLOW__API__HOST:$AIRFLOW__API__PORT" > "$OUT/bind"
for name in scheduler api-server; do (trap '' TERM; exec -a "$name" sleep 600) & echo $! >> "$OUT/pids"; done
python3 -c 'import os, signal, time; os.setpgid(0, 0); signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)' &
echo $! >> "$OUT/pids"
trap '' TERM
wait
"""


def _start(tmp_path: Path, **env: str) -> subprocess.Popen:
    fake = tmp_path / "airflow"
    fake.write_text(FAKE_AIRFLOW)
    fake.chmod(0o755)
    environment = {**os.environ, "AIRFLOW": str(fake), "OUT": str(tmp_path), "SMPP_UP_STOP_GRACE_S": "2", **env}
    process = subprocess.Popen(
        ["bash", str(REPO / "scripts/up.sh")], env=environment, stdout=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        pids = tmp_path / "pids"
        if pids.exists() and len(pids.read_text().split()) == 3:
            return process
        time.sleep(0.1)
    process.kill()
    pytest.fail("the fake airflow standalone never started its components")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for the user's purposes
    return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"


@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_every_process_it_started(tmp_path, signal_number):
    process = _start(tmp_path)
    assert (tmp_path / "bind").read_text().strip() == "127.0.0.1:8080"
    components = [int(pid) for pid in (tmp_path / "pids").read_text().split()]
    assert all(_alive(pid) for pid in components)
    process.send_signal(signal_number)
    assert process.wait(timeout=30) == 130
    deadline = time.monotonic() + 5
    while any(_alive(pid) for pid in components) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in components if _alive(pid)], "components outlived make up"
    assert "KILL" in process.stdout.read()  # they ignored TERM: the grace period ran out


def test_ui_host_setting_opens_the_bind(tmp_path):
    process = _start(tmp_path, UI_HOST="0.0.0.0", UI_PORT="8090")
    try:
        assert (tmp_path / "bind").read_text().strip() == "0.0.0.0:8090"
    finally:
        process.terminate()
        process.wait(timeout=30)
