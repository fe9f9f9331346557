"""Subcommands: transactions import | unmatched | conversion (POS sales matched to polls,
docs/transactions.md); `conversion_table` also feeds the reports' POS section (gateway/report_pos.py)."""

from gateway import times
from gateway.cli_common import CliError, add_db, group, open_db, settings_of
from gateway.i18n import _, ngettext


def _now_ms():
    return times.now_ms()


def cmd_import(args):
    from gateway import transactions

    db = open_db(args.db, create=False)
    history = settings_of(db)
    from gateway.cli_site import require_settings

    require_settings(history, args.db)
    try:
        n, new = transactions.import_file(db, args.file, _now_ms(), history)
    except OSError as exc:
        raise CliError(_("cannot read %(path)s: %(error)s") % {"path": args.file, "error": exc.strerror}) from None
    except UnicodeDecodeError:
        raise CliError(
            _('%s is not UTF-8 text: in Excel save it as "CSV UTF-8"; nothing imported') % args.file
        ) from None
    except transactions.CsvError as exc:
        raise CliError(
            "%s\n%s" % (exc, _("Columns: site,till,time,id[,loyalty] (see `rating transactions import --help`)"))
        ) from None
    print(
        _("%(file)s: %(n)s read, %(new)s new (a sale already stored is not stored again)")
        % {
            "file": args.file,
            "n": ngettext("%d sale", "%d sales", n) % n,
            "new": ngettext("%d sale", "%d sales", new) % new,
        }
    )
    return 0


def _range(args, db, history):
    from gateway.cli_site import _parse_time, check_range, check_site, require_settings

    require_settings(history, args.db)
    check_site(history, args.site)
    start = _parse_time(args.start, "--from", db, site=args.site)
    end = _parse_time(args.end, "--to", db, end=True, site=args.site)
    check_range(start, end)
    tz = history.home_tz(args.site)
    sites = [args.site] if args.site else [k for _kind, k in history.keys("site")]
    return sites, times.at(start, tz), times.at(end, tz)


def cmd_unmatched(args):
    from gateway import transactions

    db = open_db(args.db, create=False)
    history = settings_of(db)
    sites, lo, hi = _range(args, db, history)
    n_polls = n_sales = 0
    for site in sites:
        tz = history.tz(site)
        polls, sales = transactions.unmatched(db, history, site, lo, hi)
        if args.what in ("polls", "both"):
            for p in polls:
                print(
                    _("poll without a sale  %(id)s  %(time)s  till %(till)s  %(employee)s")
                    % {
                        "id": "%s/%s/%s" % (site, p["device"], p["open_seq"]),
                        "time": times.format_time(p["opened_ms"], tz),
                        "till": p["till"],
                        "employee": history.employee_name(p["employee"]) if p["employee"] else "-",
                    }
                )
            n_polls += len(polls)
        if args.what in ("sales", "both"):
            for s in sales:  # never the loyalty reference: listings are for staff
                print(
                    _("sale without a poll  %(site)s  %(id)s  %(time)s  till %(till)s  %(employee)s")
                    % {
                        "site": site,
                        "id": s["tx_id"],
                        "time": times.format_time(s["at_ms"], tz),
                        "till": s["till"],
                        "employee": history.employee_name(s["employee"]) if s["employee"] else "-",
                    }
                )
            n_sales += len(sales)
    summary = []
    if args.what in ("polls", "both"):
        summary.append(ngettext("%d poll without a sale", "%d polls without a sale", n_polls) % n_polls)
    if args.what in ("sales", "both"):
        summary.append(ngettext("%d sale without a poll", "%d sales without a poll", n_sales) % n_sales)
    print(", ".join(summary))
    return 0


def conversion_table(db, history, sites, lo, hi, by, employee=None):
    """Rows of exact conversion from the matches (transactions.conversion_rows) with the figure."""
    import kpi_core
    from gateway import transactions

    out = []
    for site in sites:
        for r in transactions.conversion_rows(db, history, site, by, lo, hi):
            if employee is not None and by == "employee" and r["key"] != employee:
                continue
            r = dict(r)
            fig = kpi_core.exact_conversion(r["matched"], r["transactions"])
            r["conversion"] = {"value": fig.value, "low": fig.low, "high": fig.high, "n": fig.n, "reason": fig.reason}
            out.append(r)
    return out


