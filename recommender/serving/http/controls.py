"""Editors' rules over HTTP, behind the write key: ``GET/POST /v1/rules``, ``DELETE /v1/rules/{id}``.

The same rules as ``recommender pin|block|rule`` (:mod:`recommender.controls.rules`): stored in the catalog before
the response, applied by this process's next answer and by other workers within their check interval.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from recommender.controls.rules import Rule
from recommender.serving.http.auth import key_required
from recommender.serving.http.schemas import ErrorResponse
from recommender.serving.service import Service
from recommender.settings import Settings


class RuleRequest(BaseModel):
    """One rule, in the flat shape of the CLI's flags."""

    model_config = ConfigDict(extra="forbid")

    kind: str = Field(description="pin, block or exclude")
    story: str | None = Field(default=None, description="pin: the story whose list gets the pin")
    target: str | None = Field(default=None, description="pin: the story shown; block: the story never shown")
    position: int | None = Field(default=None, description="pin: its place in the list, from 1 (default 1)")
    section: str | None = Field(default=None, description="exclude: never show this section")
    tag: str | None = Field(default=None, description="exclude: never show this tag")
    under: str | None = Field(default=None, description="block/exclude: only in this story's list")
    under_section: str | None = Field(default=None, description="exclude: only under stories of this section")
    under_tag: str | None = Field(default=None, description="exclude: only under stories with this tag")
    until: str | None = Field(default=None, description="expiry: a date (that whole day, UTC), a date-time or 48h")
    note: str | None = Field(default=None, description="why (for the editors)")


def build_rules_router(service: Service, settings: Settings) -> APIRouter:
    router = APIRouter(dependencies=[Depends(key_required(settings))])
    errors: dict[int | str, dict[str, Any]] = {401: {"model": ErrorResponse}, 422: {"model": ErrorResponse}}

    @router.get("/v1/rules", responses=errors)
    def list_rules(expired: bool = False) -> dict[str, Any]:
        """The rules in force (``expired=1``: all of them)."""
        now = datetime.now(UTC)
        rules = [rule.to_dict(now) for rule in service.rules() if expired or rule.active(now)]
        return {"rules": rules, "index_version": service.index_version}

    @router.post("/v1/rules", status_code=201, responses=errors | {404: {"model": ErrorResponse}})
    def add_rule(request: RuleRequest) -> JSONResponse:
        """Store a rule; it shows in every list it touches from the next request on. Durable on 201."""
        now = datetime.now(UTC)
        rule = service.add_rule(Rule.from_request(request.model_dump(exclude_none=True), now))
        return JSONResponse({"rule": rule.to_dict(now), "index_version": service.index_version}, status_code=201)

    @router.delete("/v1/rules/{rule_id}", responses=errors | {404: {"model": ErrorResponse}})
    def delete_rule(rule_id: int) -> dict[str, Any]:
        """Delete a rule; its effect ends with the next request."""
        service.delete_rules([rule_id])
        return {"id": rule_id, "status": "deleted", "index_version": service.index_version}

    return router
