"""Subcommands for the broker's accounts (gateway/accounts.py) and its configuration
(gateway/brokerconf.py): `rating broker config`, `rating broker account add|list|reset-password|
revoke`, `rating panel rotate-password|credentials`. docs/security.md and docs/install.md.

A password is printed only with --print-password; else it goes into a file the user names,
created new with mode 0600 (never over an existing file). It is never accepted on a command
line and never logged.
"""

import functools
import json
import os
import sys
import time

from gateway.cli_common import CliError, add_db, group, open_db
from gateway.i18n import N_, _

PASSWORD_OUT_HELP = N_(
    "the new password goes into FILE, created with mode 0600 (an existing file is never overwritten); "
    "or use --print-password"
)


def _now_ms():
    return int(time.time() * 1000)


def _add_password_out(p):
    out = p.add_mutually_exclusive_group()
    out.add_argument("--password-file", metavar="FILE", help=_(PASSWORD_OUT_HELP))
    out.add_argument(
        "--print-password", action="store_true", help=_("print the new password on standard output instead of a file")
    )


def register(sub):
    b, bsub = group(
        sub,
        "broker",
        _("MQTT accounts and the Mosquitto configuration"),
        _(
            "The broker's accounts (panels, the gateway, counts integrations, operators), their topic "
            "rights, and the Mosquitto files that enforce them. docs/security.md."
        ),
    )
    cfg = bsub.add_parser(
        "config",
        help=_("write Mosquitto's configuration, password file and ACL file"),
        description=(
            _(
                "Write mosquitto.conf, passwd and acl into --out (atomically; mode 0600, or 0640 with --group) "
                "from the accounts in the database: no anonymous access, a loopback listener, an optional "
                "TLS listener (TLS 1.2+), raised queue limits. With --reload the running Mosquitto re-reads "
                "the password and ACL files without a restart (listener changes need a restart). Include "
                "the written mosquitto.conf from /etc/mosquitto/mosquitto.conf or start Mosquitto with it."
            )
        ),
    )
    cfg.add_argument("--out", required=True, metavar="DIR", help=_("folder for mosquitto.conf, passwd and acl"))
    add_db(cfg)
    cfg.add_argument("--root", help=_("MQTT topic root (default rating/v1)"))
    cfg.add_argument(
        "--listen",
        action="append",
        metavar="ADDR:PORT",
        help=_("a plain MQTT listener (repeatable; default 127.0.0.1:1883, for the gateway on this machine)"),
    )
    cfg.add_argument(
        "--tls-listen", action="append", default=[], metavar="ADDR:PORT", help=_("a TLS listener, e.g. 0.0.0.0:8883")
    )
    cfg.add_argument("--cafile", metavar="FILE", help=_("CA certificate (PEM) of the TLS listener"))
    cfg.add_argument("--certfile", metavar="FILE", help=_("the broker's certificate (PEM)"))
    cfg.add_argument("--keyfile", metavar="FILE", help=_("the broker's private key (PEM)"))
    cfg.add_argument(
        "--require-client-cert",
        action="store_true",
        help=_("TLS clients must also show a certificate signed by --cafile"),
    )
    cfg.add_argument(
        "--persistence",
        default="/var/lib/mosquitto/",
        metavar="DIR",
        help=_("where Mosquitto keeps sessions and retained messages (default %(default)s; 'none' to keep nothing)"),
    )
    cfg.add_argument(
        "--pid-file", metavar="FILE", help=_("Mosquitto's pid file (written into the config; used by --reload)")
    )
    cfg.add_argument(
        "--group",
        metavar="NAME",
        help=_("files readable by this group (mode 0640), e.g. mosquitto: the user it runs as"),
    )
    cfg.add_argument(
        "--reload",
        action="store_true",
        help=_(
            "signal the running Mosquitto (pid from --pid-file, default /run/mosquitto/mosquitto.pid) to re-read them"
        ),
    )
    cfg.set_defaults(func=cmd_config)

    _register_bridge(bsub)

    a, asub = group(
        bsub,
        "account",
        _("add, list, reset or revoke MQTT accounts"),
        _(
            "MQTT accounts: gateway or gateway.<id>, counts.<id> (limited to --site), operator.<id> "
            "(read-only, --site or --all-sites). Panel accounts (panel.<site>.<device>) are made by "
            "`rating site apply`/`rating panel ...`. After a change, run `rating broker config --reload` "
            "(Mosquitto); the gateway's embedded broker picks it up by itself."
        ),
    )
    add = asub.add_parser("add", help=_("a new account with a generated password"))
    add.add_argument("name", help=_("gateway, gateway.<id>, counts.<id>, operator.<id> or bridge.<id>"))
    add.add_argument("--site", action="append", default=[], help=_("a site it covers (repeatable)"))
    add.add_argument("--all-sites", action="store_true", help=_("every site (operators, counts)"))
    _add_password_out(add)
    add_db(add)
    add.set_defaults(func=cmd_account_add)

    ls = asub.add_parser("list", help=_("the accounts (no passwords: they are not stored)"))
    ls.add_argument("--format", choices=("table", "json"), default="table")
    add_db(ls)
    ls.set_defaults(func=cmd_account_list)

    rs = asub.add_parser("reset-password", help=_("a new password for a gateway, counts or operator account"))
    rs.add_argument("name")
    _add_password_out(rs)
    add_db(rs)
    rs.set_defaults(func=cmd_account_reset)

    rv = asub.add_parser("revoke", help=_("the account can no longer log in (after the broker's reload)"))
    rv.add_argument("name")
    add_db(rv)
    rv.set_defaults(func=cmd_account_revoke)

    p, psub = group(
        sub,
        "panel",
        _("a panel's MQTT password"),
        _("A panel's MQTT password: over the air (rotate-password) or by USB (credentials). docs/security.md."),
    )
    rot = psub.add_parser(
        "rotate-password",
        help=_("give the panel a new password over the air"),
        description=(
            _(
                "Ask for a new password for SITE/DEVICE. The gateway delivers it in the panel's retained config "
                "once the panel is online (it authenticated with its current password); the panel keeps the old "
                "one until it confirmed the new one. Nothing is printed: no one needs to see it."
            )
        ),
    )
    rot.add_argument("panel", metavar="SITE/DEVICE")
    add_db(rot)
    rot.set_defaults(func=cmd_panel_rotate)

    cr = psub.add_parser(
        "credentials",
        help=_("a new password for the panel, for `rating device deploy` over USB"),
        description=(
            _(
                "Make a new password for SITE/DEVICE active now and write the panel's MQTT login "
                '({"mqtt": {"user": ..., "password": ...}}) into --out, created with mode 0600, for the '
                "technician's deploy to write into the panel's /config.json. The panel's old password stops "
                "working at the broker's next reload. Delete the file once deployed."
            )
        ),
    )
    cr.add_argument("panel", metavar="SITE/DEVICE")
    cr.add_argument("--out", required=True, metavar="FILE", help=_("file to create (mode 0600; never overwritten)"))
    add_db(cr)
    cr.set_defaults(func=cmd_panel_credentials)