def render_conversion(rows, by):
    """The conversion rows as an aligned text table (columns as wide as their longest cell)."""
    from gateway import i18n

    head = [
        _("office"),
        _("panel") if by == "device" else _("employee"),
        _("sales"),
        _("polls"),
        _("matched"),
        _("no sale"),
        _("no poll"),
        _("exact conversion"),
    ]
    table = [head]
    for r in rows:
        c = r["conversion"]
        fig = (
            "-"
            if c["value"] is None
            else "%s (%s)" % (i18n.percent(c["value"]), i18n.range_text(c["low"], c["high"], sign=False))
        )
        counts = (r["transactions"], r["polls"], r["matched"], r["unmatched_polls"], r["unmatched_sales"])
        table.append([r["site"], r["key"] or "-"] + [i18n.number(n, 0) for n in counts] + [fig])
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    lines = []
    for row in table:
        cells = [row[i].ljust(widths[i]) if i < 2 or i == 7 else row[i].rjust(widths[i]) for i in range(len(head))]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def cmd_conversion(args):
    db = open_db(args.db, create=False)
    history = settings_of(db)
    sites, lo, hi = _range(args, db, history)
    print(render_conversion(conversion_table(db, history, sites, lo, hi, args.by), args.by))
    return 0


def register(sub):
    import argparse

    from gateway.cli_site import TIME_HELP

    _g, tx = group(
        sub,
        "transactions",
        _("POS sales matched to polls (exact conversion, polls with no sale)"),
        _(
            "Sales from the point of sale, one per receipt: over MQTT (<root>/<site>/transactions), "
            "POST /api/v1/transactions or a CSV file. Each poll is matched to the sale it followed at "
            "the same till (docs/transactions.md)."
        ),
    )

    def cmd(name, func, help_text, description=None):
        p = tx.add_parser(
            name,
            help=help_text,
            description=description or help_text,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        add_db(p)
        p.set_defaults(func=func)
        return p

    p = cmd(
        "import",
        cmd_import,
        _("import a CSV of sales (idempotent)"),
        _(
            'CSV with a header row, `,` or `;` between values (Russian Excel\'s "CSV UTF-8" as it is); columns:\n'
            "  site     office id (one of the site file's)\n"
            "  till     till id (a-z, 0-9, '-'), or the panel's id when panels have no till setting\n"
            "  time     time of the sale: 2025-01-06T09:00:05 or 06.01.2025 09:00:05 in the office's\n"
            "           timezone, ISO 8601 with offset, or epoch ms\n"
            "  id       the receipt number (no spaces)\n"
            "  loyalty  pseudonymous loyalty-card reference (optional; a raw card number is hashed)\n"
            "A sale already stored (same office and id) is not stored again. A file with any bad line\n"
            "imports nothing and every problem is listed with its line."
        ),
    )
    p.add_argument("file", metavar="FILE.csv")
    for name, func, help_text in (
        ("unmatched", cmd_unmatched, _("polls without a sale and sales without a poll")),
        ("conversion", cmd_conversion, _("exact conversion per panel or employee from the matches")),
    ):
        p = cmd(name, func, help_text)
        p.add_argument("--site", metavar="ID", help=_("only this office (site id)"))
        p.add_argument("--from", dest="start", metavar="TIME", help=_("from TIME; ") + _(TIME_HELP))
        p.add_argument("--to", dest="end", metavar="TIME", help=_("before TIME (a date: to its end)"))
        if name == "unmatched":
            p.add_argument(
                "--what",
                choices=("polls", "sales", "both"),
                default="both",
                help=_("polls without a sale, sales without a poll, or both (default)"),
            )
        else:
            p.add_argument(
                "--by", choices=("device", "employee"), default="device", help=_("one row per panel or employee")
            )
