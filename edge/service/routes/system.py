"""The service itself: health, metrics, the customer prompts in three languages, the OpenAPI document and its
viewer (all need a key)."""
from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import JSONResponse, Response

from edge.service import schemas as S
from edge.service.console.i18n import prompt_texts
from edge.service.deps import Anyone, RuntimeDep
from edge.service.errors import ERROR_RESPONSES
from edge.service.metrics import CONTENT_TYPE_LATEST

router = APIRouter()


@router.get("/openapi.json", include_in_schema=False)
def openapi(request: Request, caller: Anyone):
    return JSONResponse(request.app.openapi())


@router.get("/docs", include_in_schema=False)
def docs(caller: Anyone):
    return get_swagger_ui_html(openapi_url="/openapi.json", title="biogate API")


@router.get("/healthz", response_model=S.Health, tags=["service"], responses=ERROR_RESPONSES)
def healthz(runtime: RuntimeDep, caller: Anyone):
    return runtime.health()


@router.get("/v1/prompts/{lang}", tags=["service"], responses=ERROR_RESPONSES)
def prompts(lang: Literal["en", "ru", "kk"], caller: Anyone) -> dict[str, str]:
    """The customer prompts (the session's `prompt` codes) in English, Russian or Kazakh, for the terminal's
    screen: `prompt.<code>`, with `{finger}` filled from `finger.<position>` for place_finger:<position>."""
    return prompt_texts(lang)


@router.get("/metrics", tags=["service"], response_class=Response, responses=ERROR_RESPONSES)
def metrics(runtime: RuntimeDep, caller: Anyone):
    return Response(runtime.metrics.render(), media_type=CONTENT_TYPE_LATEST)
