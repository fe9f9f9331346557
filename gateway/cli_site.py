"""Subcommands: site apply, rebuild, review (list/poll/fm/history), counts import, report.

Handlers are thin: parse arguments, open the database, call gateway.site / derive / review /
counts / report, print. Heavy imports happen inside the handlers so `rating --help` stays fast.
"""

import argparse
import json
import os
import sys

from gateway import i18n, times
from gateway.cli_common import CliError, add_db, group, open_db, settings_of
from gateway.i18n import N_, _, ngettext

TIME_HELP = N_(
    "ISO 8601 date or date-time, e.g. 2025-01-06 or 2025-01-06T09:00+03:00 "
    "(without an offset: the offices' timezone); or Unix epoch ms"
)


def _now_ms():
    return times.now_ms()


def _parse_time(text, option, db, end=False, site=None, local=False):
    """--from/--to: a date means the start of that day (for --to: the end of it) in the office's
    timezone (`site`'s when given, else History.home_tz); a date-time without an offset is read
    in that timezone too. local=True (a report over several offices): such a time is returned
    as a naive datetime, which the report reads in each office's own timezone."""
    if text is None:
        return None
    from gateway import site as site_mod

    tz = site_mod.load(db).home_tz(site)
    try:
        return times.parse_bound(text, tz, end=end, local=local)
    except ValueError as exc:
        raise CliError(
            _("%(option)s: %(error)s; expected %(expected)s")
            % {"option": option, "error": exc, "expected": _(TIME_HELP)}
        ) from None


def check_range(start, end):
    """--from must come before --to (an empty range is a mistake, not an empty answer)."""
    if start is None or end is None or times.is_local(start) != times.is_local(end):
        return
    if end <= start:
        raise CliError(_("--from is not before --to: the range is empty; swap them or widen it"))


def check_site(history, site):
    """CliError for an office the settings never had, listing those they have."""
    if site is None:
        return
    sites = [key for _kind, key in history.keys("site")]
    if site not in sites:
        known = ", ".join("%s (%s)" % (s, history.site_name(s)) for s in sites)
        raise CliError(_("no office %(site)r; the offices are: %(known)s") % {"site": site, "known": known or "-"})


def check_employee(history, employee):
    if employee is None:
        return
    ids = [key for _kind, key in history.keys("employee")]
    if employee not in ids:
        known = ", ".join("%s (%s)" % (e, history.employee_name(e)) for e in ids)
        raise CliError(_("no employee %(id)r; the employees are: %(known)s") % {"id": employee, "known": known or "-"})


def require_settings(history, url):
    """A database no site file was applied to has no offices: every answer would be empty."""
    if not history.keys("site"):
        from gateway import db as dbmod

        raise CliError(
            _("no site file was applied to %(db)s yet, so it has no offices; `rating site apply FILE.toml` first")
            % {"db": dbmod._redact(url or dbmod.default_url())}
        )


# --- handlers ---------------------------------------------------------------------------


def _read_site_file(path):
    from gateway import site as site_mod

    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise CliError(
            _("cannot read the site file %(path)s: %(error)s") % {"path": path, "error": exc.strerror}
        ) from None
    _follow_file_language(text)
    try:
        return site_mod.parse(text, os.path.basename(path))
    except site_mod.SiteFileError as exc:
        raise CliError(
            "%s\n%s" % (exc, _("Fix the file and apply it again; docs/site-file.md describes every field."))
        ) from None


def _follow_file_language(text):
    """A site file's problems are told in its own `lang` (unless the user chose one)."""
    import tomllib

    try:
        dep = tomllib.loads(text).get("deployment")
    except tomllib.TOMLDecodeError:
        return
    if isinstance(dep, dict) and dep.get("lang") in i18n.LANGS:
        i18n.follow_deployment(dep["lang"])


def _change_tz(after, kind, key, valid_from, removed):
    """The timezone a change is shown in: its office's (site, panel, roster; a removed office's
    as it was), else the one the offices share (History.home_tz of the settings as applied)."""
    site = key.split("/", 1)[0] if kind in ("site", "panel", "roster") else None
    return after.home_tz(site, valid_from - 1 if removed else valid_from)


