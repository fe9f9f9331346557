"""Fixtures of the console tests: a small chain's database with accounts of every role
(tests/support/console_support.py), and the console served on a free loopback port by the
real uvicorn server."""

import shutil

import pytest
from console_browser import axe_source, chromium_or_skip, start_browser, stop_browser
from console_support import ACCOUNTS, PASSWORD, T_WEEK, Client, build_chain
from gw_site_support import sqlite_db

from gateway import users


@pytest.fixture(scope="session")
def chain_template(tmp_path_factory):
    """A chain database with accounts, built once; tests get copies."""
    folder = tmp_path_factory.mktemp("chain")
    db = sqlite_db(folder, "template.db")
    build_chain(db)
    for name, role, scope in ACCOUNTS:
        users.add(db, name, PASSWORD, role, T_WEEK, name=name.title(), lang="en", **scope)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return str(folder / "template.db")


@pytest.fixture
def chain_url(chain_template, tmp_path):
    path = tmp_path / "chain.db"
    shutil.copy(chain_template, path)
    return "sqlite:///%s" % path


@pytest.fixture
def console(chain_url):
    """The console serving a fresh copy of the chain database: .url, .db_url."""
    from console import server

    running = server.start(chain_url)
    running.db_url = chain_url
    yield running
    running.stop()


@pytest.fixture
def client(console):
    def make(username=None):
        c = Client(console.url)
        if username:
            status, headers, _ = c.login(username)
            assert status == 303, "sign-in of %s failed (%s)" % (username, status)
        return c

    return make


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium for a test module (skipped where there is none): one per module, its
    cookies cleared by each sign-in."""
    chromium_or_skip()
    driver = start_browser()
    yield driver
    stop_browser(driver)


@pytest.fixture(scope="module")
def axe():
    """axe-core's source, for console_browser.axe_violations."""
    return axe_source()
