"""The console's pages (server-rendered HTML). Every handler opens the request context
(`web.context`), which signs the visitor in or sends them to /login, checks the role's
capability and knows the account's scope; out-of-scope offices and unknown ids are 404."""

import datetime
import urllib.parse

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

from console import data, queue, web
from console.web import NotFound, context, new_csrf
from gateway import review, users

router = APIRouter(include_in_schema=False)


def _redirect(url):
    return RedirectResponse(url, status_code=303)


async def _form(request):
    form = await request.form()
    return {k: form.get(k) for k in form}, form


def _safe_next(target):
    """Only a path of this site (no //host, no scheme): nothing to bounce a visitor elsewhere."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


# --- sign-in ------------------------------------------------------------------------------------


def _login_page(c, next_url, errors=None, username="", status=200):
    return c.render("login.html", status, next=next_url, errors=errors or {}, username=username)


@router.get("/login")
def login_form(request: Request, next: str = "/"):
    with context(request) as c:
        if c.user:
            return _redirect(_safe_next(next))
        if not c.session:
            c.session = {"c": new_csrf()}
            c.csrf = c.session["c"]
        response = _login_page(c, _safe_next(next))
        c.console.write_session(request, response, c.session)
        return response


@router.post("/login")
async def login(request: Request):
    fields, _ = await _form(request)
    return _login_submit(request, fields)


def _login_submit(request, fields):
    with context(request) as c:
        c.check_csrf(fields.get("csrf"))
        username = (fields.get("username") or "").strip()
        password = fields.get("password") or ""
        next_url = _safe_next(fields.get("next"))
        errors = {}
        if not username:
            errors["username"] = c.t("err_username")
        if not password:
            errors["password"] = c.t("err_password_empty")
        if errors:
            return _login_page(c, next_url, errors, username, 400)
        client = request.client.host if request.client else "?"
        user, wait = users.authenticate(c.db, username, password, client, web.now_ms())
        if wait:
            minutes = max(1, (wait + 59) // 60)
            return _login_page(c, next_url, {"form": c.t("err_login_limit", minutes=minutes)}, username, 429)
        if user is None:
            return _login_page(c, next_url, {"form": c.t("err_login")}, username, 401)
        response = _redirect("/account" if user["must_change"] else next_url)
        # a fresh session (and CSRF token) at sign-in: nothing from before carries over
        c.console.write_session(request, response, {"u": user["id"], "e": user["epoch"], "c": new_csrf()})
        return response


@router.post("/logout")
async def logout(request: Request):
    fields, _ = await _form(request)
    with context(request) as c:
        c.check_csrf(fields.get("csrf"))
        response = _redirect("/login")
        response.delete_cookie(web.COOKIE, path="/")
        return response


# --- home and account -----------------------------------------------------------------------------


def _offices_by_region(c):
    """[(region path or None, [(site, name)])]: the offices in scope under their own region,
    named with the regions above it ("Europe › Russia"); offices outside every region last."""
    tree = c.history.region_tree(c.now_ms)
    groups = {}
    for site, name in c.offices():
        groups.setdefault(c.history.region_of(site, c.now_ms) if tree else None, []).append((site, name))

    def path(rid):
        names, seen = [], set()
        while rid in tree and rid not in seen:
            seen.add(rid)
            names.append(tree[rid]["name"])
            rid = tree[rid]["parent"]
        return " › ".join(reversed(names))

    named = sorted(((path(r), o) for r, o in groups.items() if r in tree), key=lambda g: g[0])
    outside = [o for r, group in groups.items() if r not in tree for o in group]
    return named + ([(None, sorted(outside, key=lambda x: x[1]))] if outside else [])


@router.get("/")
def home(request: Request):
    with context(request, "signed-in") as c:
        return c.render("home.html", offices=c.offices(), groups=_offices_by_region(c))


@router.get("/account")
def account(request: Request):
    with context(request, "signed-in", allow_must_change=True) as c:
        return c.render("account.html", errors={}, done=request.query_params.get("done"))


@router.post("/account/password")
async def account_password(request: Request):
    fields, _ = await _form(request)
    with context(request, "signed-in", allow_must_change=True) as c:
        c.check_csrf(fields.get("csrf"))
        errors = {}
        current, new, again = fields.get("current") or "", fields.get("new") or "", fields.get("again") or ""
        if not users.password_matches(c.db, c.me["id"], current):
            errors["current"] = c.t("err_current_password")
        problem = users.check_password(new, c.me["username"])
        if problem:
            errors["new"] = c.t("err_new_password", min=users.PASSWORD_MIN)
        elif new != again:
            errors["again"] = c.t("err_again")
        elif new == current:
            errors["new"] = c.t("err_same_password")
        if errors:
            return c.render("account.html", 400, errors=errors, done=None)
        user = users.set_password(c.db, c.me["username"], new, c.now_ms)
        response = _redirect("/account?done=password")
        c.console.write_session(request, response, {"u": user["id"], "e": user["epoch"], "c": new_csrf()})
        return response


@router.post("/account/lang")
async def account_lang(request: Request):
    fields, _ = await _form(request)
    with context(request, "signed-in", allow_must_change=True) as c:
        c.check_csrf(fields.get("csrf"))
        lang = fields.get("lang")
        users.set_lang(c.db, c.me["id"], lang if lang in ("ru", "en") else None, c.now_ms)
        return _redirect(_safe_next(fields.get("next") or "/account"))


# --- review ---------------------------------------------------------------------------------------


def _queue_context(c, params):
    flt = data.review_filter(c, params)
    items, counts = data.review_queue(c, flt)
    shown, pages = queue.page(items, flt.page)
    return flt, items, counts, shown, pages


def _weeks(flt):
    """Query strings of the week before and after the filter's range (None without one)."""
    if not (flt.start and flt.end):
        return None
    span = flt.end - flt.start + datetime.timedelta(days=1)
    out = []
    for sign in (-1, 1):
        out.append(
            urllib.parse.urlencode(
                flt.query(
                    page=None,
                    **{"from": (flt.start + sign * span).isoformat(), "to": (flt.end + sign * span).isoformat()},
                )
            )
        )
    return out