# ---- helpers -------------------------------------------------------------------------------------


def _register_bridge(bsub):
    br = bsub.add_parser(
        "bridge",
        help=_("write the configuration of a store's Mosquitto bridged to the central broker"),
        description=_(
            "For a store (or region) whose panels publish to a broker of their own, bridged to the "
            "central broker the gateway reads: writes mosquitto.conf, passwd and acl for that store "
            "broker into --out (its sites' panel and counts accounts; queue limits, QoS 1 and persistence "
            "so that nothing is dropped during a WAN outage; the bridge over TLS to --centre), and makes "
            "(or renews) the account bridge.NAME in this database. Its password goes only into the "
            "written mosquitto.conf (mode 0600, or 0640 with --group). Then run `rating broker config "
            "--reload` on the central broker so that it admits the bridge. docs/install.md."
        ),
    )
    br.add_argument("--out", required=True, metavar="DIR", help=_("folder for the store broker's files"))
    br.add_argument("--name", required=True, metavar="ID", help=_("the store's name: the account is bridge.ID"))
    br.add_argument(
        "--centre", required=True, metavar="HOST:PORT", help=_("the central broker, e.g. mqtt.example.com:8883")
    )
    br.add_argument("--site", action="append", default=[], help=_("a site whose panels use this broker (repeatable)"))
    br.add_argument("--all-sites", action="store_true", help=_("every site (a regional broker for the whole chain)"))
    add_db(br)
    br.add_argument("--root", help=_("MQTT topic root (default rating/v1)"))
    br.add_argument(
        "--listen",
        action="append",
        metavar="ADDR:PORT",
        help=_("the panels' listener (repeatable; default 0.0.0.0:1883)"),
    )
    br.add_argument(
        "--cafile", metavar="FILE", help=_("CA certificate (PEM) of the central broker (default: the system's)")
    )
    br.add_argument(
        "--no-tls", action="store_true", help=_("plain MQTT to the centre (only inside a VPN or for a test)")
    )
    br.add_argument(
        "--persistence",
        default="/var/lib/mosquitto/",
        metavar="DIR",
        help=_("where the store broker keeps its queue and retained messages (default %(default)s)"),
    )
    br.add_argument("--group", metavar="NAME", help=_("files readable by this group (mode 0640), e.g. mosquitto"))
    br.set_defaults(func=cmd_bridge)


