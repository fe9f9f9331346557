"""`rating device list|flash|deploy|test|check|logs`: the field technician's commands (USB serial).

Registration is cheap (argparse only); each handler first checks that the technician extra it
needs is installed (technician/extra.py), then imports what it needs. User problems are
DeviceErrors (technician/errors.py), which the `rating` command prints as "error: ...", exit 2.
"""

import argparse
import json
import os
import sys

from technician import extra
from technician.errors import DeviceError
from technician.i18n import _


def register(sub):
    p = sub.add_parser(
        "device",
        help=_("panels over USB: list, flash, deploy, test, check, logs"),
        description=_(
            "Field technician tools for a panel on a USB cable. Every "
            "command that changes the panel has --dry-run (prints the exact "
            "esptool/mpremote commands instead of running them)."
        ),
    )
    p.set_defaults(_parser=p)
    dsub = p.add_subparsers(dest="device_command", metavar="ACTION")

    a = dsub.add_parser("list", help=_("serial ports, likely ESP32 boards first"))
    a.add_argument("--format", choices=("text", "json"), default="text")
    a.add_argument(
        "--also",
        action="append",
        default=[],
        metavar="GLOB",
        help=_("also list device paths matching GLOB (e.g. '/dev/rfcomm*')"),
    )
    a.set_defaults(func=cmd_list)

    a = dsub.add_parser("flash", help=_("erase the board and write a MicroPython image (esptool)"))
    a.add_argument("--port", required=True, help=_("serial port, e.g. /dev/ttyUSB0 or COM3"))
    a.add_argument("--image", required=True, help=_("MicroPython .bin file for the chip (from micropython.org)"))
    a.add_argument("--chip", choices=("esp32", "esp32s3"), default="esp32")
    a.add_argument("--baud", type=int, default=460800, help=_("download speed (115200 for long cables)"))
    a.add_argument("--dry-run", action="store_true", help=_("print the esptool commands, change nothing"))
    a.set_defaults(func=cmd_flash)

    a = dsub.add_parser("deploy", help=_("copy the firmware bundle and /config.json, restart, wait until online"))
    a.add_argument("--port", required=True)
    a.add_argument("--site", help=_("site id (shop), e.g. office-1; kept from the panel when omitted"))
    a.add_argument("--device", help=_("panel id within the site, e.g. panel-1"))
    a.add_argument("--wifi-ssid", help=_("the shop's Wi-Fi (2.4 GHz); with a terminal you are asked for its password"))
    a.add_argument(
        "--wifi-password-file",
        metavar="FILE",
        help=_("read the Wi-Fi password from the first line of FILE ('-': standard input)"),
    )
    a.add_argument(
        "--wifi-password",
        help=_("the Wi-Fi password itself (discouraged: visible to other users in the process list)"),
    )
    a.add_argument("--broker", help=_("the gateway's broker, mqtt://HOST:PORT (mqtts:// for TLS)"))
    a.add_argument("--mqtt-user", help=_("the panel's MQTT user; with a terminal you are asked for its password"))
    a.add_argument("--mqtt-password-file", metavar="FILE", help=_("read the MQTT password from FILE ('-': stdin)"))
    a.add_argument(
        "--mqtt-password", help=_("the MQTT password itself (discouraged: visible to other users in the process list)")
    )
    a.add_argument(
        "--credentials",
        metavar="FILE",
        help=_(
            "the panel's MQTT login from `rating panel credentials` (sets --mqtt-user and its password, "
            "--site/--device when omitted); deleted once written into the panel"
        ),
    )
    a.add_argument("--bundle", help=_("firmware bundle folder (default: build/firmware, from `make firmware`)"))
    a.add_argument(
        "--umqtt",
        choices=("auto", "mip", "bundle"),
        default="auto",
        help=argparse.SUPPRESS,  # ignored since the firmware has its own MQTT client (old scripts pass it)
    )
    a.add_argument(
        "--wait",
        type=int,
        default=60,
        metavar="SECONDS",
        help=_("how long to wait for the panel to come online (0: do not wait)"),
    )
    a.add_argument(
        "--watch-broker",
        metavar="URL",
        help=_(
            "broker to watch for the birth message when this computer reaches it under "
            "another address than the panel does"
        ),
    )
    a.add_argument("--dry-run", action="store_true", help=_("print the mpremote commands, change nothing"))
    a.set_defaults(func=cmd_deploy)

    a = dsub.add_parser("test", help=_("run the panel's self-test: LEDs, buttons, Wi-Fi, broker, clock"))
    a.add_argument("--port", required=True)
    a.add_argument("--seconds", type=int, default=60, help=_("time allowed to press the four buttons"))
    a.add_argument(
        "--non-interactive",
        action="store_true",
        help=_("no questions; exit 0 only when every check passes (scripted checks)"),
    )
    a.add_argument("--dry-run", action="store_true")
    a.set_defaults(func=cmd_test)

    a = dsub.add_parser(
        "check",
        help=_("measure on the panel: heap, journal append time, reconnect time, config restarts, versions"),
        description=_(
            "Boots the deployed firmware on the panel (after a soft reset) and measures what "
            "cannot be measured without the board: free heap (gc and the ESP-IDF heap) after boot, after "
            "connecting, after a config message and after the restarts the firmware makes for it (the "
            "panel's /remote.json and kept config are put back afterwards), the time of a journal append, "
            "the time back online after a Wi-Fi drop it provokes, the frozen modules (a frozen umqtt is "
            "listed for information: the firmware has its own MQTT client), the MicroPython version and "
            "chip. The panel is restarted at the end."
        ),
    )
    a.add_argument("--port", required=True)
    a.add_argument("--connect", type=int, default=60, metavar="SECONDS", help=_("how long to wait for the broker"))
    a.add_argument("--no-drop", action="store_true", help=_("do not disconnect Wi-Fi to time the way back"))
    a.add_argument("--format", choices=("text", "json"), default="text")
    a.add_argument("--dry-run", action="store_true")
    a.set_defaults(func=cmd_check)

    a = dsub.add_parser("logs", help=_("follow the panel's serial console (Ctrl-C to stop)"))
    a.add_argument("--port", required=True)
    a.add_argument("--seconds", type=float, default=None, help=_("stop after this many seconds"))
    a.add_argument("--no-time", action="store_true", help=_("no time stamps in front of the lines"))
    a.add_argument("--dry-run", action="store_true")
    a.set_defaults(func=cmd_logs)


