"""The alerts page (`/alerts`): the alerts of the offices in the account's scope, newest first,
with acknowledge and resolve. Reads and writes through gateway/alerts.py (its tables are its
own). Deployment-wide alerts (dead letters) are shown to the roles that see the panel fleet.

Its words are here, in both languages (WORDS), and the rule and severity names come from the
gateway's catalogue (gateway/cli_alerts.py), so the page and `rating alerts` say the same."""

import urllib.parse

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

from console.web import NotFound, context
from gateway import alerts, i18n
from gateway.cli_alerts import RULE_TITLES, SEVERITY_WORDS, STATE_WORDS

router = APIRouter(include_in_schema=False)

# who may acknowledge and resolve: the people who act on panels or on service
ACTORS = ("admin", "expert", "technician", "store-manager")
STATES = ("unresolved", "resolved", "all")

WORDS = {
    "title": ("Оповещения", "Alerts"),
    "state": ("Какие", "Which"),
    "unresolved": ("Незакрытые", "Not resolved"),
    "resolved": ("Закрытые", "Resolved"),
    "all": ("Все", "All"),
    "office": ("Офис", "Office"),
    "all_offices": ("Все мои офисы", "All my offices"),
    "show": ("Показать", "Show"),
    "whole_deployment": ("вся система", "whole deployment"),
    "severity": ("Важность", "Severity"),
    "rule": ("Правило", "Rule"),
    "subject": ("О чём", "Subject"),
    "raised": ("Поднято", "Raised"),
    "status": ("Состояние", "State"),
    "fired": ("срабатываний: %(n)s", "fired %(n)s times"),
    "cleared": ("условие исчезло %(at)s", "condition gone %(at)s"),
    "by": ("%(word)s: %(who)s", "%(word)s by %(who)s"),
    "ack": ("Подтвердить", "Acknowledge"),
    "resolve": ("Закрыть", "Resolve"),
    "none": ("Оповещений нет.", "No alerts."),
    "rules": ("Правила оповещений", "Alert rules"),
}


def _words(lang):
    i = 0 if lang == "ru" else 1
    gettext = i18n.catalogue(lang).gettext

    def w(key, **values):
        text = WORDS[key][i]
        return text % values if values else text

    def g(message):
        return gettext(message)

    return w, g


def _visible(c, row):
    return c.allows(row["site"]) if row["site"] is not None else c.can("fleet")


@router.get("/alerts")
def alerts_page(request: Request, state: str = "unresolved", site: str = ""):
    with context(request, "signed-in") as c:
        if state not in STATES:
            state = "unresolved"
        if site:
            c.require_site(site)
        sites = {site} if site else c.sites
        rows = [r for r in alerts.listing(c.db, None if state == "all" else state, sites, 200) if _visible(c, r)]
        w, g = _words(c.lang)
        return c.render(
            "alerts.html",
            rows=rows,
            state=state,
            site=site,
            states=STATES,
            offices=c.offices(),
            w=w,
            g=g,
            rule_titles=RULE_TITLES,
            severity_words=SEVERITY_WORDS,
            state_words=STATE_WORDS,
            may_act=c.user is not None and c.user["role"] in ACTORS,
            urlencode=urllib.parse.urlencode,
        )


@router.post("/alerts/{alert_id}/{action}")
async def alerts_action(request: Request, alert_id: int, action: str):
    form = await request.form()
    with context(request, "signed-in") as c:
        c.check_csrf(form.get("csrf"))
        row = alerts.get(c.db, alert_id)
        if action not in ("ack", "resolve") or row is None or not _visible(c, row):
            raise NotFound()
        if c.me["role"] not in ACTORS:
            raise NotFound()
        if row["resolved_ms"] is None:
            getattr(alerts, action)(c.db, alert_id, c.me["username"], c.now_ms)
        back = str(form.get("next") or "/alerts")
        return RedirectResponse(back if back.startswith("/alerts") else "/alerts", status_code=303)