def _change_key(kind, key):
    """How a change names what it changes: a roster entry by its panel and shift."""
    if kind == "deployment":
        return ""
    if kind == "roster":
        panel, _hash, slot = key.partition("#")
        return "%s (%s)" % (panel, slot.replace("|", " ").strip() or _("all day"))
    return key


def cmd_site_apply(args):
    from gateway import derive, site_view
    from gateway import site as site_mod

    sitefile = _read_site_file(args.file)
    db = open_db(args.db)
    now = _now_ms()
    history = settings_of(db)
    i18n.follow_deployment(sitefile.of("deployment")[0][3]["lang"])  # the file's language from now on
    try:
        if args.dry_run:
            changes = site_mod.preview(db, sitefile, now, args.remove_all)
        else:
            changes = site_mod.apply(db, sitefile, now, os.path.basename(args.file), remove_all=args.remove_all)
    except site_mod.SiteFileError as exc:
        raise CliError("%s: %s" % (args.file, "; ".join(exc.errors))) from None
    if not changes:
        print(_("%s: no changes (the settings history already matches the file)") % args.file)
        return 0
    n = len(changes)
    if args.dry_run:
        head = ngettext("%(file)s: would record %(n)d change:", "%(file)s: would record %(n)d changes:", n)
    else:
        head = ngettext("%(file)s: recorded %(n)d change:", "%(file)s: recorded %(n)d changes:", n)
    print(head % {"file": args.file, "n": n})
    # applied: the stored history; a dry run: the stored one as the file would leave it
    after = site_mod.load(db, changes if args.dry_run else ())
    for kind, key, valid_from, _explicit, data in changes:
        # the time the change takes effect, in its office's timezone with the zone shown
        when = times.format_time(valid_from, _change_tz(after, kind, key, valid_from, data is None))
        old = history.get(kind, key, valid_from)
        new = None if data is None else json.loads(data)
        print("  %-10s %s %s" % (_(KIND_WORDS[kind]), _change_key(kind, key), _("from %s") % when))
        for line in site_view.changes_text(old, new):
            print("      " + line)
    _warn_unstaffed(after, now)
    if not args.dry_run:
        n = derive.rebuild(db, now)
        print(
            ngettext(
                "re-derived polls of %d panel with the new settings",
                "re-derived polls of %d panels with the new settings",
                n,
            )
            % n
        )
        _panel_accounts(db, now)
    return 0


def _panel_accounts(db, now):
    """Every panel configured now or from a later time gets its MQTT account (no password yet:
    it is made when delivered, `rating panel credentials` for USB); Mosquitto's files, when
    `rating broker config` wrote them, are kept current (docs/security.md, "Panel credentials")."""
    from gateway import accounts
    from gateway import site as site_mod
    from gateway.cli_accounts import broker_refreshed

    history = site_mod.load(db)
    wanted = {tuple(key.split("/", 1)) for _kind, key in history.keys("panel") if history.get("panel", key, 2**62)}
    wanted.update(history.panels(now))
    made = accounts.new_panels(db, sorted(wanted), now)
    if made:
        print(
            ngettext(
                "%d new panel account (no password yet): give it one by USB with "
                "`rating panel credentials SITE/DEVICE --out FILE` and `rating device deploy --credentials FILE`",
                "%d new panel accounts (no password yet): give each one by USB with "
                "`rating panel credentials SITE/DEVICE --out FILE` and `rating device deploy --credentials FILE`",
                len(made),
            )
            % len(made)
        )
    said = broker_refreshed(db, quiet=True)
    if said:
        print(said)


def _warn_unstaffed(history, now):
    from gateway import site_view

    for panel, missing, open_n, first in site_view.unstaffed(history, now):
        tz = history.tz(panel.split("/", 1)[0])
        print(
            _(
                "warning: panel %(panel)s asks about an employee but no one is on its roster for %(share)s of "
                "its office's opening hours in the coming week (first at %(first)s); add [[roster]] entries"
            )
            % {"panel": panel, "share": i18n.percent(missing / open_n), "first": times.format_time(first, tz, False)},
            file=sys.stderr,
        )