def cmd_list(args):
    extra.require("serial")
    from technician.ports import list_ports

    rows = list_ports(args.also)
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(
            _(
                "No serial ports found. Plug the panel in with a data USB cable (charge-only cables "
                "show nothing); on Windows install the CP210x or CH340 driver."
            )
        )
        return 1
    print("%-22s %-6s %-26s %-22s %s" % (_("PORT"), "ESP32?", _("CHIP (GUESS)"), _("USB BRIDGE"), _("SERIAL")))
    for r in rows:
        print(
            "%-22s %-6s %-26s %-22s %s"
            % (
                r["port"],
                "yes" if r["likely_esp32"] else "-",
                r["chip_guess"] or "-",
                r["bridge"] or r["description"] or "-",
                r["serial"] or "-",
            )
        )
    return 0


def cmd_flash(args):
    extra.require("serial", "esptool")
    from technician import flash, ports, steps

    flash.check_image(args.image, args.chip)  # a dry-run checks the image as the real run does
    plan = flash.plan(args.port, args.image, args.chip, args.baud)
    if args.dry_run:
        print(
            _("Would flash %(image)s on %(port)s (%(chip)s):")
            % {"image": args.image, "port": args.port, "chip": args.chip}
        )
        steps.print_plan(plan)
        return 0
    ports.check_free(args.port)
    flash.run(plan, args.chip, args.port)
    print(_("Flashed and verified. Next: rating device deploy --port %s --site ... --device ...") % args.port)
    return 0


def _passwords(args):
    """(wifi, mqtt) passwords from a file, a prompt or (discouraged) the command line."""
    from technician import secrets

    ask = not args.dry_run
    wifi = secrets.obtain(
        "Wi-Fi",
        "--wifi-password",
        args.wifi_password,
        args.wifi_password_file,
        ask=ask and args.wifi_ssid is not None,
        empty="",  # an open network
    )
    mqtt = secrets.obtain(
        "MQTT", "--mqtt-password", args.mqtt_password, args.mqtt_password_file, ask=ask and args.mqtt_user is not None
    )
    return wifi, mqtt


