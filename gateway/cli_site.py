"""Subcommands: site apply, rebuild, review (list/poll/fm/history), counts import, report.

Handlers are thin: parse arguments, open the database, call gateway.site / derive / review /
counts / report, print. Heavy imports happen inside the handlers so `rating --help` stays fast.
"""

import argparse
import os
import sys
import time

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


def _fmt_time(ms, tz):
    return times.format_time(ms, tz)


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
    try:
        return site_mod.parse(text, os.path.basename(path))
    except site_mod.SiteFileError as exc:
        raise CliError(
            "%s\n%s" % (exc, _("Fix the file and apply it again; docs/site-file.md describes every field."))
        ) from None


def _change_tz(history, sitefile, kind, key):
    """The timezone a change is shown in: its office's (site, panel, roster), else History.home_tz."""
    site = key.split("/", 1)[0] if kind in ("site", "panel", "roster") else None
    for k, entry_key, _frm, data in sitefile.entries:
        if k == "site" and entry_key == site and data.get("timezone"):
            try:
                return times.zone(data["timezone"])
            except ValueError:
                break
    return history.home_tz(site)


def cmd_site_apply(args):
    from gateway import derive
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
    for kind, key, valid_from, explicit, data in changes:
        when = times.format_time(valid_from, _change_tz(history, sitefile, kind, key))
        what = (_("%(key)s removed from %(when)s") if data is None else _("%(key)s set from %(when)s")) % {
            "key": key,
            "when": when,
        }
        stamped = "" if explicit or sitefile.from_ms is not None else " " + _("(apply time)")
        print("  %-10s %s%s" % (_(KIND_WORDS[kind]), what, stamped))
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


KIND_WORDS = {
    "deployment": N_("deployment"),
    "site": N_("office"),
    "question": N_("question"),
    "employee": N_("employee"),
    "panel": N_("panel"),
    "roster": N_("roster"),
}


def cmd_rebuild(args):
    from gateway import derive

    db = open_db(args.db)
    settings_of(db)
    started = time.monotonic()
    n = derive.rebuild(db, _now_ms())
    polls, fms = derive.totals(db)
    print(
        _("rebuilt %(panels)s: %(polls)s, %(reports)s (%(seconds)s s)")
        % {
            "panels": ngettext("%d panel", "%d panels", n) % n,
            "polls": ngettext("%d poll", "%d polls", polls) % polls,
            "reports": ngettext("%d force-majeure report", "%d force-majeure reports", fms) % fms,
            "seconds": i18n.number(time.monotonic() - started, 1),
        }
    )
    return 0


def cmd_review_list(args):
    from gateway import derive, review

    db = open_db(args.db)
    history = settings_of(db)
    lang = i18n.current()
    share = args.share if args.share is not None else history.deployment(_now_ms()).get("review_share", 0.1)
    local = args.site is None  # several offices: a date is each office's own day (as in report)
    start = _parse_time(args.start, "--from", db, site=args.site, local=local)
    end = _parse_time(args.end, "--to", db, end=True, site=args.site, local=local)
    if times.is_local(start) or times.is_local(end):
        polls, fms = [], []
        for _, site in history.keys("site"):
            tz = history.tz(site)
            p, f = derive.polls_and_reports(db, site, times.at(start, tz), times.at(end, tz))
            polls += p
            fms += f
        polls.sort(key=lambda r: (r["opened_ms"], r["site"], r["device"], r["open_seq"]))
        fms.sort(key=lambda r: (r["start_ms"], r["site"], r["device"], r["seq"]))
    else:
        polls, fms = derive.polls_and_reports(db, args.site, start, end)
    try:
        items = review.sample(polls, fms, share, args.seed)
    except review.ReviewError as exc:
        raise CliError(str(exc)) from None
    verdicts = review.latest(db)
    for stratum, row in items:
        site, device = row["site"], row["device"]
        tz = history.tz(site)
        if stratum == "fm":
            ident = review.format_id(site, device, row["seq"])
            status = review.fm_status(verdicts, site, device, row["seq"])
            print(
                "%-28s %s  %s  %s  %s: %s"
                % (
                    ident,
                    i18n.t(lang, "stratum_fm"),
                    times.format_span(row["start_ms"], row["end_ms"], tz),
                    history.employee_name(row["employee"]) if row["employee"] else "-",
                    i18n.t(lang, "verdict"),
                    i18n.t(lang, status),
                )
            )
        else:
            ident = review.format_id(site, device, row["open_seq"])
            v = verdicts.get((review.POLL, site, device, row["open_seq"]))
            status = v["verdict"] if v else "-"
            print(
                "%-28s %s  %s  %s  %s  %s: %s"
                % (
                    ident,
                    i18n.t(lang, "stratum_" + stratum),
                    _fmt_time(row["opened_ms"], tz),
                    i18n.answer_text(lang, row["answer"]),
                    history.employee_name(row["employee"]) if row["employee"] else "-",
                    i18n.t(lang, "verdict"),
                    i18n.t(lang, status) if status != "-" else "-",
                )
            )
        if row.get("video_url"):
            print("%28s %s: %s" % ("", i18n.t(lang, "video"), row["video_url"]))
    print(
        ngettext(
            "%(n)d item: all No answers, all force-majeure reports, %(share)s of other polls (seed %(seed)s)",
            "%(n)d items: all No answers, all force-majeure reports, %(share)s of other polls (seed %(seed)s)",
            len(items),
        )
        % {"n": len(items), "share": i18n.percent(share), "seed": args.seed}
    )
    return 0