def cmd_site_show(args):
    from gateway import site_view

    db = open_db(args.db, create=False)
    history = settings_of(db)
    require_settings(history, args.db)
    now = _now_ms()
    entities = site_view.in_force(history, now)
    dep = history.deployment(now)
    print(
        _("settings in force at %(now)s (revision %(rev)d)")
        % {"now": times.format_time(now, history.home_tz()), "rev": _revision(db)}
    )
    print(
        "  %s: lang=%s k=%s review_share=%s%s"
        % (
            _("deployment"),
            dep["lang"],
            dep["k"],
            dep["review_share"],
            "".join(
                " %s=%s" % (name, dep[name])
                for name in ("loyalty_days", "pos_before_minutes", "pos_after_minutes")
                if dep.get(name) is not None
            ),
        )
    )
    for key, data in entities["site"]:
        hours = " ".join(x for x in (data.get("days"), data.get("hours")) if x)
        print("  %-10s %s  %s  %s  %s" % (_("office"), key, data.get("name"), data.get("timezone"), hours or "-"))
        for pkey, panel in entities["panel"]:
            if not pkey.startswith(key + "/"):
                continue
            q = history.question(panel.get("question"), now) or {}
            print(
                "    %-8s %s  %s=%s (%s)%s"
                % (
                    _("panel"),
                    pkey.split("/", 1)[1],
                    _("question"),
                    panel.get("question"),
                    q.get("kind"),
                    "  %s=%s" % (_("till"), panel["till"]) if panel.get("till") else "",
                )
            )
            for rkey, r in entities["roster"]:
                if rkey.startswith(pkey + "#"):
                    slot = rkey.split("#", 1)[1].replace("|", " ").strip() or _("all day")
                    print("      %-8s %s  %s" % (_("roster"), history.employee_name(r.get("employee")), slot))
    for key, q in entities["question"]:
        print("  %-10s %s (%s): %s" % (_("question"), key, q.get("kind"), q.get("text_" + dep["lang"]) or ""))
    for key, e in entities["employee"]:
        print("  %-10s %s: %s" % (_("employee"), key, e.get("name")))
    _show_alerts(history.alerts(now))
    print(_("`rating site export` writes these settings as a site file"))
    return 0


def _show_alerts(alerts):
    """The [alerts] table in force: its channels and every rule the file or the console changed."""
    from gateway import site_view

    if alerts is None:
        return
    print("  %-10s %s" % (_("alerts"), ", ".join(alerts.get("channels") or []) or "-"))
    for rule, settings in sorted(alerts.get("rules", {}).items()):
        print("    %s  %s" % (rule, " ".join("%s=%s" % (k, site_view.shown(v)) for k, v in sorted(settings.items()))))


def _revision(db):
    from gateway import site as site_mod

    return site_mod.revision(db)


def cmd_site_export(args):
    from gateway import site_view

    db = open_db(args.db, create=False)
    history = settings_of(db)
    require_settings(history, args.db)
    now = _now_ms()
    note = _(
        "The settings in force at %(now)s (revision %(rev)d), written by `rating site export`.\n"
        "`rating site apply` takes this file back without a change; docs/site-file.md describes every field."
    ) % {"now": times.format_time(now, history.home_tz()), "rev": _revision(db)}
    text = site_view.to_toml(history, now, note)
    if not args.output:
        sys.stdout.write(text)
        return 0
    if os.path.exists(args.output):
        raise CliError(_("%s exists; give a new file name (an export never overwrites)") % args.output)
    _check_output(args.output)
    with open(args.output, "w", encoding="utf-8") as f:
        f.write(text)
    print(_("settings written to %s") % args.output)
    return 0


KIND_WORDS = {
    "deployment": N_("deployment"),
    "region": N_("region"),
    "site": N_("office"),
    "question": N_("question"),
    "employee": N_("employee"),
    "panel": N_("panel"),
    "roster": N_("roster"),
    "alerts": N_("alerts"),
    "followups": N_("follow-ups"),
}


