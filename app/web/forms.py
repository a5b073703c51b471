"""Small url-encoded forms of the pages (sign in, organiser actions), read with a byte cap."""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import Request

MAX_FORM_FIELDS = 8
MAX_FORM_BYTES = 16 * 1024


async def small_form(request: Request,
                     max_bytes: int = MAX_FORM_BYTES) -> dict[str, str] | None:
    """The fields of a small url-encoded form, or None when the body is not one.

    The body is read with a byte cap whether or not it declares its length, so a huge or
    endless POST to these pages costs at most `max_bytes` of memory.
    """
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        return None
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > max_bytes):
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            return None
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True,
                          max_num_fields=MAX_FORM_FIELDS, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        return None
    return dict(pairs)