def _by(args):
    return args.by or os.environ.get("RATING_EXPERT") or os.environ.get("USER") or ""


def cmd_review_poll(args):
    from gateway import review

    db = open_db(args.db)
    settings_of(db)
    verdict = "invalid" if args.invalid else "valid"
    try:
        row = review.record(db, review.POLL, args.id, verdict, args.reason, _by(args), _now_ms())
    except review.ReviewError as exc:
        raise CliError(str(exc)) from None
    if row["verdict"] == "invalid":
        said = _("poll %(id)s marked invalid by %(by)s")
    else:
        said = _("poll %(id)s marked valid by %(by)s")
    print(said % {"id": args.id, "by": row["by_name"]})
    return 0


def cmd_review_fm(args):
    from gateway import review

    db = open_db(args.db)
    settings_of(db)
    verdict = "confirm" if args.confirm else "reject"
    try:  # a corrected period is read in the timezone of the report's office
        fm_site = review.parse_id(args.id)[0]
    except review.ReviewError:
        fm_site = None  # record() below says what is wrong with the id
    start = _parse_time(args.start, "--from", db, site=fm_site)
    end = _parse_time(args.end, "--to", db, site=fm_site)
    try:
        row = review.record(db, review.FM, args.id, verdict, args.reason, _by(args), _now_ms(), start, end)
    except review.ReviewError as exc:
        raise CliError(str(exc)) from None
    if row["verdict"] == "confirm":
        said = _("force-majeure report %(id)s confirmed by %(by)s")
    else:
        said = _("force-majeure report %(id)s rejected by %(by)s")
    print(said % {"id": args.id, "by": row["by_name"]})
    return 0


def cmd_review_history(args):
    from gateway import review

    db = open_db(args.db)
    try:
        rows = review.history(db, args.id)
        tz = settings_of(db).home_tz(review.parse_id(args.id)[0])
    except review.ReviewError as exc:
        raise CliError(str(exc)) from None
    if not rows:
        print(_("%s: no verdicts yet") % args.id)
        return 0
    for r in rows:
        period = ""
        if r["from_ms"] is not None or r["to_ms"] is not None:
            period = " " + _("period %(from)s..%(to)s") % {
                "from": times.format_time(r["from_ms"], tz),
                "to": times.format_time(r["to_ms"], tz),
            }
        print(
            "%s  %-8s %-14s %s%s  %s"
            % (
                times.format_time(r["at_ms"], tz),
                _(TARGET_WORDS.get(r["target"], r["target"])),
                _(VERDICT_WORDS.get(r["verdict"], r["verdict"])),
                _("by %s") % r["by_name"],
                period,
                r["reason"] or "",
            )
        )
    print(_("in force: %s") % _(VERDICT_WORDS.get(rows[-1]["verdict"], rows[-1]["verdict"])))
    return 0


TARGET_WORDS = {"poll": N_("poll"), "fm": N_("force majeure")}
VERDICT_WORDS = {
    "valid": N_("valid"),
    "invalid": N_("invalid"),
    "confirm": N_("confirmed"),
    "reject": N_("rejected"),
}


def cmd_counts_import(args):
    from gateway import counts

    db = open_db(args.db)
    settings_of(db)
    try:
        n = counts.import_file(db, args.file, _now_ms())
    except OSError as exc:
        raise CliError(_("cannot read %(path)s: %(error)s") % {"path": args.file, "error": exc.strerror}) from None
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


REPORT_FORMATS = {".csv": "csv", ".xlsx": "xlsx", ".json": "json", ".txt": "table"}