def cmd_rebuild(args):
    from gateway import derive
    from gateway import rebuild as rebuild_mod

    if args.jobs is not None and args.jobs < 1:
        raise CliError(_("--jobs must be 1 or more (worker processes); leave it out for the default"))
    db = open_db(args.db, create=False)
    settings_of(db)
    result = rebuild_mod.rebuild(db, _now_ms(), jobs=args.jobs)
    polls, fms = derive.totals(db)
    n = result.panels
    print(
        _("rebuilt %(panels)s: %(polls)s, %(reports)s (%(seconds)s s)")
        % {
            "panels": ngettext("%d panel", "%d panels", n) % n,
            "polls": ngettext("%d poll", "%d polls", polls) % polls,
            "reports": ngettext("%d force-majeure report", "%d force-majeure reports", fms) % fms,
            "seconds": i18n.number(result.seconds, 1),
        }
    )
    workers = len(result.peak_kib) - 1
    print(
        _("%(processes)s; peak memory: this process %(parent)s MB, largest worker %(worker)s MB")
        % {
            "processes": ngettext("%d worker process", "%d worker processes", workers) % workers
            if workers
            else _("in this process"),
            "parent": i18n.number(result.peak_kib["parent"] / 1024, 0),
            "worker": i18n.number(result.worker_peak_kib / 1024, 0),
        }
    )
    return 0


def cmd_counts_import(args):
    from gateway import counts

    db = open_db(args.db, create=False)
    history = settings_of(db)
    require_settings(history, args.db)
    try:
        n = counts.import_file(db, args.file, _now_ms(), history)
    except OSError as exc:
        raise CliError(_("cannot read %(path)s: %(error)s") % {"path": args.file, "error": exc.strerror}) from None
    except UnicodeDecodeError:
        raise CliError(
            _('%s is not UTF-8 text: in Excel save it as "CSV UTF-8"; nothing imported') % args.file
        ) from None
    except counts.CountsError as exc:
        raise CliError(
            "%s\n%s"
            % (exc, _("Columns: site,device,from,to,transactions,visitors (see `rating counts import --help`)"))
        ) from None
    print(
        ngettext(
            "%(file)s: %(n)d interval stored (re-importing changes nothing)",
            "%(file)s: %(n)d intervals stored (re-importing changes nothing)",
            n,
        )
        % {"file": args.file, "n": n}
    )
    return 0


def cmd_counts_list(args):
    from gateway import store

    db = open_db(args.db, create=False)
    history = settings_of(db)
    require_settings(history, args.db)
    check_site(history, args.site)
    start = _parse_time(args.start, "--from", db, site=args.site)
    end = _parse_time(args.end, "--to", db, end=True, site=args.site)
    check_range(start, end)
    tz = history.home_tz(args.site)
    rows = store.counts(db, args.site, times.at(start, tz), times.at(end, tz))
    for r in rows:
        tz = history.tz(r["site"])
        print(
            "%-16s %-10s %s  %6s %6s  %s"
            % (
                r["site"],
                r["device"] or "-",
                times.format_span(r["from_ms"], r["to_ms"], tz),
                "-" if r["transactions"] is None else r["transactions"],
                "-" if r["visitors"] is None else r["visitors"],
                r["source"],
            )
        )
    print(ngettext("%d interval", "%d intervals", len(rows)) % len(rows))
    return 0


REPORT_FORMATS = {
    ".csv": "csv",
    ".xlsx": "xlsx",
    ".json": "json",
    ".txt": "table",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
}


def _report_format(fmt, output):
    """--format, else the one -o's extension names, else table; a mismatch is an error."""
    ext = os.path.splitext(output)[1].lower() if output else ""
    by_ext = REPORT_FORMATS.get(ext)
    if output and fmt is None and by_ext is None:
        raise CliError(
            "cannot tell the format from %r: name the file .csv, .xlsx, .pdf, .html, .json or .txt, or give --format"
            % output
        )
    if fmt and by_ext and fmt != by_ext:
        raise CliError("--format %s does not match %s: give one of them, or make them agree" % (fmt, output))
    fmt = fmt or by_ext or "table"
    if fmt == "xlsx" and not output:
        raise CliError("an .xlsx workbook is a file: give -o FILE.xlsx")
    if fmt == "pdf" and not output:
        raise CliError("a PDF is a file: give -o FILE.pdf")
    return fmt


def _check_output(path):
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise CliError("cannot write %s: the folder %s does not exist; create it or write elsewhere" % (path, folder))
    if os.path.isdir(path):
        raise CliError("cannot write %s: it is a folder; give a file name" % path)