def _review_page(c, flt, counts, shown, pages, status=200, **extra):
    employees = sorted(((k, c.history.employee_name(k)) for _, k in c.history.keys("employee")), key=lambda x: x[1])
    values = dict(
        flt=flt,
        items=shown,
        counts=counts,
        pages=pages,
        offices=c.offices(),
        employees=employees,
        qs=urllib.parse.urlencode(flt.query()),
        urlencode=urllib.parse.urlencode,
        weeks=_weeks(flt),
        message=c.request.query_params.get("done"),
        selected=set(),
        bulk_error=None,
    )
    values.update(extra)
    return c.render("review.html", status, **values)


@router.get("/review")
def review_list(request: Request):
    with context(request, "review") as c:
        params = dict(request.query_params)
        flt, _items, counts, shown, pages = _queue_context(c, params)
        return _review_page(c, flt, counts, shown, pages, 400 if flt.errors else 200)


def _neighbours(c, params, ident):
    """(previous id, next pending id, the item's doubt {score, reasons} or None) around `ident`
    in the queue of the filter, in its order."""
    flt = data.review_filter(c, params)
    sampled = [(s, r) for s, r in data.review_sample(c, flt) if not flt.kind or s == flt.kind]
    found = None
    for s, r in sampled:
        if s != "fm" and r.get("doubt") and "poll:" + queue.ident(s, r) == ident:
            found = {"score": r["doubt"], "reasons": r["doubt_reasons"]}
    return queue.neighbours(c.db, queue.ordered(sampled, flt.order), ident) + (found,)


def _item_url(key, qs):
    kind, _, ident = key.partition(":")
    return "/review/%s/%s%s" % (kind, ident, ("?" + qs) if qs else "")


