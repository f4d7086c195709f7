"""The dashboard's web app (Starlette + Jinja2): pages, the live refresh, the settings post.

Reading and writing shadows goes through a ShadowSource; what a page says comes from
views.py. Settings are plain form posts with a CSRF token (double submit: a random
cookie, SameSite=Strict, and the same value in the form).
"""

import hmac
import re
import secrets
import time
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from ..aws.broker import THING_NAME
from ..common.errors import SpottyError
from . import settings, views

HERE = Path(__file__).parent
CSRF_COOKIE = "spotty_csrf"
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)
LOOPBACK_NAMES = ["127.0.0.1", "localhost", "::1", "[::1]"]
HEADERS = {
    # Scripts only from this server; matplotlib's inline SVG carries style attributes.
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' "
                               "'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; "
                               "form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def create_app(source, refresh_s: float = 5.0, allowed_hosts: list[str] | None = None,
               clock=time.time) -> Starlette:
    """`source`: a ShadowSource (things, has, shadow, set_desired). `allowed_hosts`: the names
    the page may be reached by (the Host header; None for any), against DNS rebinding."""
    env = Environment(loader=FileSystemLoader(HERE / "templates"),
                      autoescape=select_autoescape(default=True))
    env.globals["svg"] = Markup  # the graphs are our own matplotlib output
    env.filters["code"] = _with_code
    templates = Jinja2Templates(env=env)
    parts = env.get_template("_parts.html").module

    def page(request: Request, name: str, context: dict, status: int = 200) -> Response:
        token = _csrf_token(request)
        context = dict(context, csrf=token, refresh_s=refresh_s)
        response = templates.TemplateResponse(request, name, context, status_code=status,
                                              headers=HEADERS)
        response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="strict")
        return response

    async def overview_model() -> views.Overview:
        def read():
            shadows = []
            for thing in source.things():
                try:
                    shadows.append((thing, source.shadow(thing)))
                except SpottyError as e:
                    shadows.append((thing, e))
            return views.overview(shadows, clock())

        return await run_in_threadpool(read)

    async def overview(request: Request) -> Response:
        try:
            model = await overview_model()
        except SpottyError as e:
            return page(request, "problem.html", {"problem": str(e)}, 502)
        return page(request, "overview.html", {"page": model})

    async def overview_live(request: Request) -> Response:
        try:
            model = await overview_model()
        except SpottyError as e:
            return _live({"problem": str(e)})
        return _live({"regions": {"cards": parts.cards(model)}})

    async def known_thing(request: Request) -> str:
        thing = request.path_params["thing"]
        if not THING_NAME.fullmatch(thing) or not await run_in_threadpool(source.has, thing):
            raise HTTPException(404, "no thing named %r here" % thing)
        return thing

    async def device_model(thing: str, **extra) -> views.DevicePage:
        document = await run_in_threadpool(source.shadow, thing)
        return await run_in_threadpool(lambda: views.device(thing, document, clock(), **extra))

    async def device(request: Request) -> Response:
        try:
            thing = await known_thing(request)
            model = await device_model(thing, notice=_saved(request))
        except SpottyError as e:
            return page(request, "problem.html", {"problem": str(e)}, 502)
        return page(request, "device.html", {"page": model})

    async def device_live(request: Request) -> Response:
        try:
            thing = await known_thing(request)
            model = await device_model(thing)
        except SpottyError as e:
            return _live({"problem": str(e)})
        regions = {"card": parts.card(model.card, False), "graphs": parts.graphs(model),
                   "raw": parts.raw(model)}
        regions.update({"status-" + f.key: parts.field_status(f) for f in model.fields})
        values = {f.key: f.value for f in model.fields}
        return _live({"regions": regions, "values": values})

    async def save(request: Request) -> Response:
        form = await request.form()
        if not _csrf_ok(request, form.get("csrf")):
            return page(request, "problem.html", {
                "problem": "This form has expired or came from another site, so nothing was "
                           "changed: reload the page and save again."}, 403)
        posted = {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf"}
        try:
            thing = await known_thing(request)
            document = await run_in_threadpool(source.shadow, thing)
            changes, problems = await run_in_threadpool(settings.read_form, document, posted)
            if problems:
                model = await run_in_threadpool(
                    views.device, thing, document, clock(), posted, problems,
                    "Nothing was sent: correct the fields marked below.")
                return page(request, "device.html", {"page": model}, 400)
            if changes:
                await run_in_threadpool(source.set_desired, thing, changes)
        except SpottyError as e:
            return page(request, "problem.html", {"problem": str(e)}, 502)
        query = "?saved=" + ",".join(changes) if changes else "?saved="
        return RedirectResponse(request.url_for("device", thing=thing).path + query, 303)

    routes = [
        Route("/", overview, name="overview"),
        Route("/live", overview_live),
        Route("/thing/{thing}", device, name="device"),
        Route("/thing/{thing}/live", device_live),
        Route("/thing/{thing}/settings", save, methods=["POST"], name="save"),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts or ["*"])]
    app = Starlette(routes=routes, middleware=middleware,
                    exception_handlers={HTTPException: _not_found(page)})
    return app


def _saved(request: Request) -> str:
    saved = request.query_params.get("saved")
    if saved is None:
        return ""
    keys = [k for k in saved.split(",") if k in settings.FIELDS]  # only names of ours
    if not keys:
        return "Nothing changed: the form already held these values."
    return "Sent: %s. Each shows \u201cpending\u201d until the device reports it." % (
        ", ".join(keys))


def _with_code(text) -> Markup:
    """A message with its `commands` as <code>; everything else escaped."""
    return Markup(re.sub(r"`([^`]+)`", r"<code>\1</code>", str(escape(text))))


def _live(body: dict) -> Response:
    return JSONResponse(body, headers=HEADERS)


def _csrf_token(request: Request) -> str:
    token = request.cookies.get(CSRF_COOKIE, "")
    return token if _TOKEN.fullmatch(token) else secrets.token_urlsafe(32)


def _csrf_ok(request: Request, posted) -> bool:
    cookie = request.cookies.get(CSRF_COOKIE)
    if not cookie or not isinstance(posted, str):
        return False
    return hmac.compare_digest(cookie.encode(), posted.encode())


def _not_found(page):
    async def handler(request: Request, exc: HTTPException) -> Response:
        return page(request, "problem.html", {"problem": exc.detail}, exc.status_code)

    return handler
