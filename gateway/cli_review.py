"""Subcommands of the expert at the terminal: review list / poll / fm / batch / history.

`list` gives the sample (filtered with --pending, --kind, --limit; as a table, CSV or JSON);
`poll` and `fm` take several ids and record their verdicts all or nothing; `batch` records a
file of verdicts all or nothing; a verdict that changes nothing (the same verdict and period are
in force) is not recorded. Handlers are thin: gateway.review owns the verdicts.
"""

import argparse
import csv
import io
import json
import os
import sys

from gateway import i18n, times
from gateway.cli_common import CliError, group, open_db, settings_of
from gateway.cli_site import (
    TIME_HELP,
    _cmd,
    _now_ms,
    _parse_time,
    check_range,
    check_site,
    require_settings,
)
from gateway.i18n import N_, _, ngettext

KINDS = ("no", "fm", "random", "doubt")  # doubt: the doubtful polls --risk adds
EXPERT_HELP = N_("who gives the verdict (default: $RATING_EXPERT or $USER)")


def _sample(args, db, history):
    from gateway import derive, review

    share = args.share if args.share is not None else history.deployment(_now_ms()).get("review_share", 0.1)
    local = args.site is None  # several offices: a date is each office's own day (as in report)
    start = _parse_time(args.start, "--from", db, site=args.site, local=local)
    end = _parse_time(args.end, "--to", db, end=True, site=args.site, local=local)
    check_range(start, end)
    if times.is_local(start) or times.is_local(end):
        polls, fms = [], []
        for _kind, site in history.keys("site"):
            tz = history.tz(site)
            p, f = derive.polls_and_reports(db, site, times.at(start, tz), times.at(end, tz))
            polls += p
            fms += f
        polls.sort(key=lambda r: (r["opened_ms"], r["site"], r["device"], r["open_seq"]))
        fms.sort(key=lambda r: (r["start_ms"], r["site"], r["device"], r["seq"]))
    else:
        polls, fms = derive.polls_and_reports(db, args.site, start, end)
    try:
        sample = review.sample(polls, fms, share, args.seed)
    except review.ReviewError as exc:
        raise CliError(str(exc)) from None
    doubts = None
    if args.risk:
        sample, doubts = _risk_first(db, args.site, sample, polls)
    return share, sample, doubts


def _risk_first(db, site, sample, polls):
    """The sample with every doubtful poll added and the riskiest first (gateway/doubt.py)."""
    from gateway import derive, doubt, review

    sites = None if site is None else [site]
    lo = min((p["opened_ms"] for p in polls), default=0) - doubt.DoubtSettings.near_ms
    hi = max((p["opened_ms"] for p in polls), default=0) + doubt.DoubtSettings.near_ms + 1
    # POS matching (branch pos-tx): polls opened with no sale at their till
    from gateway import site as site_mod
    from gateway import transactions

    no_sale = transactions.no_sale_ids(db, site_mod.load(db), sorted({p["site"] for p in polls}), lo, hi)
    doubts = doubt.score(polls, derive.unsolicited_presses(db, sites, lo, hi), no_sale=no_sale)
    return review.risk_first(sample, polls, doubts), doubts


