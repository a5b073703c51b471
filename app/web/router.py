"""The pages' static assets."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import Response

router = APIRouter(include_in_schema=False)

STATIC_FILES = {"style.css": "text/css; charset=utf-8",
                "me.js": "text/javascript; charset=utf-8"}


@router.get("/static/{name}")
def static_file(name: str) -> Response:
    media_type = STATIC_FILES.get(name)
    if media_type is None:
        return Response("not found", status_code=404, media_type="text/plain")
    body = resources.files("app.web").joinpath("static", name).read_bytes()
    return Response(body, media_type=media_type,
                    headers={"Cache-Control": "public, max-age=300"})