def _item_page(c, kind, site, device, seq, errors=None, status=200, values=None):
    it = data.item(c, kind, site, device, seq)
    params = {k: v for k, v in c.request.query_params.items() if k in queue.Filter.FIELDS}
    qs = urllib.parse.urlencode(params)
    prev_id, next_id, doubt = _neighbours(c, params, kind + ":" + it["id"])
    reasons = data.POLL_REASONS if kind == "poll" else data.FM_REASONS
    return c.render(
        "item.html",
        status,
        it=it,
        errors=errors or {},
        values=values or {},
        reasons=reasons,
        qs=qs,
        prev_url=_item_url(prev_id, qs) if prev_id else None,
        next_url=_item_url(next_id, qs) if next_id else None,
        message=c.request.query_params.get("done"),
        doubt=doubt,
    )


@router.get("/review/{kind}/{site}/{device}/{seq}")
def review_item(request: Request, kind: str, site: str, device: str, seq: int):
    if kind not in ("poll", "fm"):
        raise NotFound()
    with context(request, "review") as c:
        return _item_page(c, kind, site, device, seq)


def _reason(c, fields, reasons):
    choice = fields.get("reason_choice") or ""
    text = (fields.get("reason") or "").strip()
    parts = []
    if choice in reasons:
        parts.append(c.t(choice))
    if text:
        parts.append(text)
    return "; ".join(parts)


@router.post("/review/{kind}/{site}/{device}/{seq}")
async def review_verdict(request: Request, kind: str, site: str, device: str, seq: int):
    if kind not in ("poll", "fm"):
        raise NotFound()
    fields, _ = await _form(request)
    with context(request, "verdict") as c:
        c.check_csrf(fields.get("csrf"))
        ident = review.format_id(site, device, seq)
        data.item(c, kind, site, device, seq)  # 404 before anything else
        verdict = fields.get("verdict") or ""
        allowed = ("valid", "invalid") if kind == "poll" else ("confirm", "reject")
        reasons = data.POLL_REASONS if kind == "poll" else data.FM_REASONS
        errors = {}
        if verdict == "undo":
            try:
                data.undo(c, kind, ident)
            except review.ReviewError:
                errors["verdict"] = c.t("err_nothing_to_undo")
                return _item_page(c, kind, site, device, seq, errors, 400, fields)
            return _redirect(_item_url(kind + ":" + ident, _qs(request)) + _done(request, "undone"))
        if verdict not in allowed:
            errors["verdict"] = c.t("err_verdict")
        reason = _reason(c, fields, reasons)
        if verdict in ("invalid", "reject") and not reason:
            errors["reason"] = c.t("err_reason")
        from_ms = to_ms = None
        if kind == "fm" and verdict == "confirm":
            tz = c.tz(site)
            for name in ("from", "to"):
                text = (fields.get(name) or "").strip()
                if not text:
                    continue
                try:
                    value = web.fmt.parse_local(text, tz)
                except ValueError:
                    errors[name] = c.t("err_datetime")
                    continue
                if name == "from":
                    from_ms = value
                else:
                    to_ms = value
            if from_ms is not None and to_ms is not None and to_ms <= from_ms:
                errors["to"] = c.t("err_period_order")
        if errors:
            return _item_page(c, kind, site, device, seq, errors, 400, fields)
        try:
            data.give_verdict(c, kind, ident, verdict, reason, from_ms, to_ms)
        except review.ReviewError as exc:
            return _item_page(c, kind, site, device, seq, {"verdict": str(exc)}, 400, fields)
        params = {k: v for k, v in request.query_params.items() if k in queue.Filter.FIELDS}
        _prev, nxt, _doubt = _neighbours(c, params, kind + ":" + ident)
        if nxt and fields.get("stay") != "1":
            return _redirect(_item_url(nxt, _qs(request)) + _done(request, "saved"))
        back = "/review" + ("?" + _qs(request) if _qs(request) else "")
        return _redirect(back + ("&" if "?" in back else "?") + "done=saved")


def _qs(request):
    return urllib.parse.urlencode({k: v for k, v in request.query_params.items() if k in queue.Filter.FIELDS})


def _done(request, what):
    return ("&" if _qs(request) else "?") + "done=" + what