def _existing_db(url):
    """open_db, but a SQLite file that does not exist is an error: these commands must not
    leave an empty database behind a typo."""
    from gateway import db as dbmod

    url = url or dbmod.default_url()
    if not url.startswith(("postgresql://", "postgres://")):
        path = dbmod.sqlite_path(url)
        if path != ":memory:" and not os.path.exists(path):
            raise CliError("no database at %s; check --db or $RATING_DB" % path)
    return open_db(url)


def _root(text):
    from protocol import ProtocolError, topics

    try:
        return topics.check_root(text or topics.DEFAULT_ROOT)
    except ProtocolError as exc:
        raise CliError("--root %s" % str(exc).split(": ", 1)[-1]) from None


def _panel(text):
    from gateway import accounts as acc

    site, sep, device = (text or "").partition("/")
    if not sep:
        raise CliError("%r: name the panel as SITE/DEVICE, e.g. shop-1/desk-2" % text)
    try:
        acc.panel_username(site, device)
    except acc.AccountError as exc:
        raise CliError("%s: %s" % (text, exc)) from None
    return site, device


def _need_output(args):
    """Before anything changes: where the new password goes must be said."""
    if not args.password_file and not args.print_password:
        raise CliError(
            "say where the new password goes: --password-file FILE (created with mode 0600) or --print-password"
        )
    if args.password_file and os.path.lexists(args.password_file):
        raise CliError("%s exists already; name a new file (it is never overwritten)" % args.password_file)


def _create_secret_file(path):
    """A new file only we can read, opened for writing; never an existing one (or a symlink)."""
    if not path:
        raise CliError(
            "say where the new password goes: --password-file FILE (created with mode 0600) or --print-password"
        )
    try:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        raise CliError("%s exists already; name a new file (it is never overwritten)" % path) from None
    except OSError as exc:
        raise CliError("cannot create %s: %s" % (path, exc.strerror or exc)) from None


def _with_secret(path, to_stdout, make, text=lambda secret: secret + "\n"):
    """Open the output first (so a bad path fails before anything changes), then `make()` the
    secret in the database, then write it. On a database error the new file is removed."""
    fd = None if to_stdout else _create_secret_file(path)
    try:
        secret, said = make()
    except BaseException:
        if fd is not None:
            os.close(fd)
            os.unlink(path)
        raise
    if fd is None:
        sys.stdout.write(text(secret))
        sys.stdout.flush()
    else:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text(secret))
            f.flush()
            os.fsync(f.fileno())
    return said


def _account_errors(fn):
    from gateway import accounts as acc

    try:
        return fn()
    except acc.AccountError as exc:
        raise CliError(str(exc)) from None


# ---- commands ------------------------------------------------------------------------------------


def cmd_config(args):
    from gateway import accounts as acc
    from gateway import brokerconf

    root = _root(args.root)
    out = os.path.abspath(args.out)
    db = _existing_db(args.db)
    try:
        live = acc.accounts(db)
        _cmd_config_write(args, brokerconf, root, out, live)
        # later changes of accounts (site apply, credentials, rotations) keep these files current
        pid_file = args.pid_file or ("/run/mosquitto/mosquitto.pid" if args.reload else None)
        acc.remember_broker_files(db, out, root, args.group, pid_file and os.path.abspath(pid_file), _now_ms())
    finally:
        db.close()
    return 0