def _report_output(reports, by, fmt, pv):
    """The bytes (files) or text (stdout) of the reports in format `fmt`."""
    import json

    from gateway import report_docs, report_export

    data = next(r for r in reports if r["by"] == by)
    if fmt == "xlsx":
        return report_export.workbook_bytes(reports, pv)
    if fmt == "pdf":
        return report_docs.pdf_bytes(data)
    if fmt == "html":
        return report_docs.render_html(data)
    if fmt == "json":
        return json.dumps(dict(data, pivot=pv) if pv else data, ensure_ascii=False, indent=2) + "\n"
    if fmt == "csv":
        return report_export.render_pivot_csv(pv, data["lang"]) if pv else report_export.render_csv(data)
    return report_export.render_pivot_table(pv, data["lang"]) if pv else report_export.render_table(data)


def _has_regions(db):
    from gateway import site as site_mod

    return bool(site_mod.load(db).region_tree())


def _region_report(db, **kwargs):
    """`--by region`: the office rows rolled up through the site file's [[regions]]."""
    from gateway import report_regions
    from gateway import site as site_mod

    if not site_mod.load(db).region_tree():
        raise CliError("--by region: the site file has no [[regions]]; add them (docs/site-file.md) or use --by site")
    return report_regions.build(db, **kwargs)


def _pos_section(db, history, start, end, args, fmt, pv):
    """Exact conversion from the POS matches, per panel and employee (docs/transactions.md), in
    every form of the report (gateway/report_pos.py); None without sales, or for a pivot's
    table/CSV (a pivot is one figure over periods)."""
    if pv and fmt in ("table", "csv"):
        return None
    from gateway import report_pos

    return report_pos.section(db, history, start, end, [args.site] if args.site else None, args.employee)


def cmd_report(args):
    from gateway import report, report_export

    fmt = _report_format(args.format, args.output)
    if args.output:
        _check_output(args.output)  # before the work, not after it
    db = open_db(args.db, create=False)
    history = settings_of(db)
    require_settings(history, args.db)
    check_site(history, args.site)
    check_employee(history, args.employee)
    # without --site, a date (or a time without UTC offset) is each office's own local one
    local = not args.site
    start = _parse_time(args.start, "--from", db, site=args.site, local=local)
    end = _parse_time(args.end, "--to", db, end=True, site=args.site, local=local)
    check_range(start, end)
    by = args.by or "site"
    # a workbook holds every grouping unless --by names one
    bys: list[str] = [args.by] if args.by else (list(report.BYS) if fmt == "xlsx" else [by])
    if not args.by and fmt == "xlsx" and _has_regions(db):
        bys.append("region")  # the regions' sheet too, when the site file has a location tree
    period = args.period or ("month" if args.pivot else "all")
    if fmt in STREAMED and not args.pivot and bys == [by] and by != "region":
        return _stream_report(
            db, args, fmt, by, period, start, end, _pos_section(db, history, start, end, args, fmt, None)
        )
    try:
        reports = [
            (report.build_report if b != "region" else _region_report)(
                db,
                by=b,
                period=period,
                start=start,
                end=end,
                k=args.k,
                lang=args.lang,
                site=args.site,
                employee=args.employee,
                sort=args.sort,
            )
            for b in bys
        ]
        pv = report_export.pivot(next(r for r in reports if r["by"] == by), args.pivot) if args.pivot else None
    except (ValueError, TypeError) as exc:
        raise CliError(str(exc)) from None
    from gateway import report_pos

    report_pos.attach(reports, _pos_section(db, history, start, end, args, fmt, pv))
    out = _report_output(reports, by, fmt, pv)
    if not args.output:
        sys.stdout.write(out if isinstance(out, str) else out.decode("utf-8"))  # (xlsx needs -o)
        return 0
    data = out if isinstance(out, bytes) else (report_export.csv_bytes(out) if fmt == "csv" else out.encode("utf-8"))
    try:
        report_export.write_file(args.output, data)
    except OSError as exc:
        raise CliError("cannot write %s: %s" % (args.output, exc.strerror or exc)) from None
    print("report written to %s" % args.output)
    return 0


STREAMED = ("table", "csv", "json")