@router.post("/review/bulk")
async def review_bulk(request: Request):
    fields, form = await _form(request)
    with context(request, "verdict") as c:
        c.check_csrf(fields.get("csrf"))
        idents = [v for v in form.getlist("item") if isinstance(v, str)]
        verdict = fields.get("verdict") or ""
        back_qs = fields.get("qs") or ""
        reasons = data.FM_REASONS if verdict in ("confirm", "reject") else data.POLL_REASONS
        reason = _reason(c, fields, reasons)
        error = None
        if not idents:
            error = c.t("err_bulk_none")
        elif verdict in ("invalid", "reject") and not reason:
            error = c.t("err_reason")
        if error is None:
            try:
                for ident in idents:  # every item must be in scope before anything is written
                    site = ident.partition(":")[2].split("/")[0]
                    if not c.allows(site):
                        raise NotFound()
                data.bulk(c, idents, verdict, reason)
            except review.ReviewError as exc:
                error = str(exc)
        if error:
            params = dict(urllib.parse.parse_qsl(back_qs))
            flt, _items, counts, shown, pages = _queue_context(c, params)
            return _review_page(
                c, flt, counts, shown, pages, 400, qs=back_qs, bulk_error=error, selected=set(idents), message=None
            )
        return _redirect("/review?" + back_qs + ("&" if back_qs else "") + "done=bulk")


# --- reports --------------------------------------------------------------------------------------


@router.get("/reports")
def reports(request: Request):
    with context(request, "reports") as c:
        kwargs, errors, form = data.report_params(c, dict(request.query_params))
        rep = None if errors else data.with_pos(c, data.build_report(c, kwargs), kwargs)
        return c.render(
            "reports.html",
            400 if errors else 200,
            rep=rep,
            errors=errors,
            form=form,
            offices=c.offices(),
            has_regions=bool(c.history.region_tree(c.now_ms)),
        )


EXPORTS = {
    "csv": ("text/csv; charset=utf-8", "csv"),
    "xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx"),
}


@router.get("/reports/export")
def reports_export(request: Request):
    """The KPI page's report as a file: CSV or an Excel workbook, as `rating report -o` writes
    them (gateway.report_export), with the page's parameters and the account's scope."""
    from fastapi.responses import Response

    from gateway import report_export

    with context(request, "reports") as c:
        params = dict(request.query_params)
        kind = params.pop("format", "")
        if kind not in EXPORTS:
            raise NotFound()
        kwargs, errors, form = data.report_params(c, params)
        if errors:
            return c.render(
                "reports.html",
                400,
                rep=None,
                errors=errors,
                form=form,
                offices=c.offices(),
                has_regions=bool(c.history.region_tree(c.now_ms)),
            )
        rep = data.with_pos(c, data.build_report(c, kwargs), kwargs)
        if kind == "csv":
            body = report_export.csv_bytes(report_export.render_csv(rep))
        else:
            body = report_export.workbook_bytes([rep])
        name = "kpi-%s-%s-%s_%s.%s" % (
            form["site"] or ("regions" if form["by"] == "region" else "offices"),
            form["by"],
            form["from"] or "start",
            form["to"] or "now",
            EXPORTS[kind][1],
        )
        return Response(
            body,
            media_type=EXPORTS[kind][0],
            headers={"Content-Disposition": 'attachment; filename="%s"' % name, "Cache-Control": "no-store"},
        )


# --- fleet ----------------------------------------------------------------------------------------


@router.get("/fleet")
def fleet_page(request: Request, site: str = "", state: str = "", page: int = 1):
    with context(request, "fleet") as c:
        if site:
            c.require_site(site)
        rows, summary, pages, page, letters = data.fleet_page(c, site or None, state or None, page)
        return c.render(
            "fleet.html",
            rows=rows,
            summary=summary,
            pages=pages,
            page=page,
            letters=letters,
            offices=c.offices(),
            site=site,
            state=state,
            urlencode=urllib.parse.urlencode,
        )


# --- admin ----------------------------------------------------------------------------------------


def _region_choices(c):
    """[(region id, name, depth, offices)] of the site file's tree, parents before children."""
    tree = c.history.region_tree(c.now_ms)
    members = c.history.regions(c.now_ms)
    children = {}
    for rid, node in tree.items():
        parent = node["parent"] if node["parent"] in tree else None
        children.setdefault(parent, []).append(rid)
    out = []

    def walk(parent, depth):
        for rid in sorted(children.get(parent, []), key=lambda r: tree[r]["name"]):
            if any(rid == o[0] for o in out):
                continue  # (the site file refuses cycles; never loop on one)
            out.append((rid, tree[rid]["name"], depth, len(members.get(rid, []))))
            walk(rid, depth + 1)

    walk(None, 0)
    return out


