"""Request bodies of the HTTP contract (camelCase on the wire, API.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel


class Body(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class LocationBody(Body):
    latitude: float | None = Field(None, ge=-90, le=90)
    longitude: float | None = Field(None, ge=-180, le=180)
    name: str | None = Field(None, max_length=200)


class StartStreamBody(Body):
    title: str = Field(min_length=1, max_length=200)
    category: str = Field(min_length=1, max_length=64)
    tags: list[str] = Field(default_factory=list, max_length=20)
    language: str = Field("en", min_length=2, max_length=16)
    privacy: Literal["public", "followers", "private"] = "public"
    is_recorded: bool = False
    allow_comments: bool = True
    allow_gifts: bool = True
    is_age_restricted: bool = False
    quality: Literal["auto", "720p", "1080p"] = "auto"
    location: LocationBody | None = None
    schedule_id: str | None = Field(None, max_length=64)


class CommentBody(Body):
    text: str = Field(max_length=2000)


class LikeBody(Body):
    count: int = Field(1, ge=1, le=1000)


class UpdateStreamBody(Body):
    """PATCH: only the fields sent change."""

    title: str | None = Field(None, min_length=1, max_length=200)
    category: str | None = Field(None, min_length=1, max_length=64)
    tags: list[str] | None = Field(None, max_length=20)
    allow_comments: bool | None = None
    allow_gifts: bool | None = None
    privacy: Literal["public", "followers", "private"] | None = None
    slow_mode_seconds: int | None = Field(None, ge=0, le=300)


class ScheduleBody(Body):
    title: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=2000)
    thumbnail_url: str | None = Field(None, max_length=500)
    category: str = Field(min_length=1, max_length=64)
    tags: list[str] = Field(default_factory=list, max_length=20)
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