def _item(stratum, row, verdicts, history):
    """One line of the list as plain values (the table, CSV and JSON show the same)."""
    from gateway import review

    site, device = row["site"], row["device"]
    tz = history.tz(site)
    lang = i18n.current()
    out = {
        "id": None,
        "kind": stratum,
        "kind_text": i18n.t(lang, "stratum_" + stratum),
        "time": None,
        "answer": None,
        "employee": row["employee"] or None,
        "employee_name": history.employee_name(row["employee"]) if row["employee"] else None,
        "verdict": None,
        "pending": True,
        "corrected_from": None,
        "corrected_to": None,
        "video_url": row.get("video_url") or None,
    }
    if stratum == "fm":
        out["id"] = review.format_id(site, device, row["seq"])
        out["time"] = times.format_iso(row["start_ms"], tz)
        out["end"] = times.format_iso(row["end_ms"], tz) if row["end_ms"] is not None else None
        out["span_text"] = times.format_span(row["start_ms"], row["end_ms"], tz)
        status = review.fm_status(verdicts, site, device, row["seq"])
        v = verdicts.get((review.FM, site, device, row["seq"]))
        out["verdict"] = None if status == "pending" else status
        if status == "confirmed" and v and (v["from_ms"] is not None or v["to_ms"] is not None):
            start = v["from_ms"] if v["from_ms"] is not None else row["start_ms"]
            end = v["to_ms"] if v["to_ms"] is not None else row["end_ms"]
            out["corrected_from"] = times.format_iso(start, tz)
            out["corrected_to"] = times.format_iso(end, tz) if end is not None else None
            out["corrected_text"] = times.format_span(start, end, tz)
    else:
        out["id"] = review.format_id(site, device, row["open_seq"])
        out["time"] = times.format_iso(row["opened_ms"], tz)
        out["time_text"] = times.format_time(row["opened_ms"], tz)
        out["answer"] = row["answer"]
        v = verdicts.get((review.POLL, site, device, row["open_seq"]))
        out["verdict"] = v["verdict"] if v and v["verdict"] != review.REOPEN else None
    out["pending"] = out["verdict"] is None
    return out


def _table_line(it):
    lang = i18n.current()
    verdict = i18n.t(lang, it["verdict"]) if it["verdict"] else "-"
    who = it["employee_name"] or "-"
    if it["kind"] == "fm":
        line = "%-28s %s  %s  %s  %s: %s" % (
            it["id"],
            it["kind_text"],
            it["span_text"],
            who,
            i18n.t(lang, "verdict"),
            verdict if it["verdict"] else i18n.t(lang, "pending"),
        )
        if it.get("corrected_text"):
            line += "  " + _("corrected period: %s") % it["corrected_text"]
        return line
    return "%-28s %s  %s  %s  %s  %s: %s" % (
        it["id"],
        it["kind_text"],
        it["time_text"],
        i18n.answer_text(lang, it["answer"]),
        who,
        i18n.t(lang, "verdict"),
        verdict,
    )


CSV_COLUMNS = (
    "id",
    "kind",
    "time",
    "end",
    "answer",
    "employee",
    "verdict",
    "corrected_from",
    "corrected_to",
    "video_url",
    "doubt",
    "doubt_reasons",
)


def _cell(value):
    if value is None:
        return ""
    return " ".join(value) if isinstance(value, list) else value