def _report_format(fmt, output):
    """--format, else the one -o's extension names, else table; a mismatch is an error."""
    ext = os.path.splitext(output)[1].lower() if output else ""
    by_ext = REPORT_FORMATS.get(ext)
    if output and fmt is None and by_ext is None:
        raise CliError(
            "cannot tell the format from %r: name the file .csv, .xlsx, .json or .txt, or give --format" % output
        )
    if fmt and by_ext and fmt != by_ext:
        raise CliError("--format %s does not match %s: give one of them, or make them agree" % (fmt, output))
    fmt = fmt or by_ext or "table"
    if fmt == "xlsx" and not output:
        raise CliError("an .xlsx workbook is a file: give -o FILE.xlsx")
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

    from gateway import report_export

    data = next(r for r in reports if r["by"] == by)
    if fmt == "xlsx":
        return report_export.workbook_bytes(reports, pv)
    if fmt == "json":
        return json.dumps(dict(data, pivot=pv) if pv else data, ensure_ascii=False, indent=2) + "\n"
    if fmt == "csv":
        return report_export.render_pivot_csv(pv, data["lang"]) if pv else report_export.render_csv(data)
    return report_export.render_pivot_table(pv, data["lang"]) if pv else report_export.render_table(data)


def cmd_report(args):
    from gateway import report, report_export

    fmt = _report_format(args.format, args.output)
    if args.output:
        _check_output(args.output)  # before the work, not after it
    db = open_db(args.db)
    # without --site, a date (or a time without UTC offset) is each office's own local one
    local = not args.site
    start = _parse_time(args.start, "--from", db, site=args.site, local=local)
    end = _parse_time(args.end, "--to", db, end=True, site=args.site, local=local)
    by = args.by or "site"
    # a workbook holds every grouping unless --by names one
    bys = [args.by] if args.by else (list(report.BYS) if fmt == "xlsx" else [by])
    period = args.period or ("month" if args.pivot else "all")
    try:
        reports = [
            report.build_report(
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
    _register_site(sub)
    _register_review(sub)
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
        sub,
        "rebuild",
        cmd_rebuild,
        _("re-derive polls and force-majeure reports from the raw events"),
        _(
            "Drop every derived row (polls, force-majeure reports, unsolicited presses, anomalies) and "
            "derive them again from the stored raw events and the settings history. Safe at any time: "
            "raw events and expert verdicts are kept (verdicts refer to site/device/seq ids)."
        ),
    )


def _register_review(sub):
    _g, rev = group(
        sub,
        "review",
        _("expert review: sample polls, mark invalid, confirm force majeure"),
        _(
            "The expert checks polls against the video archive. `list` gives the sample, "
            "`poll` and `fm` record verdicts (append-only, with who/when/why), `history` "
            "shows the audit trail of one id."
        ),
    )
    p = _cmd(
        rev,
        "list",
        cmd_review_list,
        _("the stratified sample to check, with video links"),
        _(
            "Every No answer, every force-majeure report and a random share of the other polls, "
            "oldest first, with the video-archive link of each. The random part is stable for a "
            "given --seed (new polls do not reshuffle it)."
        ),
    )
    p.add_argument("--site", help=_("only this office (site id)"))
    p.add_argument("--from", dest="start", metavar="TIME", help=_("polls opened at/after TIME; ") + _(TIME_HELP))
    p.add_argument("--to", dest="end", metavar="TIME", help=_("polls opened before TIME (a date: to its end)"))
    p.add_argument(
        "--share",
        type=_share,
        help=_("share of the other polls to sample, 0..1 (default: deployment.review_share, 0.1)"),
    )
    p.add_argument("--seed", default="0", help=_("sample seed (default 0)"))
    p.add_argument("--lang", choices=i18n.LANGS, help=_("language (default: the site file's)"))

    p = _cmd(
        rev,
        "poll",
        cmd_review_poll,
        _("mark a poll invalid (or valid again)"),
        _(
            "Mark a poll invalid (excluded from every KPI) or --valid to revert. ID is site/device/seq "
            "as `rating review list` shows it."
        ),
    )
    p.add_argument("id", metavar="ID", help=_("poll id: site/device/seq"))
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--invalid", action="store_true", help=_("exclude the poll from the KPIs"))
    g.add_argument("--valid", action="store_true", help=_("count the poll again (reverts --invalid)"))
    p.add_argument("--reason", help=_("why (required with --invalid); kept in the audit trail"))
    p.add_argument("--by", help=_("who gives the verdict (default: $RATING_EXPERT or $USER)"))

    p = _cmd(
        rev,
        "fm",
        cmd_review_fm,
        _("confirm or reject a force-majeure report"),
        _(
            "A confirmed report takes that panel's No answers and silent polls inside the period out "
            "of DI-staff (not DI-office or ELI). --from/--to correct the period when the video shows "
            "it differently."
        ),
    )
    p.add_argument("id", metavar="ID", help=_("report id: site/device/seq of the long press"))
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--confirm", action="store_true", help=_("the force majeure really happened"))
    g.add_argument("--reject", action="store_true", help=_("it did not (the report excludes nothing)"))
    p.add_argument("--from", dest="start", metavar="TIME", help=_("confirmed period start; ") + _(TIME_HELP))
    p.add_argument("--to", dest="end", metavar="TIME", help=_("confirmed period end"))
    p.add_argument("--reason", help=_("why (required with --reject)"))
    p.add_argument("--by", help=_("who gives the verdict (default: $RATING_EXPERT or $USER)"))

    p = _cmd(rev, "history", cmd_review_history, _("every verdict on one poll or report (audit trail)"))
    p.add_argument("id", metavar="ID", help=_("site/device/seq"))


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
            "CSV with a header row; columns:\n"
            "  site          office id\n"
            "  device        panel id, or empty for the whole office (optional column)\n"
            "  from, to      interval [from, to): ISO 8601 with offset (2025-01-06T09:00:00+03:00) or epoch ms\n"
            "  transactions  sales in the interval (may be empty)\n"
            "  visitors      people counted (may be empty)\n"
            "Re-importing the same file changes nothing; a corrected line overwrites its interval.\n"
            "A file with any bad line imports nothing and every problem is listed with its line."
        ),
    )
    p.add_argument("file", metavar="FILE.csv")