def cmd_deploy(args):
    extra.require("serial", "mpremote")
    from technician import panelconfig, ports, steps
    from technician.deploy import Deploy

    if not args.dry_run:  # the cable first: it is the likeliest problem in a store
        ports.check_exists(args.port)
    watch = None
    if args.watch_broker:
        watch = panelconfig.parse_broker(args.watch_broker)
    login = _credentials(args)
    settings = (args.site, args.device, args.wifi_ssid)
    # the bundle and every setting given are checked before anyone is asked for a password
    d = Deploy(args.port, bundle_dir=args.bundle, wait_s=args.wait, watch_broker=watch)
    panelconfig.check_given(panelconfig.overrides_from(*settings, None, args.broker, args.mqtt_user))
    wifi_password, mqtt_password = _passwords(args)
    if login:
        mqtt_password = login[1]
    d.overrides = panelconfig.overrides_from(*settings, wifi_password, args.broker, args.mqtt_user, mqtt_password)
    if args.dry_run:
        plan = d.dry_run_plan()
        print(
            _(
                "Would deploy firmware %(fw)s from %(bundle)s to %(port)s. On a panel that already has it, only "
                "files whose sha256 differs are copied."
            )
            % {"fw": d.manifest.get("fw"), "bundle": d.bundle_dir, "port": args.port}
        )
        steps.print_plan(plan)
        print(
            _('%(n)d. Wait up to %(s)d s for the birth message on the broker (or "link: mqtt up" on the console)')
            % {"n": len(plan) + 1, "s": args.wait}
        )
        return 0
    result = d.run()
    if login:  # in the panel now: the file has done its job (docs/security.md)
        os.unlink(args.credentials)
        print(_("- %s deleted: the password lives only in the panel (and as a hash at the broker)") % args.credentials)
    return 0 if result.get("online") is not False else 1


def _credentials(args):
    """(user, password) from --credentials, which also names the panel; None without it."""
    if not args.credentials:
        return None
    from technician import secrets

    if args.mqtt_user is not None or args.mqtt_password is not None or args.mqtt_password_file is not None:
        raise DeviceError(_("give --credentials or --mqtt-user/--mqtt-password-file, not both."))
    user, password, site, device = secrets.read_credentials(args.credentials)
    for flag, given, want in (("--site", args.site, site), ("--device", args.device, device)):
        if given is not None and given != want:
            raise DeviceError(
                _(
                    "%(flag)s %(given)s: the credentials in %(file)s are for %(site)s/%(device)s; deploy them to "
                    "that panel or make new ones with `rating panel credentials %(want)s`"
                )
                % {
                    "flag": flag,
                    "given": given,
                    "file": args.credentials,
                    "site": site,
                    "device": device,
                    "want": "%s/%s" % (args.site or site, args.device or device),
                }
            )
    args.site, args.device, args.mqtt_user = site, device, user
    return user, password


def cmd_test(args):
    extra.require("serial", "mpremote")
    from technician import selftest, steps

    if args.dry_run:
        steps.print_plan(selftest.plan(args.port, args.seconds))
        return 0
    report = selftest.run_selftest(args.port, seconds=args.seconds, interactive=not args.non_interactive)
    selftest.format_report(report)
    return 0 if report.passed() else 1


def cmd_check(args):
    extra.require("serial", "mpremote")
    from technician import check, steps

    if args.dry_run:
        steps.print_plan(check.plan(args.port, args.connect, not args.no_drop))
        return 0
    # with --format json, standard output is the JSON alone: progress goes to standard error
    out = print if args.format == "text" else (lambda line: print(line, file=sys.stderr))
    report = check.run_check(args.port, connect_s=args.connect, drop=not args.no_drop, out=out)
    if args.format == "json":
        print(json.dumps(report.as_json(), indent=2, sort_keys=True))
    else:
        check.format_report(report, args.port)
    return 0 if report.passed() else 1


def cmd_logs(args):
    extra.require("serial")
    from technician import logs, steps

    if args.dry_run:
        print(
            _("Would open %(port)s at 115200 baud and print every line (pyserial; same as `%(command)s`).")
            % {"port": args.port, "command": steps.Step("", steps.mpremote(args.port, "repl", arm=False)).command()}
        )
        return 0
    logs.follow(args.port, seconds=args.seconds, timestamps=not args.no_time)
    return 0