def _scope_text(c):
    names = {rid: name for rid, name, _depth, _n in _region_choices(c)}

    def text(account):
        parts = [c.history.site_name(o) for o in account["offices"]]
        parts += ["%s: %s" % (c.t("region"), names.get(r, r)) for r in account["regions"]]
        return ", ".join(parts)

    return text


def _scope_fields(form):
    """(all_offices, offices, regions, errors) of an account form's scope, checked against the
    site file (offices and regions)."""
    offices = [o for o in form.getlist("offices") if isinstance(o, str)]
    regions = [r for r in form.getlist("regions") if isinstance(r, str)]
    return form.get("all_offices") == "1", offices, regions


def _users_page(c, errors=None, values=None, status=200, token=None):
    return c.render(
        "users.html",
        status,
        accounts=users.list_users(c.db),
        tokens=users.list_tokens(c.db),
        errors=errors or {},
        values=values or {},
        roles=users.ROLES,
        offices=c.offices(),
        regions=_region_choices(c),
        scope_text=_scope_text(c),
        new_token=token,
        message=c.request.query_params.get("done"),
    )


def _known(c):
    return {s for s, _ in c.offices()}, set(c.history.region_tree(c.now_ms))


@router.get("/admin/users")
def admin_users(request: Request):
    with context(request, "admin") as c:
        return _users_page(c)


@router.post("/admin/users")
async def admin_add_user(request: Request):
    fields, form = await _form(request)
    with context(request, "admin") as c:
        c.check_csrf(fields.get("csrf"))
        errors = {}
        username = fields.get("username") or ""
        role = fields.get("role") or ""
        all_offices, offices, regions = _scope_fields(form)
        password = fields.get("password") or ""
        try:
            users.check_username(username)
        except users.UserError:
            errors["username"] = c.t("err_account_name")
        if role not in users.ROLES:
            errors["role"] = c.t("err_role")
        else:
            try:
                users.check_scope(role, all_offices, offices, regions, *_known(c))
            except users.UserError:
                errors["scope"] = c.t("err_scope")
        if users.check_password(password, username):
            errors["password"] = c.t("err_new_password", min=users.PASSWORD_MIN)
        if not errors:
            try:
                users.add(
                    c.db,
                    username,
                    password,
                    role,
                    c.now_ms,
                    name=fields.get("name"),
                    all_offices=all_offices,
                    offices=offices,
                    regions=regions,
                    lang=fields.get("lang") or None,
                    must_change=True,
                )
            except users.UserError:
                errors["username"] = c.t("err_account_taken")
        if errors:
            values = dict(fields, offices=offices, regions=regions)
            values.pop("password", None)
            return _users_page(c, errors, values, 400)
        return _redirect("/admin/users?done=added")


def _user_page(c, account, errors=None, values=None, status=200):
    values = values or {
        "name": account["name"],
        "role": account["role"],
        "all_offices": account["all_offices"] and account["role"] != "admin",
        "offices": account["offices"],
        "regions": account["regions"],
    }
    return c.render(
        "user.html",
        status,
        account=account,
        errors=errors or {},
        values=values,
        roles=users.ROLES,
        offices=c.offices(),
        regions=_region_choices(c),
        message=c.request.query_params.get("done"),
    )


@router.post("/admin/users/{username}/password")
async def admin_user_password(request: Request, username: str):
    """A temporary password for someone who forgot theirs: it must be replaced at the next
    sign-in, and the account's open sessions end (users.set_password)."""
    fields, _ = await _form(request)
    with context(request, "admin") as c:
        c.check_csrf(fields.get("csrf"))
        account = users.by_username(c.db, username)
        if account is None:
            raise NotFound()
        password = fields.get("password") or ""
        if users.check_password(password, account["username"]):
            return _user_page(c, account, {"password": c.t("err_new_password", min=users.PASSWORD_MIN)}, status=400)
        users.set_password(c.db, account["username"], password, c.now_ms, must_change=True)
        if account["username"] == c.me["username"]:
            return _redirect("/login")  # your own sessions ended with it
        return _redirect("/admin/users/%s?done=temporary" % urllib.parse.quote(account["username"]))