def _csv(items):
    """CSV as Russian Excel reads it when the language is Russian (`;`), else `,`."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n", delimiter=";" if i18n.current() == "ru" else ",")
    w.writerow(CSV_COLUMNS)
    for it in items:
        w.writerow([_cell(it.get(c)) for c in CSV_COLUMNS])
    return buf.getvalue()


def cmd_review_list(args):
    from gateway import review

    if args.limit is not None and args.limit < 1:
        raise CliError(_("--limit must be a whole number >= 1"))
    db = open_db(args.db, create=False)
    history = settings_of(db)
    require_settings(history, args.db)
    check_site(history, args.site)
    share, sample, doubts = _sample(args, db, history)
    verdicts = review.latest(db)
    items = [_item(stratum, row, verdicts, history) for stratum, row in sample]
    if doubts is not None:
        for it in items:
            d = doubts.get(it["id"]) if it["kind"] != "fm" else None
            it["doubt"] = d.score if d is not None else None
            it["doubt_reasons"] = list(d.reasons) if d is not None else []
    if args.kind:
        items = [it for it in items if it["kind"] in args.kind]
    if args.pending:
        items = [it for it in items if it["pending"]]
    total = len(items)
    if args.limit:
        items = items[: args.limit]
    if args.format == "json":
        keep = ("span_text", "time_text", "corrected_text", "kind_text", "employee_name")
        rows = [{k: v for k, v in it.items() if k not in keep} for it in items]
        json.dump(rows, sys.stdout, ensure_ascii=False, indent=1)
        print()
        return 0
    if args.format == "csv":
        sys.stdout.write(_csv(items))
        return 0
    lang = i18n.current()
    for it in items:
        print(_table_line(it))
        if it.get("doubt"):
            why = "; ".join(i18n.t(lang, "doubt_" + r) for r in it["doubt_reasons"])
            print("%28s %s %d: %s" % ("", i18n.t(lang, "stratum_doubt"), it["doubt"], why))
        if it["video_url"]:
            print("%28s %s: %s" % ("", i18n.t(lang, "video"), it["video_url"]))
    print(
        ngettext(
            "%(n)d item: all No answers, all force-majeure reports, %(share)s of other polls (seed %(seed)s)",
            "%(n)d items: all No answers, all force-majeure reports, %(share)s of other polls (seed %(seed)s)",
            len(items),
        )
        % {"n": len(items), "share": i18n.percent(share), "seed": args.seed}
    )
    if len(items) < total:
        print(_("(%(shown)d of %(total)d shown: --limit)") % {"shown": len(items), "total": total})
    return 0


def _expert(args):
    return args.expert or os.environ.get("RATING_EXPERT") or os.environ.get("USER") or ""


def _refuse_by(args):
    """`--by` was the expert's name before 0.x; `report --by` groups rows. A verdict is kept
    forever (append-only), so an ambiguous flag is refused with the new name instead of kept as
    an alias that could record a grouping word as an expert."""
    if getattr(args, "by", None) is not None:
        raise CliError(_("--by is now --expert (who gives the verdict): write --expert %s") % args.by)


def _check_ids(db, history, target, idents):
    """CliError for the first id that names no poll/report, listing what exists there."""
    from gateway import derive, review

    sites = [key for _kind, key in history.keys("site")]
    for ident in idents:
        try:
            site, device, seq = review.parse_id(ident)
        except review.ReviewError as exc:
            raise CliError(str(exc)) from None
        if site not in sites:
            raise CliError(
                _("%(id)s: no office %(site)r; the offices are: %(known)s")
                % {"id": ident, "site": site, "known": ", ".join(sites) or "-"}
            )
        panels = [key.split("/", 1)[1] for _kind, key in history.keys("panel") if key.startswith(site + "/")]
        if device not in panels:
            raise CliError(
                _("%(id)s: office %(site)s has no panel %(device)r; its panels are: %(known)s")
                % {"id": ident, "site": site, "device": device, "known": ", ".join(panels) or "-"}
            )
        exists = derive.poll_exists if target == review.POLL else derive.report_exists
        if target is not None and not exists(db, site, device, seq):
            if target == review.POLL:
                said = _("%s: no such poll; `rating review list --site %s` shows the ids")
            else:
                said = _("%s: no such force-majeure report; `rating review list --site %s --kind fm` shows the ids")
            raise CliError(said % (ident, site))


def _record_all(db, entries, expert, now):
    """Record [(target, id, verdict, reason, from_ms, to_ms)] in one transaction: all or none.
    Returns [(entry, row or None)]: None where the verdict in force already says the same."""
    from gateway import review

    out = []
    try:
        with db.transaction():
            for target, ident, verdict, reason, start, end in entries:
                review.check(target, ident, verdict, reason, expert, start, end)
                if review.unchanged(db, target, ident, verdict, start, end):
                    out.append(((target, ident, verdict), None))
                    continue
                row = review.record(db, target, ident, verdict, reason, expert, now, start, end)
                out.append(((target, ident, verdict), row))
    except review.ReviewError as exc:
        raise CliError(_("%s; nothing recorded") % exc) from None
    return out


SAID = {
    "invalid": N_("poll %(id)s marked invalid by %(by)s"),
    "valid": N_("poll %(id)s marked valid by %(by)s"),
    "confirm": N_("force-majeure report %(id)s confirmed by %(by)s"),
    "reject": N_("force-majeure report %(id)s rejected by %(by)s"),
}
UNCHANGED = {
    "invalid": N_("poll %s is already marked invalid: nothing recorded"),
    "valid": N_("poll %s already counts: nothing recorded"),
    "confirm": N_("force-majeure report %s is already confirmed with this period: nothing recorded"),
    "reject": N_("force-majeure report %s is already rejected: nothing recorded"),
}


def _say(results, expert):
    for (_target, ident, verdict), row in results:
        if row is None:
            print(_(UNCHANGED[verdict]) % ident)
        else:
            print(_(SAID[verdict]) % {"id": ident, "by": row["by_name"]})


def cmd_review_poll(args):
    from gateway import review

    db = open_db(args.db, create=False)
    history = settings_of(db)
    _refuse_by(args)
    _check_ids(db, history, review.POLL, args.ids)
    verdict = "invalid" if args.invalid else "valid"
    entries = [(review.POLL, ident, verdict, args.reason, None, None) for ident in args.ids]
    _say(_record_all(db, entries, _expert(args), _now_ms()), _expert(args))
    return 0


def cmd_review_fm(args):
    from gateway import review

    db = open_db(args.db, create=False)
    history = settings_of(db)
    _refuse_by(args)
    _check_ids(db, history, review.FM, args.ids)
    if (args.start or args.end) and len(args.ids) > 1:
        raise CliError(_("--from/--to correct one report's period: give one id with them"))
    verdict = "confirm" if args.confirm else "reject"
    # a corrected period is read in the timezone of the report's office
    fm_site = review.parse_id(args.ids[0])[0]
    start = _parse_time(args.start, "--from", db, site=fm_site)
    end = _parse_time(args.end, "--to", db, site=fm_site)
    entries = [(review.FM, ident, verdict, args.reason, start, end) for ident in args.ids]
    _say(_record_all(db, entries, _expert(args), _now_ms()), _expert(args))
    return 0


def cmd_review_batch(args):
    from gateway import review_batch

    try:
        with open(args.file, encoding="utf-8", newline="") as f:
            text = f.read()
    except OSError as exc:
        raise CliError(_("cannot read %(path)s: %(error)s") % {"path": args.file, "error": exc.strerror}) from None
    except UnicodeDecodeError:
        raise CliError(_("%s is not UTF-8 text: save it as CSV UTF-8") % args.file) from None
    db = open_db(args.db, create=False)
    history = settings_of(db)
    _refuse_by(args)
    try:
        entries = review_batch.parse(text, lambda site: history.home_tz(site), os.path.basename(args.file))
    except review_batch.BatchError as exc:
        raise CliError(str(exc)) from None
    problems = []
    for line, entry in entries:
        try:
            _check_ids(db, history, entry[0], [entry[1]])
        except CliError as exc:
            problems.append(_("line %(line)d: %(problem)s") % {"line": line, "problem": exc})
    if problems:
        raise CliError(review_batch.BatchError(problems, os.path.basename(args.file)).args[0])
    results = _record_all(db, [e for _line, e in entries], _expert(args), _now_ms())
    _say(results, _expert(args))
    n = sum(1 for _e, row in results if row is not None)
    print(
        ngettext("%(file)s: %(n)d verdict recorded", "%(file)s: %(n)d verdicts recorded", n)
        % {"file": args.file, "n": n}
    )
    return 0


def cmd_review_history(args):
    from gateway import review

    db = open_db(args.db, create=False)
    history = settings_of(db)
    try:
        rows = review.history(db, args.id)
        site, device, seq = review.parse_id(args.id)
    except review.ReviewError as exc:
        raise CliError(str(exc)) from None
    if not rows:
        _check_ids(db, history, None, [args.id])
        from gateway import derive

        if not derive.poll_exists(db, site, device, seq) and not derive.report_exists(db, site, device, seq):
            raise CliError(
                _("%(id)s: no poll or force-majeure report; `rating review list --site %(site)s` shows the ids")
                % {"id": args.id, "site": site}
            )
        print(_("%s: no verdicts yet") % args.id)
        return 0
    tz = history.home_tz(site)
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
    "reopen": N_("pending"),
}


# --- registration -----------------------------------------------------------------------


def _verdict_options(p):
    p.add_argument("--expert", metavar="NAME", help=_(EXPERT_HELP))
    p.add_argument("--by", help=argparse.SUPPRESS)  # refused with a hint: _refuse_by


def _limit(text):
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(_("must be a whole number, got %r") % text) from None


def register(sub):
    from gateway.cli_site import _share

    _g, rev = group(
        sub,
        "review",
        _("expert review: sample polls, mark invalid, confirm force majeure"),
        _(
            "The expert checks polls against the video archive. `list` gives the sample, "
            "`poll` and `fm` record verdicts (append-only, with who/when/why), `batch` records a "
            "file of them, `history` shows the audit trail of one id."
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
            "given --seed (new polls do not reshuffle it). A confirmed report's corrected period "
            "is shown next to it."
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
    p.add_argument(
        "--risk",
        action="store_true",
        help=_("add every doubtful poll and put the riskiest first, with the reasons (gateway/doubt.py)"),
    )
    p.add_argument("--pending", action="store_true", help=_("only what has no verdict yet"))
    p.add_argument(
        "--kind",
        action="append",
        choices=KINDS,
        help=_("only No answers, force-majeure reports or the random share (may be given twice)"),
    )
    p.add_argument("--limit", type=_limit, metavar="N", help=_("at most N items, oldest first"))
    p.add_argument(
        "--format",
        choices=("table", "csv", "json"),
        default="table",
        help=_("output format (csv: `;`-separated when the language is Russian)"),
    )
    p.add_argument("--lang", choices=i18n.LANGS, help=_("language (default: the site file's)"))

    p = _cmd(
        rev,
        "poll",
        cmd_review_poll,
        _("mark polls invalid (or valid again)"),
        _(
            "Mark polls invalid (excluded from every KPI) or --valid to revert. ID is site/device/seq "
            "as `rating review list` shows it; several ids are recorded together or not at all. A poll "
            "whose verdict in force already says the same gets no new verdict."
        ),
    )
    p.add_argument("ids", nargs="+", metavar="ID", help=_("poll id: site/device/seq"))
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--invalid", action="store_true", help=_("exclude the poll from the KPIs"))
    g.add_argument("--valid", action="store_true", help=_("count the poll again (reverts --invalid)"))
    p.add_argument("--reason", help=_("why (required with --invalid); kept in the audit trail"))
    _verdict_options(p)

    p = _cmd(
        rev,
        "fm",
        cmd_review_fm,
        _("confirm or reject force-majeure reports"),
        _(
            "A confirmed report takes that panel's No answers and silent polls inside the period out "
            "of DI-staff (not DI-office or ELI). --from/--to correct the period when the video shows "
            "it differently (one id only). Several ids are recorded together or not at all."
        ),
    )
    p.add_argument("ids", nargs="+", metavar="ID", help=_("report id: site/device/seq of the long press"))
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--confirm", action="store_true", help=_("the force majeure really happened"))
    g.add_argument("--reject", action="store_true", help=_("it did not (the report excludes nothing)"))
    p.add_argument("--from", dest="start", metavar="TIME", help=_("confirmed period start; ") + _(TIME_HELP))
    p.add_argument("--to", dest="end", metavar="TIME", help=_("confirmed period end"))
    p.add_argument("--reason", help=_("why (required with --reject)"))
    _verdict_options(p)

    p = _cmd(
        rev,
        "batch",
        cmd_review_batch,
        _("record a CSV file of verdicts, all or nothing"),
        _(
            "CSV with a header row (`,` or `;`, UTF-8, a BOM is fine); columns:\n"
            "  id       site/device/seq\n"
            "  verdict  invalid | valid (polls), confirm | reject (force-majeure reports)\n"
            "  reason   why (required for invalid and reject)\n"
            "  from, to optional: the corrected period of a confirmed report (office time)\n"
            "Any bad line records nothing; every problem is listed with its line."
        ),
    )
    p.add_argument("file", metavar="FILE.csv")
    _verdict_options(p)

    p = _cmd(rev, "history", cmd_review_history, _("every verdict on one poll or report (audit trail)"))
    p.add_argument("id", metavar="ID", help=_("site/device/seq"))
