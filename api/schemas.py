"""Request bodies of the HTTP contract (camelCase on the wire, API.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from pydantic.alias_generators import to_camel

from spaktok.commands.access import AllowedUsers

MAX_TAGS = 20
# a tag as the command models take it (1..40 characters): the body must refuse what they refuse,
# or the refusal surfaces as a 500 when the route builds the command
Tag = Annotated[str, StringConstraints(min_length=1, max_length=40)]


class Body(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class LocationBody(Body):
    latitude: float | None = Field(None, ge=-90, le=90)
    longitude: float | None = Field(None, ge=-180, le=180)
    name: str | None = Field(None, max_length=200)


class StartStreamBody(Body):
    title: str = Field(min_length=1, max_length=200)
    category: str = Field(min_length=1, max_length=64)
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)
    language: str = Field("en", min_length=2, max_length=16)
    privacy: Literal["public", "followers", "private"] = "public"
    is_recorded: bool = False
    allow_comments: bool = True
    allow_gifts: bool = True
    is_age_restricted: bool = False
    quality: Literal["auto", "720p", "1080p"] = "auto"
    location: LocationBody | None = None
    schedule_id: str | None = Field(None, max_length=64)
    allowed_user_ids: AllowedUsers = Field(default_factory=list)  # a private stream's invited viewers


class CommentBody(Body):
    text: str = Field(max_length=2000)


class LikeBody(Body):
    count: int = Field(1, ge=1, le=1000)


class UpdateStreamBody(Body):
    """PATCH: only the fields sent change."""

    title: str | None = Field(None, min_length=1, max_length=200)
    category: str | None = Field(None, min_length=1, max_length=64)
    tags: list[Tag] | None = Field(None, max_length=MAX_TAGS)
    allow_comments: bool | None = None
    allow_gifts: bool | None = None
    privacy: Literal["public", "followers", "private"] | None = None
    slow_mode_seconds: int | None = Field(None, ge=0, le=300)
    allowed_user_ids: AllowedUsers | None = None  # replaces the whole list


class ScheduleBody(Body):
    title: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=2000)
    thumbnail_url: str | None = Field(None, max_length=500)
    category: str = Field(min_length=1, max_length=64)
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)
    scheduled_for: datetime
    notify_followers: bool = True

    @field_validator("scheduled_for")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("give a time zone, e.g. 2026-12-01T20:00:00Z")
        return value


class BanBody(Body):
    user_id: str = Field(min_length=1, max_length=128)
    reason: str | None = Field(None, max_length=500)


class TimeoutBody(BanBody):
    duration_seconds: int = Field(ge=1, le=14 * 24 * 3600)


class ModeratorBody(Body):
    user_id: str = Field(min_length=1, max_length=128)


class ReportBody(Body):
    reason: str = Field(min_length=1, max_length=500)


class GiftBody(Body):
    gift_id: str = Field(min_length=1, max_length=64)
    count: int = Field(1, ge=1, le=99)


class PurchaseBody(Body):
    user_id: str = Field(min_length=1, max_length=128)
    coins: int = Field(gt=0, le=10_000_000)
    payment_ref: str = Field(min_length=1, max_length=128)


class PayoutBody(Body):
    method: Literal["paypal", "bank"]
    amount_usd: str = Field(pattern=r"^\d{1,9}(\.\d{1,2})?$", description="dollars, at most two decimals")


class CompletePayoutBody(Body):
    provider_ref: str = Field("", max_length=128)


class FailPayoutBody(Body):
    reason: str = Field(min_length=1, max_length=500)


class BattleBody(Body):
    stream_id: str = Field(min_length=1, max_length=64)
    opponent_stream_id: str = Field(min_length=1, max_length=64)
    duration_seconds: int | None = Field(None, ge=1, description="default and bounds from settings")


class SuspendStreamBody(Body):
    """Platform enforcement (API.md): why the platform team ends this live stream."""

    reason: str = Field(min_length=1, max_length=500)


class AccountSuspensionBody(Body):
    """`until` absent: suspended until reinstated."""

    reason: str = Field(min_length=1, max_length=500)
    until: datetime | None = None

    @field_validator("until")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("give a time zone, e.g. 2026-12-31T00:00:00Z")
        return value


class ResolveReportBody(Body):
    action: Literal["dismiss", "suspend-stream", "suspend-user"]
    note: str | None = Field(None, max_length=1000)