@router.get("/admin/users/{username}")
def admin_user(request: Request, username: str):
    with context(request, "admin") as c:
        account = users.by_username(c.db, username)
        if account is None:
            raise NotFound()
        return _user_page(c, account)


@router.post("/admin/users/{username}")
async def admin_change_user(request: Request, username: str):
    """A new role, name or scope; the account's sessions end (users.update)."""
    fields, form = await _form(request)
    with context(request, "admin") as c:
        c.check_csrf(fields.get("csrf"))
        account = users.by_username(c.db, username)
        if account is None:
            raise NotFound()
        role = fields.get("role") or ""
        all_offices, offices, regions = _scope_fields(form)
        errors = {}
        if role not in users.ROLES:
            errors["role"] = c.t("err_role")
        else:
            try:
                users.check_scope(role, all_offices, offices, regions, *_known(c))
            except users.UserError:
                errors["scope"] = c.t("err_scope")
        if not errors:
            try:
                users.update(
                    c.db,
                    username,
                    c.now_ms,
                    role=role,
                    name=fields.get("name"),
                    all_offices=all_offices,
                    offices=offices,
                    regions=regions,
                )
            except users.UserError:
                errors["role"] = c.t("err_last_admin")
        if errors:
            values = {
                "name": fields.get("name"),
                "role": role,
                "all_offices": all_offices,
                "offices": offices,
                "regions": regions,
            }
            return _user_page(c, account, errors, values, 400)
        if username == c.me["username"]:
            return _redirect("/login")  # your own role changed: your session ended with it
        return _redirect("/admin/users?done=changed")


@router.post("/admin/users/{username}/state")
async def admin_user_state(request: Request, username: str):
    fields, _ = await _form(request)
    with context(request, "admin") as c:
        c.check_csrf(fields.get("csrf"))
        if users.by_username(c.db, username) is None:
            raise NotFound()
        try:
            users.set_disabled(c.db, username, fields.get("disabled") == "1", c.now_ms)
        except users.UserError:
            return _users_page(c, {"state": c.t("err_last_admin")}, status=400)
        return _redirect("/admin/users?done=state")


@router.post("/admin/tokens")
async def admin_token(request: Request):
    fields, _ = await _form(request)
    with context(request, "admin") as c:
        c.check_csrf(fields.get("csrf"))
        account = fields.get("account") or ""
        errors = {}
        if users.by_username(c.db, account) is None:
            errors["account"] = c.t("err_token_account")
        name = (fields.get("token_name") or "").strip()
        if not 1 <= len(name) <= 80:
            errors["token_name"] = c.t("err_token_name")
        if errors:
            return _users_page(c, errors, fields, 400)
        token, _row = users.create_token(c.db, account, name, c.me["username"], c.now_ms)
        return _users_page(c, token=token)


@router.post("/admin/tokens/{token_id}/revoke")
async def admin_revoke(request: Request, token_id: int):
    fields, _ = await _form(request)
    with context(request, "admin") as c:
        c.check_csrf(fields.get("csrf"))
        try:
            users.revoke_token(c.db, token_id, c.now_ms)
        except users.UserError:
            raise NotFound() from None
        return _redirect("/admin/users?done=revoked")


# --- the API's documentation ------------------------------------------------------------------


@router.get("/api")
def api_docs(request: Request):
    with context(request, "signed-in") as c:
        schema = request.app.openapi()
        ops = []
        for path, methods in sorted(schema.get("paths", {}).items()):
            for method, op in methods.items():
                ops.append(
                    {
                        "method": method.upper(),
                        "path": path,
                        "summary": op.get("summary", ""),
                        "description": op.get("description", ""),
                        "params": [
                            (p["name"], p.get("in"), p.get("description", "")) for p in op.get("parameters", [])
                        ],
                    }
                )
        return c.render("api.html", ops=ops)
