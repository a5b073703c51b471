"""Domain errors carry their HTTP status and code; one handler turns them into JSON."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

# Retry-After of the 503 while the database cannot be reached (LB_DB_RETRY_AFTER_SECONDS).
DEFAULT_DB_RETRY_AFTER_S = 5


class ErrorBody(BaseModel):
    """Every error response: a stable machine-readable code and a human-readable detail."""

    error: str
    detail: Any


class AppError(Exception):
    status: int = 400
    code: str = "bad_request"

    def __init__(self, detail: Any, *, code: str | None = None, status: int | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail if isinstance(detail, str) else code or self.code)
        self.detail = detail
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.headers = headers or {}


class Unauthorized(AppError):
    status, code = 401, "unauthorized"


class Forbidden(AppError):
    status, code = 403, "forbidden"


class NotFound(AppError):
    status, code = 404, "not_found"


class Conflict(AppError):
    status, code = 409, "conflict"


class TooLarge(AppError):
    status, code = 413, "payload_too_large"


class Invalid(AppError):
    status, code = 422, "invalid"


class QuotaExceeded(AppError):
    status, code = 429, "quota_exceeded"


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries documenting the JSON error body for each status."""
    descriptions = {400: "Bad request", 401: "Missing, unknown or revoked token",
                    403: "Not allowed for this team", 404: "Not found (or not yours)",
                    409: "Conflict with the current state", 413: "Upload over the size cap",
                    422: "Invalid input; every problem listed", 429: "Daily quota used up",
                    503: "The database is unreachable for now; retry after `Retry-After`",
                    507: "The artifact store is full; nothing was stored"}
    return {s: {"model": ErrorBody, "description": descriptions.get(s, "Error")}
            for s in statuses}


def database_unreachable(exc: BaseException) -> bool:
    """A lost or refused connection (PostgreSQL down or restarting, a pool with no connection
    to give, SQLite's lock held past its timeout), as opposed to an error in the statement."""
    if isinstance(exc, PoolTimeout):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    from sqlalchemy.exc import InterfaceError, OperationalError

    return isinstance(exc, OperationalError | InterfaceError)


def install_handlers(app: FastAPI) -> None:
    async def app_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, AppError)
        return JSONResponse({"error": exc.code, "detail": exc.detail}, status_code=exc.status,
                            headers=exc.headers)

    async def validation_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = exc.errors()
        if errors and all(tuple(e.get("loc", ()))[:1] == ("path",) for e in errors):
            # A path that names nothing (an id past the column's range, not a number at all)
            # is a resource that does not exist, like any unknown path.
            where = errors[0]["loc"]
            name = str(where[1]) if len(where) > 1 else "path"
            return JSONResponse({"error": "not_found",
                                 "detail": f"no such {name.removesuffix('_id')}: "
                                           f"{str(errors[0].get('input', ''))[:40]!r}"},
                                status_code=404)
        problems = [{"loc": list(e.get("loc", ())), "message": e.get("msg", "")}
                    for e in errors]
        return JSONResponse({"error": "invalid", "detail": problems}, status_code=422)

    async def http_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: "not_found", 405: "method_not_allowed",
                413: "payload_too_large"}.get(exc.status_code, "http_error")
        return JSONResponse({"error": code, "detail": exc.detail}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    async def database_error(request: Request, exc: Exception) -> JSONResponse:
        if not database_unreachable(exc):
            raise exc  # a bug of ours, or a constraint: a 500, logged as before
        settings = getattr(request.app.state, "settings", None)
        retry_after = getattr(settings, "db_retry_after_seconds", DEFAULT_DB_RETRY_AFTER_S)
        return JSONResponse(
            {"error": "database_unavailable",
             "detail": f"the database cannot be reached ({type(exc).__name__}); nothing was "
                       f"changed by this request; retry in {retry_after} s"},
            status_code=503, headers={"Retry-After": str(retry_after)})

    app.add_exception_handler(AppError, app_error)
    app.add_exception_handler(DBAPIError, database_error)
    app.add_exception_handler(PoolTimeout, database_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    _document_error_bodies(app)


# The body `validation_error` sends. FastAPI documents its own default body for every automatic
# 422 (`{"detail": [{"loc", "msg", "type"}]}`); the reference must describe the real one.
VALIDATION_ERROR_SCHEMA: dict[str, Any] = {
    "title": "HTTPValidationError",
    "type": "object",
    "required": ["error", "detail"],
    "properties": {
        "error": {"type": "string", "enum": ["invalid"]},
        "detail": {"type": "array", "items": {"$ref": "#/components/schemas/ValidationError"}},
    },
}
VALIDATION_PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "ValidationError",
    "type": "object",
    "required": ["loc", "message"],
    "properties": {
        "loc": {"type": "array", "items": {"anyOf": [{"type": "string"},
                                                      {"type": "integer"}]}},
        "message": {"type": "string"},
    },
}


# Answers FastAPI gives before an endpoint runs to any operation that takes a body.
BODY_ERRORS = {"400": "The body could not be parsed (not JSON, or not UTF-8)",
               "413": "Request body over the size cap"}


def _document_error_bodies(app: FastAPI) -> None:
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            if "HTTPValidationError" in components:
                components["HTTPValidationError"] = VALIDATION_ERROR_SCHEMA
                components["ValidationError"] = VALIDATION_PROBLEM_SCHEMA
            components.setdefault("ErrorBody", ErrorBody.model_json_schema())
            error_body = {"application/json": {"schema": {"$ref":
                                                          "#/components/schemas/ErrorBody"}}}
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    if "requestBody" not in operation:
                        continue
                    for status, description in BODY_ERRORS.items():
                        operation["responses"].setdefault(
                            status, {"description": description, "content": error_body})
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
