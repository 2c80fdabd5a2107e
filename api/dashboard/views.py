"""What the templates show, worked out from the domain's rows (the templates only lay it out)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from markupsafe import Markup

from api.dashboard.svg import Bar, progress_bar
from batchway.clock import now
from batchway.lifecycle import CANCELLABLE, TERMINAL
from batchway.storage.models import BatchRecord

ENDED_AT = ("completed_at", "failed_at", "expired_at", "cancelled_at")
STATUS_TONE = {
    "validating": "busy",
    "in_progress": "busy",
    "finalizing": "busy",
    "cancelling": "warn",
    "completed": "good",
    "failed": "bad",
    "expired": "warn",
    "cancelled": "muted",
}


@dataclass(frozen=True, slots=True)
class BatchView:
    row: BatchRecord

    @property
    def id(self) -> str:
        return self.row.id

    @property
    def status(self) -> str:
        return self.row.status

    @property
    def status_label(self) -> str:
        return self.row.status.replace("_", " ")

    @property
    def tone(self) -> str:
        return STATUS_TONE.get(self.row.status, "muted")

    @property
    def live(self) -> bool:
        return self.row.status not in TERMINAL

    @property
    def cancellable(self) -> bool:
        return self.row.status in CANCELLABLE

    @property
    def done(self) -> int:
        return self.row.completed + self.row.failed

    @property
    def percent(self) -> int:
        return int(100 * self.done / self.row.total) if self.row.total else 0

    @property
    def bar(self) -> Markup:
        return progress_bar(self.row.completed, self.row.failed, self.row.total)

    @property
    def progress_text(self) -> str:
        text = f"{self.done:,} of {self.row.total:,} done"
        return text + (f", {self.row.failed:,} failed" if self.row.failed else "")

    @property
    def ended_at(self) -> int | None:
        return next((getattr(self.row, name) for name in ENDED_AT if getattr(self.row, name)), None)

    @property
    def duration_seconds(self) -> int | None:
        end = self.ended_at or (now() if self.live else None)
        return None if end is None else end - self.row.created_at

    @property
    def tokens(self) -> int:
        return int((self.row.usage or {}).get("total_tokens", 0))

    @property
    def error_messages(self) -> list[str]:
        return [str(error.get("message", "")) for error in self.row.errors or [] if isinstance(error, dict)]


def requests_url(**params: Any) -> str:
    """The requests page with these filters (empty ones left out, so shared URLs stay short)."""
    kept = {name: value for name, value in params.items() if value not in (None, "")}
    return "/dashboard/requests" + (f"?{urlencode(kept)}" if kept else "")


def day_bars(by_day: list[dict[str, Any]], today: str) -> list[Bar]:
    """One bar per day of the month: its tokens, with the day's figures as the bar's title."""
    bars = []
    for index, day in enumerate(by_day):
        number = index + 1
        label = str(number) if number == 1 or number % 5 == 0 or index == len(by_day) - 1 else ""
        tooltip = f"{day['day']}: {day['total_tokens']:,} tokens, {day['requests']:,} requests"
        bars.append(Bar(label, day["total_tokens"], tooltip, highlight=day["day"] == today))
    return bars
