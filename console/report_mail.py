"""The scheduled reports that are not getting through (`/report-mail`): the report mails the
SMTP server has not taken (recipients, schedule, attempts, last error, next try) and the
schedules whose report could not be built, with "retry now". Admins see every schedule's; any
other account sees its own schedules' (`rating reports schedule add --user NAME`). Reads and
writes through gateway/reportmail.py (its tables are its own); the retry talks to the SMTP
server of the site file's [alerts.email] as `rating reports send-due` does."""

import re

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

from console import fmt
from console.web import NotFound, context
from gateway import reportmail

router = APIRouter(include_in_schema=False)


def _owner(c):
    """The username whose schedules the account sees; None for admins (every schedule)."""
    return None if c.me["role"] == "admin" else c.me["username"]


def _tz(c):
    """The zone the page's times are shown in: the account's first office's, else the deployment's."""
    sites = sorted(c.sites) if c.sites else []
    return c.history.home_tz(sites[0] if sites else None, c.now_ms)


def _result(c, params, rows):
    """The message after a retry (?sent=N or ?failed=N), from the row's own last error."""
    for key in ("sent", "failed"):
        value = params.get(key) or ""
        if re.fullmatch(r"\d{1,12}", value):
            if key == "sent":
                return "ok", c.t("rm_sent", id=value)
            error = next((r["last_error"] for r in rows if r["id"] == int(value)), "") or ""
            return "error", c.t("rm_failed", id=value, error=error)
    return None


@router.get("/report-mail")
def report_mail_page(request: Request):
    with context(request, "signed-in") as c:
        owner = _owner(c)
        rows = reportmail.failing(c.db, owner)
        tz = _tz(c)
        return c.render(
            "report_mail.html",
            rows=rows,
            admin=owner is None,
            result=_result(c, request.query_params, rows),
            when=lambda ms: fmt.time(ms, tz, c.lang, seconds=False),
            zone=str(tz),
        )


@router.post("/report-mail/{row_id}/retry")
async def report_mail_retry(request: Request, row_id: int):
    form = await request.form()
    with context(request, "signed-in") as c:
        c.check_csrf(form.get("csrf"))
        owner = _owner(c)
        if not any(r["id"] == row_id for r in reportmail.failing(c.db, owner)):
            raise NotFound()  # not failing, or another account's schedule: nothing to say about it
        error = reportmail.retry_now(c.db, row_id, c.now_ms, history=c.history)
        key = "failed" if error else "sent"
        return RedirectResponse("/report-mail?%s=%d" % (key, row_id), status_code=303)
