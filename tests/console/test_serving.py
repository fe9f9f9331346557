"""`rating web` serves the console, and the function `rating demo` calls starts it with demo
accounts."""

import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from console_support import Client

from gateway import schema, users

pytestmark = pytest.mark.e2e


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_rating_web_serves_the_console_and_says_how_to_make_the_first_admin(tmp_path):
    url = "sqlite:///%s" % (tmp_path / "rating.db")
    schema.open_database(url).close()  # set up, as `rating gateway run` leaves it, with no account yet
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "rating", "web", "--db", url, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/login" % port, timeout=2) as r:
                    assert r.status == 200 and "Вход".encode() in r.read()  # the default language: ru
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.2)
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=15)
    assert "rating user bootstrap" in out and "console: http://127.0.0.1:%d/" % port in out
    assert "Traceback" not in out


def test_rating_web_refuses_a_bad_port_in_one_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "rating", "web", "--db", "sqlite:///%s" % (tmp_path / "r.db"), "--port", "70000"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and proc.stderr.strip() == "error: --port must be between 1 and 65535"


def test_the_demo_console_starts_with_an_expert_and_a_store_manager(tmp_path):
    from console_support import build_chain
    from gw_site_support import sqlite_db

    from console import demo

    db = sqlite_db(tmp_path, "demo.db")
    build_chain(db)
    db.close()
    chain_url = "sqlite:///%s" % (tmp_path / "demo.db")

    running, logins = demo.start(chain_url)
    try:
        by_role = {role: (name, password) for role, name, password in logins}
        assert set(by_role) == {"expert", "store-manager", "analyst", "technician", "admin"}
        expert = Client(running.url)
        assert expert.login(*by_role["expert"])[0] == 303
        assert expert.get("/review")[0] == 200
        manager = Client(running.url)
        assert manager.login(*by_role["store-manager"])[0] == 303
        status, _h, body = manager.get("/")
        assert "Berlin Mitte" in body and "Офис на Тверской" not in body  # the first office by id
        assert manager.get("/review")[0] == 403
    finally:
        running.stop()
    # a second start gives new passwords: the old ones open nothing
    running, again = demo.start(chain_url)
    try:
        old = dict((n, p) for _r, n, p in logins)
        assert Client(running.url).login("expert", old["expert"])[0] == 401
    finally:
        running.stop()
    db = schema.open_database(chain_url)
    manager = users.by_username(db, "manager")
    assert manager is not None and manager["offices"] == ["ber"] and manager["role"] == "store-manager"
    db.close()


def test_the_console_runs_on_postgresql(pg_store_url):
    import json
    import re

    from console_support import ACCOUNTS, PASSWORD, T_WEEK, build_chain

    from console import server

    db = schema.open_database(pg_store_url)
    build_chain(db)
    name, role, scope = ACCOUNTS[1]
    users.add(db, name, PASSWORD, role, T_WEEK, lang="en", **scope)
    db.close()
    running = server.start(pg_store_url)
    try:
        expert = Client(running.url)
        assert expert.login("expert")[0] == 303
        status, _h, body = expert.get("/review")
        assert status == 200
        first = re.search(r'href="(/review/poll/[^"?]+)', body)
        assert first
        token = expert.csrf(first.group(1))
        status, headers, _b = expert.post(first.group(1), {"csrf": token, "verdict": "valid"})
        assert status == 303 and "done=saved" in headers["location"]
        assert expert.get("/reports")[0] == 200
        page = json.loads(expert.get("/api/v1/polls?limit=5")[2])
        rest = json.loads(expert.get("/api/v1/polls?limit=500&after=" + page["next"])[2])
        assert len(page["polls"]) + len(rest["polls"]) == 18
    finally:
        running.stop()


def test_rating_web_refuses_a_database_never_set_up_and_leaves_it_as_it_was(tmp_path, pg_url):
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    for url, what in ((str(empty), "was never set up as a rating database"), (pg_url, "was never set up")):
        proc = subprocess.run(
            [sys.executable, "-m", "rating", "--lang", "en", "web", "--db", url, "--port", str(_free_port())],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 2 and proc.stdout == ""
        assert proc.stderr.count("\n") == 1 and what in proc.stderr and "rating site apply" in proc.stderr
    assert empty.read_bytes() == b""