def _register_report(sub):
    p = _cmd(
        sub,
        "report",
        cmd_report,
        "KPI report: DI-staff, DI-office, ELI, conversion, coverage, FM rate",
        "Every KPI of the method (ИНК@Персонал / DI-staff, ИНК@Офис / DI-office, ИЭЛ / ELI, exact "
        "conversion, visitor coverage, force-majeure rate) with n and the 95 % Wilson interval, "
        "the flags (force-majeure rate, coverage/conversion thresholds, unreviewed force-majeure "
        "reports, repaired/arrival times, lost events) and the bottleneck diagnosis per office. "
        "JSON fields: docs/report-json.md.",
    )
    figures = ("di_staff", "di_office", "eli", "exact_conversion", "visitor_coverage", "fm_rate")
    p.add_argument(
        "--by",
        choices=("employee", "device", "site", "question"),
        help="one row per employee, panel, office or question (default: site; an .xlsx file: every grouping, "
        "a sheet each)",
    )
    p.add_argument(
        "--period",
        choices=("day", "week", "month", "all"),
        help="split rows by day, ISO week or month in the office's timezone (default: all; with --pivot: month)",
    )
    p.add_argument(
        "--from",
        dest="start",
        metavar="TIME",
        help="polls opened at/after TIME; "
        + TIME_HELP
        + "; without --site, a date or a time without offset is each office's own local time",
    )
    p.add_argument("--to", dest="end", metavar="TIME", help="polls opened before TIME (a date: to its end)")
    p.add_argument("--site", metavar="ID", help="only this office (site id)")
    p.add_argument("--employee", metavar="ID", help="only this person's polls and force-majeure reports")
    p.add_argument(
        "--sort",
        metavar="KPI",
        choices=figures,
        help="rank the rows best first within each period by KPI: %s" % ", ".join(figures),
    )
    p.add_argument(
        "--pivot",
        metavar="KPI",
        choices=figures,
        help="a compact table of one KPI: rows x periods (table, csv, json, and a sheet of the .xlsx)",
    )
    p.add_argument(
        "--k", type=_k, help="correction coefficient for silent customers, 0..1 (default: the site file's, else 0.8)"
    )
    p.add_argument(
        "--format",
        choices=("table", "json", "csv", "xlsx"),
        help="output format (default: from the -o file's extension .txt/.json/.csv/.xlsx, else table); csv: "
        "with lang ru `;` and decimal commas, as Russian Excel reads it",
    )
    p.add_argument("--lang", choices=("ru", "en"), help="language (default: the site file's, else ru)")
    p.add_argument(
        "-o", "--output", metavar="FILE", help="write to FILE instead of stdout (the format follows its extension)"
    )