def _cmd_config_write(args, brokerconf, root, out, live):
    try:
        conf = brokerconf.render_config(
            out,
            listen=args.listen or (brokerconf.DEFAULT_LISTEN,),
            tls_listen=args.tls_listen,
            cafile=args.cafile and os.path.abspath(args.cafile),
            certfile=args.certfile and os.path.abspath(args.certfile),
            keyfile=args.keyfile and os.path.abspath(args.keyfile),
            require_certificate=args.require_client_cert,
            persistence=None if args.persistence == "none" else args.persistence,
            pid_file=args.pid_file,
        )
        files = brokerconf.account_files(live, root)
        files[brokerconf.CONFIG_FILE] = conf
        brokerconf.write_files(out, files, group=args.group)
        print(
            "wrote %s, %s and %s in %s: %d account(s)"
            % (brokerconf.CONFIG_FILE, brokerconf.PASSWORD_FILE, brokerconf.ACL_FILE, out, len(live))
        )
        if not any(a.role == "gateway" for a in live):
            print("note: no gateway account yet: `rating broker account add gateway --password-file FILE`")
        if args.reload:
            pid = brokerconf.reload(args.pid_file or "/run/mosquitto/mosquitto.pid")
            print("Mosquitto (pid %d) re-reads the password and ACL files" % pid)
    except brokerconf.BrokerConfError as exc:
        raise CliError(str(exc)) from None


def cmd_bridge(args):
    from gateway import accounts as acc
    from gateway import brokerconf

    root = _root(args.root)
    out = os.path.abspath(args.out)
    username = "bridge.%s" % args.name
    _account_errors(lambda: acc.parse_username(username))
    try:  # everything the user can get wrong, before anything changes
        centre = brokerconf.parse_centre(args.centre)
        cafile = args.cafile and os.path.abspath(args.cafile)
        if cafile and not os.path.isfile(cafile):
            raise brokerconf.BrokerConfError("--cafile %s: no such file" % args.cafile)
        if cafile and args.no_tls:
            raise brokerconf.BrokerConfError("--cafile and --no-tls do not go together")
        render = functools.partial(
            brokerconf.render_bridge_config,
            out,
            args.name,
            centre,
            root=root,
            sites=args.site,
            all_sites=args.all_sites,
            listen=args.listen or ("0.0.0.0:1883",),
            tls=not args.no_tls,
            cafile=cafile,
            persistence=None if args.persistence == "none" else args.persistence,
        )
        render("-")
        brokerconf._gid(args.group)
    except brokerconf.BrokerConfError as exc:
        raise CliError(str(exc)) from None
    db = _existing_db(args.db)
    try:

        def renew():
            with db.transaction():
                if any(a["username"] == username and a["revoked_ms"] is None for a in acc.listing(db)):
                    acc.revoke(db, username, _now_ms())  # the old store files stop working at the centre
                return acc.add(db, username, _now_ms(), sites=args.site, all_sites=args.all_sites)

        secret = _account_errors(renew)
        live = brokerconf.store_accounts(acc.accounts(db), args.site, args.all_sites)
    finally:
        db.close()
    files = brokerconf.account_files(live, root)
    files[brokerconf.CONFIG_FILE] = render(secret)
    try:
        brokerconf.write_files(out, files, group=args.group)
    except brokerconf.BrokerConfError as exc:
        raise CliError("%s; the account %s has a new password now: run the command again" % (exc, username)) from None
    print(
        "wrote %s, %s and %s in %s: %d account(s) of the store, the bridge %s to %s:%d%s"
        % (
            brokerconf.CONFIG_FILE,
            brokerconf.PASSWORD_FILE,
            brokerconf.ACL_FILE,
            out,
            len(live),
            username,
            centre[0],
            centre[1],
            "" if args.no_tls else " over TLS",
        )
    )
    print("next: `rating broker config --reload` on the central broker, so that it admits %s" % username)
    return 0


def cmd_account_add(args):
    from gateway import accounts as acc

    _account_errors(lambda: acc.parse_username(args.name))
    _need_output(args)
    db = open_db(args.db)
    try:

        def make():
            return acc.add(db, args.name, _now_ms(), sites=args.site, all_sites=args.all_sites), None

        _account_errors(lambda: _with_secret(args.password_file, args.print_password, make))
    finally:
        db.close()
    where = "printed above" if args.print_password else "in %s (mode 0600)" % args.password_file
    print(
        "account %s added; its password is %s. Run `rating broker config --reload` for Mosquitto" % (args.name, where),
        file=sys.stderr if args.print_password else sys.stdout,
    )
    return 0


