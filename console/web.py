"""The console's shell: the FastAPI application, database connections, sessions, CSRF, security
headers and the request context every page and API call works with.

Sessions are signed cookies (itsdangerous, key made once per database by gateway.users.secret)
holding the account id, the account's epoch (a new password or disabling it ends every session)
and a CSRF token; they expire SESSION_MAX_S after sign-in. Every POST carries the token (a
hidden form field, or the X-CSRF-Token header for API calls made with the session) and, when
the browser sends one, an Origin of this site. API calls may instead carry
`Authorization: Bearer <token>` (gateway.users tokens): no cookie, so no CSRF.
"""

import contextlib
import hmac
import os
import secrets
import threading
import time
import urllib.parse

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from itsdangerous import BadSignature, URLSafeTimedSerializer

from console import fmt, i18n
from console.scope import Scope, can
from gateway import db as dbmod
from gateway import schema, users
from gateway import site as site_mod

HERE = os.path.dirname(os.path.abspath(__file__))
COOKIE = "rating_session"
SESSION_MAX_S = 12 * 3600
POOL_SIZE = 6

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    # the video archive lives on the offices' own servers: a browser-playable link is embedded
    "media-src 'self' http: https:; connect-src 'self'; font-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), usb=()",
}


class NeedLogin(Exception):
    """Not signed in (pages: to the sign-in page; API: 401)."""


class Forbidden(Exception):
    """Signed in, but the role may not do this (403); or a form without a valid CSRF token."""

    def __init__(self, key="forbidden"):
        super().__init__(key)
        self.key = key


class NotFound(Exception):
    """Unknown, or outside the account's scope: the same answer for both (404), never a leak."""


class Pool:
    """A few database connections shared by the request threads (one per request)."""

    def __init__(self, url, size=POOL_SIZE):
        self.url, self.size = url, size
        self._free, self._all = [], 0
        self._cond = threading.Condition()

    @contextlib.contextmanager
    def db(self):
        with self._cond:
            while not self._free and self._all >= self.size:
                self._cond.wait()
            if self._free:
                db = self._free.pop()
            else:
                self._all += 1
                db = None
        if db is None:
            try:
                db = dbmod.connect(self.url)
            except BaseException:
                with self._cond:
                    self._all -= 1
                    self._cond.notify()
                raise
        try:
            yield db
        finally:
            with self._cond:
                self._free.append(db)
                self._cond.notify()

    def close(self):
        with self._cond:
            for db in self._free:
                db.close()
            self._free, self._all = [], 0


def now_ms():
    return int(time.time() * 1000)


class Console:
    """What the application keeps between requests."""

    def __init__(self, db_url, lang=None):
        first = schema.open_database(db_url)  # migrations run once, here
        try:
            key = str(users.secret(first, "session-key", now_ms()))
        finally:
            first.close()
        self.pool = Pool(db_url)
        self.default_lang = lang
        self.signer = URLSafeTimedSerializer(key, salt="rating-console-session")
        self.templates = Jinja2Templates(directory=os.path.join(HERE, "templates"))
        self._history = (None, None)
        self._history_lock = threading.Lock()

    def history(self, db):
        """The settings history, read again only when a new revision was applied."""
        rev = site_mod.revision(db)
        with self._history_lock:
            if self._history[0] != rev:
                self._history = (rev, site_mod.load(db))
            return self._history[1]

    # -- sessions --------------------------------------------------------------------------
    def read_session(self, request):
        raw = request.cookies.get(COOKIE)
        if not raw:
            return None
        try:
            data = self.signer.loads(raw, max_age=SESSION_MAX_S)
        except BadSignature:  # also SignatureExpired
            return None
        return data if isinstance(data, dict) and isinstance(data.get("c"), str) else None

    def write_session(self, request, response, data):
        response.set_cookie(
            COOKIE,
            self.signer.dumps(data),
            max_age=SESSION_MAX_S,
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
            path="/",
        )


def _same_origin(request):
    """False when the browser says the request comes from another site."""
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin is None
    parsed = urllib.parse.urlsplit(origin)
    return parsed.netloc == request.headers.get("host", request.url.netloc)


class Ctx:
    """One request: its database connection, account, language, scope and helpers."""

    def __init__(self, console, request, db, user, session, api=False):
        self.console, self.request, self.db, self.user, self.session = console, request, db, user, session
        self.api = api
        self.now_ms = now_ms()
        self.history = console.history(db)
        dep_lang = self.history.deployment(self.now_ms).get("lang")
        self.lang = (user or {}).get("lang") or console.default_lang or dep_lang or "ru"
        if self.lang not in i18n.LANGS:
            self.lang = "ru"
        self.scope = Scope.of(user) if user else Scope()
        self.sites = self.scope.sites(self.history, self.now_ms) if user else frozenset()
        self.csrf = (session or {}).get("c", "")

    @property
    def me(self) -> dict:
        """The signed-in account (handlers that required a capability always have one)."""
        if self.user is None:
            raise NeedLogin()
        return self.user

    def t(self, key, **values):
        return i18n.t(self.lang, key, **values)

    def can(self, capability):
        return bool(self.user) and can(self.user["role"], capability)

    def require(self, capability):
        if not self.can(capability):
            raise Forbidden()

    def allows(self, site):
        return self.sites is None or site in self.sites

    def require_site(self, site):
        if not site or not self.allows(site) or ("site", site) not in self.history.keys("site"):
            raise NotFound()

    def offices(self):
        """[(site id, name)] of the offices in scope, by name."""
        ids = [k for _, k in self.history.keys("site") if self.allows(k)]
        return sorted(((s, self.history.site_name(s)) for s in ids), key=lambda x: x[1])

    def tz(self, site):
        return self.history.tz(site)

    def time(self, ms, site, seconds=True):
        return fmt.time(ms, self.tz(site), self.lang, seconds)

    def check_csrf(self, token):
        if self.api and self.session is None:
            return  # bearer token: no cookie, nothing a foreign page could ride on
        if not self.csrf or not hmac.compare_digest(str(token or ""), self.csrf) or not _same_origin(self.request):
            raise Forbidden("csrf")

    def render(self, name, status_code=200, **values):
        values.update(
            c=self,
            t=self.t,
            fmt=fmt,
            user=self.user,
            lang=self.lang,
            csrf=self.csrf,
            request=self.request,
            path=self.request.url.path,
        )
        return self.console.templates.TemplateResponse(self.request, name, values, status_code=status_code)


