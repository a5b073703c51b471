"""`/docs` (Swagger UI) and `/redoc` that work with no internet: their scripts and styles are
served by the app from the `fastapi-offline` package's copies, not fetched from a CDN."""

from __future__ import annotations

from functools import cache
from importlib import resources

from fastapi import APIRouter, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse, Response

router = APIRouter(include_in_schema=False)

ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "favicon.png": "image/png",
}
ASSET_PATH = "/static/docs/"
OAUTH2_REDIRECT = "/docs/oauth2-redirect"


@cache
def _asset(name: str) -> bytes:
    return resources.files("fastapi_offline").joinpath("static", name).read_bytes()


def _root(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


@router.get("/static/docs/{name}")
def docs_asset(name: str) -> Response:
    media_type = ASSETS.get(name)
    if media_type is None:
        return Response("not found", status_code=404, media_type="text/plain")
    return Response(_asset(name), media_type=media_type,
                    headers={"Cache-Control": "public, max-age=86400"})


@router.get("/docs", response_class=HTMLResponse)
def swagger_ui(request: Request) -> HTMLResponse:
    root = _root(request)
    return get_swagger_ui_html(
        openapi_url=root + request.app.openapi_url, title=request.app.title + " · API",
        swagger_js_url=root + ASSET_PATH + "swagger-ui-bundle.js",
        swagger_css_url=root + ASSET_PATH + "swagger-ui.css",
        swagger_favicon_url=root + ASSET_PATH + "favicon.png",
        oauth2_redirect_url=root + OAUTH2_REDIRECT)


@router.get(OAUTH2_REDIRECT, response_class=HTMLResponse)
def swagger_ui_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


@router.get("/redoc", response_class=HTMLResponse)
def redoc(request: Request) -> HTMLResponse:
    root = _root(request)
    return get_redoc_html(
        openapi_url=root + request.app.openapi_url, title=request.app.title + " · API",
        redoc_js_url=root + ASSET_PATH + "redoc.standalone.js",
        redoc_favicon_url=root + ASSET_PATH + "favicon.png", with_google_fonts=False)
