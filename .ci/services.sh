#!/usr/bin/env bash
# Make sure the programs the tests start are installed. The tests start their own broker
# instance on a free loopback port (tests/conftest.py); PostgreSQL tests run where a server
# answers on 127.0.0.1:5432 (or $RATING_TEST_PG) and are skipped, with the reason, elsewhere.
set -u
have() { command -v "$1" >/dev/null 2>&1; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif have sudo; then sudo -n "$@"; else return 1; fi; }
if ! have mosquitto && ! [ -x /usr/sbin/mosquitto ]; then
  echo "services: mosquitto missing, installing it from Debian's packages"
  if have apt-get; then
    as_root apt-get update -qq >/dev/null && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto mosquitto-clients >/dev/null \
      || echo "services: could not install mosquitto; tests fall back to the embedded broker"
    # Debian starts the packaged broker on 0.0.0.0:1883 on some setups; the tests do not use it.
  else
    echo "services: no apt-get; tests fall back to the embedded broker"
  fi
fi
if have pg_isready && pg_isready -h 127.0.0.1 -p 5432 -q; then
  echo "services: PostgreSQL answers on 127.0.0.1:5432"
elif have pg_ctlcluster && ls /etc/postgresql >/dev/null 2>&1; then
  echo "services: starting the installed PostgreSQL cluster"
  as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
else
  echo "services: no PostgreSQL here; PostgreSQL tests will be skipped (SQLite is tested always)"
fi
exit 0