def cmd_account_reset(args):
    from gateway import accounts as acc

    _need_output(args)
    db = open_db(args.db)
    try:
        _account_errors(
            lambda: _with_secret(
                args.password_file, args.print_password, lambda: (acc.reset_password(db, args.name, _now_ms()), None)
            )
        )
    finally:
        db.close()
    print(
        "account %s has a new password; the old one works until `rating broker config --reload`" % args.name,
        file=sys.stderr if args.print_password else sys.stdout,
    )
    return 0


def cmd_account_revoke(args):
    from gateway import accounts as acc

    db = open_db(args.db)
    try:
        _account_errors(lambda: acc.revoke(db, args.name, _now_ms()))
    finally:
        db.close()
    print("account %s revoked; `rating broker config --reload` makes Mosquitto drop it" % args.name)
    return 0


def cmd_account_list(args):
    from gateway import accounts, site, times
    from gateway.cli_gateway import table

    db = _existing_db(args.db)
    try:
        rows = accounts.listing(db)
        tz = site.load(db).home_tz()
    finally:
        db.close()
    if args.format == "json":
        json.dump(rows, sys.stdout, ensure_ascii=False, indent=1)
        print()
        return 0
    if not rows:
        print("no accounts yet: `rating broker account add gateway --password-file FILE`")
        return 0
    table(
        [
            {
                "account": r["username"],
                "role": r["role"],
                "sites": ",".join(r["sites"]) or "-",
                "password": r["password"],
                "ver": r["ver"],
                "rotation": r["rotation"] or "-",
                "changed": times.format_time(r["changed_ms"], tz),
            }
            for r in rows
        ],
        [(k, k) for k in ("account", "role", "sites", "password", "ver", "rotation", "changed")],
    )
    return 0


def cmd_panel_rotate(args):
    from gateway import accounts as acc

    site, device = _panel(args.panel)
    db = open_db(args.db)
    try:
        ver = _account_errors(lambda: acc.rotate(db, site, device, _now_ms()))
    finally:
        db.close()
    print(
        "panel %s/%s: password v%d will be delivered over its retained config once it is online; "
        "it keeps the current one until it confirms" % (site, device, ver)
    )
    return 0


def cmd_panel_credentials(args):
    from gateway import accounts as acc

    site, device = _panel(args.panel)
    if os.path.lexists(args.out):
        raise CliError("%s exists already; name a new file (it is never overwritten)" % args.out)
    db = open_db(args.db)
    user = acc.panel_username(site, device)
    try:

        def make():
            secret, ver = acc.issue_for_usb(db, site, device, _now_ms())
            return secret, ver

        ver = _account_errors(
            lambda: _with_secret(
                args.out,
                False,
                make,
                text=lambda secret: json.dumps({"mqtt": {"user": user, "password": secret}}) + "\n",
            )
        )
        print(
            "panel %s/%s: login %s, password v%d written to %s (mode 0600); "
            "`rating device deploy --credentials %s` writes it into the panel and deletes the file"
            % (site, device, user, ver, args.out, args.out)
        )
        print(broker_refreshed(db))
    finally:
        db.close()
    return 0


def broker_refreshed(db, quiet=False):
    """Keep the Mosquitto files `rating broker config` wrote current after a change of accounts;
    one line for the user saying what happened or what to run (quiet: None when there was
    nothing to do)."""
    from gateway import brokerconf

    try:
        done = brokerconf.refresh(db)
    except brokerconf.BrokerConfError as exc:
        return "broker files not updated: %s; run `rating broker config ... --reload`" % exc
    if quiet and done in (None, "unchanged"):
        return None
    return {
        None: "Mosquitto: run `rating broker config --out DIR ... --reload` (the embedded broker picks it up itself)",
        "unchanged": "Mosquitto's password and ACL files are current",
        "reloaded": "Mosquitto's password and ACL files rewritten and reloaded",
        "written": "Mosquitto's password and ACL files rewritten: run `systemctl reload mosquitto`",
    }[done]
