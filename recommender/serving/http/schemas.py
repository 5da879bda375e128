"""Request and response shapes of the HTTP API (what ``/openapi.json`` documents), and its query parameters."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from recommender.settings import MAX_K

Q = TypeVar("Q", bound=BaseModel)


class RelatedQuery(BaseModel):
    """The query parameters of ``GET /v1/articles/{id}/related``, validated in one call
    (:class:`~recommender.serving.http.querymodel.QueryModelRoute`); :func:`related_query` sets k's default.
    Frozen: the route remembers one per query string and hands it to every request with that query string."""

    model_config = ConfigDict(frozen=True)

    k: int = Field(default=5, ge=1, le=MAX_K, description=f"how many stories (1-{MAX_K})")
    section: str | None = Field(default=None, description="only stories of this section")
    language: str | None = Field(default=None, description="only stories in this language (e.g. en)")
    since: datetime | None = Field(default=None, description="only stories published on or after")
    until: datetime | None = Field(default=None, description="only stories published on or before")
    exclude: list[str] = Field(default_factory=list, description="ids never to suggest (repeat or comma-separate)")
    explain: bool = Field(default=False, description='add a "why this?" reason to every suggestion')
    variant: str | None = Field(default=None, max_length=64, description="the ranking variant to read (A/B tests)")
    reader: str | None = Field(
        default=None,
        max_length=128,
        description="an anonymous first-party value (or one per page view): picks the reader's variant by a stable "
        "hash; never stored",
    )


class RelatedHtmlQuery(RelatedQuery):
    """The query parameters of ``GET /v1/articles/{id}/related.html``: the JSON route's, and where links go."""

    url_template: str | None = Field(
        default=None,
        description="link each story to this URL instead of its own, {id} replaced by its id (as the widget's "
        "data-url-template): site-relative or http(s)",
        pattern=r"^(?:https?://|/)[^\s\"'<>]*\{id\}[^\s\"'<>]*$",
        max_length=2048,
    )


def related_query(base: type[Q], k: int) -> type[Q]:
    """``base`` with the server's configured k as k's default."""
    field = Field(default=k, ge=1, le=MAX_K, description=f"how many stories (1-{MAX_K}; {k} when not given)")
    return create_model(base.__name__, __base__=base, k=(int, field))


class RelatedItem(BaseModel):
    id: str
    title: str
    url: str | None
    score: float = Field(description="cosine similarity to the story, higher is closer")
    relevance: float | None = Field(
        default=None,
        description="the ranking score the list is ordered by (cosine blended with keyword evidence and time)",
    )
    published_at: str | None
    section: str | None
    relation: Literal["same-day", "follow-up", "background"] | None = Field(
        default=None, description="how it relates in time to the story (absent when either has no date)"
    )
    pinned: bool = Field(default=False, description="placed by an editor's pin (present only when true)")
    reason: str | None = Field(default=None, description='"why this?" (with explain=1)')


class RelatedResponse(BaseModel):
    article_id: str | None
    related: list[RelatedItem]
    short: bool = Field(description="fewer than k related stories exist above the minimum similarity")
    model: str
    index_version: str
    variant: str | None = Field(default=None, description="the ranking variant read (when reader or variant given)")


class TextQuery(BaseModel):
    text: str | None = Field(default=None, description="free text, e.g. a draft")
    url: str | None = Field(default=None, description="the URL of an indexed page")
    k: int = Field(default=5, ge=1, le=MAX_K)
    section: str | None = None
    language: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    exclude: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def one_of_text_or_url(self) -> TextQuery:
        if bool(self.text and self.text.strip()) == bool(self.url):
            raise ValueError("give exactly one of 'text' or 'url'")
        return self


class WriteResponse(BaseModel):
    id: str
    status: str
    index_version: str


class ErrorBody(BaseModel):
    type: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody
