"""`rating demo` serves the web console after the simulated week: the URL and the demo logins
(passwords made for the run) are printed, and Ctrl-C stops it cleanly."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse

import pytest
from console_support import PASSWORD, Client, build_chain
from gw_site_support import sqlite_db

from rating.cli import main

pytestmark = pytest.mark.e2e

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _read_until(proc, marker, timeout=30):
    """stdout lines of `proc` up to and including the one containing `marker`."""
    lines = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if marker in line:
            return "".join(lines)
    raise AssertionError("no %r in the output: %s" % (marker, "".join(lines)))


def logins_of(out):
    """{account: password} from the printed demo logins."""
    block = out.split("sign in as", 1)[1]
    return {m.group(2): m.group(3) for m in re.finditer(r"^  (\S+)\s+(\S+)\s+(\S+)$", block, re.M)}


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "kill"])
def test_the_demo_console_prints_its_url_and_logins_and_stops_cleanly(tmp_path, stop):
    db = sqlite_db(tmp_path, "gateway.db")
    build_chain(db)  # the database a demo leaves behind (a chain's week, derived)
    db.close()
    proc = subprocess.Popen(
        [sys.executable, "-m", "rating", "--lang", "en", "demo", "--console-only", "--out", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        out = _read_until(proc, "docs/console.md")
        url = re.search(r"web console: (http://127\.0\.0\.1:\d+)/", out).group(1)
        logins = logins_of(out)
        assert set(logins) == {"expert", "manager", "analyst", "technician", "admin"}
        assert len(set(logins.values())) == 5 and PASSWORD not in logins.values()
        expert = Client(url)
        assert expert.login("expert", logins["expert"])[0] == 303
        assert expert.get("/review")[0] == 200
        proc.send_signal(stop)  # SIGINT: what Ctrl-C sends
        rest, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert rest.strip().endswith("web console stopped") and "Traceback" not in err
    port = urllib.parse.urlsplit(url).port
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass


def test_console_only_without_a_demo_database_says_what_to_run(tmp_path, capsys):
    assert main(["demo", "--console-only", "--out", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no demo database at" in err[0] and "run `rating demo --out" in err[0]
