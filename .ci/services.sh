#!/usr/bin/env bash
# Make sure the programs the tests start are installed (loopback only, nothing is exposed):
# - mosquitto: the tests start their own broker instances on free loopback ports
#   (tests/conftest.py); without it they fall back to the gateway's embedded broker.
# - socat: the technician-tool tests put a MicroPython VM behind a pseudo-terminal.
# - chromium + chromium-driver: the web console's browser tests (tests/console/) drive
#   Debian's headless Chromium through Selenium; without them those tests are skipped.
# - PostgreSQL: tests run where a server answers on 127.0.0.1:5432 (or $RATING_TEST_PG),
#   an installed cluster is started, elsewhere those tests are skipped with the reason.
set -u
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo -n "$@"; else return 1; fi; }
updated=
apt_install() {  # apt_install PROGRAM PACKAGE...
  local prog=$1; shift
  have "$prog" && return 0
  command -v apt-get >/dev/null || { echo "services: $prog missing and no apt-get; related tests fall back or skip"; return 0; }
  echo "services: $prog missing, installing $* from Debian's packages"
  [ -n "$updated" ] || { as_root apt-get update -qq >/dev/null 2>&1; updated=1; }
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1 \
    || echo "services: could not install $*; related tests fall back or skip"
}
apt_install mosquitto mosquitto mosquitto-clients
apt_install socat socat
apt_install chromium chromium
apt_install chromedriver chromium-driver
# the PDF reports' Cyrillic font (gateway/report_docs.py): a file, not a program to look for
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || apt_install no-such-program-dejavu fonts-dejavu-core
if command -v pg_isready >/dev/null && pg_isready -h 127.0.0.1 -p 5432 -q; then
  echo "services: PostgreSQL answers on 127.0.0.1:5432"
elif command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
  echo "services: starting the installed PostgreSQL cluster"
  as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
elif command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  # A fresh machine: install the server, keep it on loopback, and give the tests a role of
  # their own (rating_test, password rating_test, may create databases).
  apt_install pg_ctlcluster postgresql
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    v=$(ls /etc/postgresql | head -1)
    pg_ctlcluster --skip-systemctl-redirect "$v" main start || true
    su postgres -c "psql -qc \"DO \\\$\\\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname='rating_test') THEN CREATE ROLE rating_test LOGIN CREATEDB PASSWORD 'rating_test'; END IF; END \\\$\\\$;\"" \
      || echo "services: could not create the rating_test role; PostgreSQL tests will be skipped"
  fi
else
  echo "services: no PostgreSQL here; PostgreSQL tests will be skipped (SQLite is tested always)"
fi
exit 0