def _stream_report(db, args, fmt, by, period, start, end, pos=None):
    """Text, CSV and JSON are written row by row as the report makes them (memory holds the
    sums, never every row); a file is written whole or not at all (a temporary file renamed)."""
    from gateway import report, report_export

    try:
        data = report.build_report(
            db,
            by=by,
            period=period,
            start=start,
            end=end,
            k=args.k,
            lang=args.lang,
            site=args.site,
            employee=args.employee,
            sort=args.sort,
            stream=True,
        )
    except (ValueError, TypeError) as exc:
        raise CliError(str(exc)) from None
    if pos is not None:
        data["pos"] = pos  # the last key: written after the rows stream
    write = {"table": report_export.write_table, "csv": report_export.write_csv, "json": report_export.write_json}[fmt]
    if not args.output:
        write(data, sys.stdout)
        return 0
    try:
        with report_export.open_atomic(args.output, "utf-8-sig" if fmt == "csv" else "utf-8") as f:
            write(data, f)
    except OSError as exc:
        raise CliError("cannot write %s: %s" % (args.output, exc.strerror or exc)) from None
    print("report written to %s" % args.output)
    return 0


# --- registration -----------------------------------------------------------------------


def _k(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(_("must be a number between 0 and 1, got %r") % text) from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(_("must be between 0 and 1, got %s") % text)
    return value


def _share(text):
    return _k(text)


def _cmd(sub, name, func, help_text, description=None):
    p = sub.add_parser(
        name, help=help_text, description=description or help_text, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_db(p)
    p.set_defaults(func=func)
    return p


def register(sub):
    from gateway import cli_review

    _register_site(sub)
    cli_review.register(sub)
    _register_counts(sub)
    _register_report(sub)


def _register_site(sub):
    _g, site_sub = group(
        sub,
        "site",
        _("offices, panels, questions, employees and roster from a TOML file"),
        _(
            "The site file says which offices and panels exist, which key question each panel "
            "asks, and who works at which panel when. See docs/site-file.md and "
            "docs/examples/two-offices.toml."
        ),
    )
    p = _cmd(
        site_sub,
        "apply",
        cmd_site_apply,
        _("record the settings of a site file (history is kept)"),
        _(
            "Validate FILE.toml and append what changed to the settings history: a change takes "
            "effect at its `from` (or now). Nothing is ever overwritten, so past polls keep the "
            "employee and question they had. Polls are re-derived afterwards and the gateway "
            "pushes the new question/timings to the panels. Times are shown in the office's timezone."
        ),
    )
    p.add_argument("file", metavar="FILE.toml")
    p.add_argument("--dry-run", action="store_true", help=_("validate and show the changes, record nothing"))
    p.add_argument(
        "--remove-all",
        action="store_true",
        help=_("allow a file without offices or panels to end every configured one (refused otherwise)"),
    )

    _cmd(
        site_sub,
        "show",
        cmd_site_show,
        _("the settings in force: offices, panels, roster, questions, employees"),
    )
    p = _cmd(
        site_sub,
        "export",
        cmd_site_export,
        _("the settings in force as a site file (site apply takes it back unchanged)"),
    )
    p.add_argument(
        "-o", "--output", metavar="FILE.toml", help=_("write to FILE.toml (never overwritten) instead of stdout")
    )

    p = _cmd(
        sub,
        "rebuild",
        cmd_rebuild,
        _("re-derive polls and force-majeure reports from the raw events"),
        _(
            "Drop every derived row (polls, force-majeure reports, unsolicited presses, anomalies) and "
            "derive them again from the stored raw events and the settings history. Safe at any time: "
            "raw events and expert verdicts are kept (verdicts refer to site/device/seq ids). Panels are "
            "derived in parallel worker processes (--jobs), each a chunk of events at a time, so memory "
            "stays bounded whatever the store's size."
        ),
    )
    p.add_argument(
        "--jobs",
        type=int,
        metavar="N",
        help=_("worker processes (default: the CPU count on PostgreSQL, 1 on SQLite, which has one writer)"),
    )


def _register_counts(sub):
    _g, cnt = group(
        sub,
        "counts",
        _("transactions and visitors (exact conversion, visitor coverage)"),
        _(
            "External counts per office (or panel) and interval: sales from the point of sale, "
            "visitors from a people counter. They also arrive on the MQTT counts topic."
        ),
    )
    p = _cmd(
        cnt,
        "import",
        cmd_counts_import,
        _("import a counts CSV (idempotent)"),
        _(
            'CSV with a header row, `,` or `;` between values (Russian Excel\'s "CSV UTF-8" as it is); columns:\n'
            "  site          office id (one of the site file's)\n"
            "  device        panel id, or empty for the whole office (optional column)\n"
            "  from, to      interval [from, to): 2025-01-06T09:00 or 06.01.2025 09:00 in the office's\n"
            "                timezone, ISO 8601 with offset (2025-01-06T09:00:00+03:00), or epoch ms\n"
            "  transactions  sales in the interval (may be empty; 1 234 and 12,0 are read)\n"
            "  visitors      people counted (may be empty)\n"
            "Re-importing the same file changes nothing; a corrected line overwrites its interval.\n"
            "A file with any bad line imports nothing and every problem is listed with its line."
        ),
    )
    p.add_argument("file", metavar="FILE.csv")
    p = _cmd(
        cnt,
        "list",
        cmd_counts_list,
        _("the stored counts: office, panel, interval, transactions, visitors, source"),
    )
    p.add_argument("--site", metavar="ID", help=_("only this office (site id)"))
    p.add_argument("--from", dest="start", metavar="TIME", help=_("intervals ending after TIME; ") + _(TIME_HELP))
    p.add_argument("--to", dest="end", metavar="TIME", help=_("intervals starting before TIME (a date: to its end)"))


def _register_report(sub):
    p = _cmd(
        sub,
        "report",
        cmd_report,
        _("KPI report: DI-staff, DI-office, ELI, conversion, coverage, FM rate"),
        _(
            "Every KPI of the method (ИНК@Персонал / DI-staff, ИНК@Офис / DI-office, ИЭЛ / ELI, exact "
            "conversion, visitor coverage, force-majeure rate) with n and the 95 % Wilson interval, "
            "the flags (force-majeure rate, coverage/conversion thresholds, unreviewed force-majeure "
            "reports, repaired/arrival times, lost events) and the bottleneck diagnosis per office. "
            "JSON fields: docs/report-json.md."
        ),
    )
    figures = ("di_staff", "di_office", "eli", "exact_conversion", "visitor_coverage", "fm_rate")
    p.add_argument(
        "--by",
        choices=("employee", "device", "site", "region", "question"),
        help=_(
            "one row per employee, panel, office, region (the site file's [[regions]], nested ones rolled "
            "up) or question (default: site; an .xlsx file: every grouping, a sheet each)"
        ),
    )
    p.add_argument(
        "--period",
        choices=("day", "week", "month", "all"),
        help=_("split rows by day, ISO week or month in the office's timezone (default: all; with --pivot: month)"),
    )
    p.add_argument(
        "--from",
        dest="start",
        metavar="TIME",
        help=_(
            "polls opened at/after TIME; %s; without --site, a date or a time without offset is each office's own local time"
        )
        % _(TIME_HELP),
    )
    p.add_argument("--to", dest="end", metavar="TIME", help=_("polls opened before TIME (a date: to its end)"))
    p.add_argument("--site", metavar="ID", help=_("only this office (site id)"))
    p.add_argument("--employee", metavar="ID", help=_("only this person's polls and force-majeure reports"))
    p.add_argument(
        "--sort",
        metavar="KPI",
        choices=figures,
        help=_("rank the rows best first within each period by KPI: %s") % ", ".join(figures),
    )
    p.add_argument(
        "--pivot",
        metavar="KPI",
        choices=figures,
        help=_("a compact table of one KPI: rows x periods (table, csv, json, and a sheet of the .xlsx)"),
    )
    p.add_argument(
        "--k", type=_k, help=_("correction coefficient for silent customers, 0..1 (default: the site file's, else 0.8)")
    )
    p.add_argument(
        "--format",
        choices=("table", "json", "csv", "xlsx", "html", "pdf"),
        help=_(
            "output format (default: from the -o file's extension .txt/.json/.csv/.xlsx/.html/.pdf, else table); "
            "csv: with lang ru `;` and decimal commas, as Russian Excel reads it; html and pdf: the summary as "
            "a document to read or send"
        ),
    )
    p.add_argument("--lang", choices=("ru", "en"), help=_("language (default: the site file's, else ru)"))
    p.add_argument(
        "-o", "--output", metavar="FILE", help=_("write to FILE instead of stdout (the format follows its extension)")
    )