@contextlib.contextmanager
def context(request, capability=None, api=False, allow_must_change=False):
    """The request's Ctx; NeedLogin / Forbidden when the account may not be here."""
    console = request.app.state.console
    with console.pool.db() as db:
        session = console.read_session(request)
        user = None
        auth = request.headers.get("authorization", "")
        if api and auth.lower().startswith("bearer "):
            user = users.token_user(db, auth[7:].strip(), now_ms())
            session = None
            if user is None:
                raise NeedLogin()
        elif session and session.get("u"):
            user = users.get(db, session["u"])
            if user is None or user["disabled"] or user["epoch"] != session.get("e"):
                user = None
        if capability is not None and user is None:
            raise NeedLogin()
        c = Ctx(console, request, db, user, session, api=api)
        request.state.lang = c.lang
        if user and user["must_change"] and not allow_must_change and capability is not None:
            raise MustChange()
        if capability not in (None, "signed-in"):
            c.require(capability)
        yield c


class MustChange(Exception):
    """The account must choose a new password before anything else."""


def _error_page(request, status, key):
    console = request.app.state.console
    lang = getattr(request.state, "lang", None) or console.default_lang or "ru"
    html = console.templates.get_template("error.html").render(
        t=lambda k, **v: i18n.t(lang, k, **v), lang=lang, status=status, key=key, user=None, c=None, path=""
    )
    return HTMLResponse(html, status_code=status)


def _is_api(request):
    return request.url.path.startswith("/api/")


def create_app(db_url, lang=None):
    """The console as an ASGI application on the database at `db_url`."""
    from console import alert_rules_page, alerts_page, api, dashboards, drill, office, pages, report_mail

    app = FastAPI(
        title="Rating terminals console API",
        version="1",
        description=(
            "The web console's JSON API: reports, polls, panels and verdicts, with the same "
            "permissions as the pages. Authenticate with the session cookie of a signed-in "
            "account (send its CSRF token as X-CSRF-Token on POST) or with "
            "`Authorization: Bearer <token>` (tokens are made by admins under /admin/tokens)."
        ),
        openapi_url="/api/v1/openapi.json",
        docs_url=None,  # Swagger UI would load from a CDN; /api renders the schema instead
        redoc_url=None,
    )
    app.state.console = Console(db_url, lang)
    app.mount("/static", StaticFiles(directory=os.path.join(HERE, "static")), name="static")

    @app.middleware("http")
    async def headers(request: Request, call_next):
        started = time.perf_counter()
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if request.url.scheme == "https":
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        if not request.url.path.startswith("/static/"):
            response.headers.setdefault("Cache-Control", "no-store")
        response.headers["Server-Timing"] = "app;dur=%.1f" % ((time.perf_counter() - started) * 1000)
        return response

    @app.exception_handler(NeedLogin)
    async def need_login(request: Request, exc: NeedLogin):
        if _is_api(request):
            return JSONResponse(
                {"error": "sign in, or send Authorization: Bearer <token>"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        target = request.url.path + ("?" + request.url.query if request.url.query else "")
        return RedirectResponse("/login?" + urllib.parse.urlencode({"next": target}), status_code=303)

    @app.exception_handler(MustChange)
    async def must_change(request: Request, exc: MustChange):
        if _is_api(request):
            return JSONResponse({"error": "this account must set a new password in the console first"}, 403)
        return RedirectResponse("/account", status_code=303)

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, exc: Forbidden):
        if _is_api(request):
            text = "CSRF token missing or wrong" if exc.key == "csrf" else "your role may not do this"
            return JSONResponse({"error": text}, status_code=403)
        return _error_page(request, 403, exc.key)

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound):
        if _is_api(request):
            return JSONResponse({"error": "not found"}, status_code=404)
        return _error_page(request, 404, "not_found")

    @app.exception_handler(404)
    async def plain_404(request: Request, exc):
        if _is_api(request):
            return JSONResponse({"error": "not found"}, status_code=404)
        return _error_page(request, 404, "not_found")

    app.include_router(pages.router)
    app.include_router(api.router)
    app.include_router(alert_rules_page.router)  # first: /alerts/rules/X is not /alerts/{id}/{action}
    app.include_router(alerts_page.router)
    app.include_router(report_mail.router)
    app.include_router(dashboards.router)
    app.include_router(office.router)
    app.include_router(drill.router)
    app.state.console.templates.env.globals.update(drill_url=drill.url, drill_row_url=drill.row_url)
    return app


def new_csrf():
    return secrets.token_urlsafe(24)
