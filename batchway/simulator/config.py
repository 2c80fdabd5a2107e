"""The simulator's settings: where it keeps state, the key it expects, and how fast things move."""

from pathlib import Path
from typing import Any

import pydantic


class SimulatorConfig(pydantic.BaseModel):
    """Settings shared by every simulated API (OpenAI Files + Batches, Anthropic Message Batches).

    - `data_dir`: where files, batches and their state live; a new simulator on the same directory
      resumes everything by the clock.
    - `api_key`: the key every call must present. None accepts any key; objects are still scoped by
      the key presented, like an OpenAI project or an Anthropic workspace.
    - `validate_seconds`: how long an OpenAI batch stays `validating`. Anthropic batches start
      processing at once, as the real API does.
    - `lines_per_second`: how fast requests finish, one after another in input order (both APIs).
    - `cancel_seconds`: how long a cancel takes: OpenAI `cancelling`, Anthropic `canceling` (both APIs).
    - `window_seconds`: time from creation to expiry, 24 h upstream (both APIs).
    - `stall`: nothing progresses and nothing expires; cancel still works (both APIs).
    - `anthropic_max_requests`: most requests in one Anthropic batch (100,000 upstream).
    - `anthropic_max_body_bytes`: largest Anthropic create body (256 MB upstream), else 413.

    Everything except `data_dir` and `api_key` can change at runtime via `POST /_simulator/config`.
    """

    data_dir: Path
    api_key: str | None = None
    validate_seconds: float = pydantic.Field(default=0.2, ge=0)
    lines_per_second: float = pydantic.Field(default=200.0, gt=0)
    cancel_seconds: float = pydantic.Field(default=0.3, ge=0)
    window_seconds: float = pydantic.Field(default=86400.0, gt=0)
    stall: bool = False
    anthropic_max_requests: int = pydantic.Field(default=100_000, ge=1)
    anthropic_max_body_bytes: int = pydantic.Field(default=256 * 1024 * 1024, ge=1)


class ConfigUpdate(pydantic.BaseModel):
    """Body of `POST /_simulator/config`: only the runtime knobs, never data_dir or api_key."""

    model_config = pydantic.ConfigDict(extra="forbid")

    validate_seconds: float | None = None
    lines_per_second: float | None = None
    cancel_seconds: float | None = None
    window_seconds: float | None = None
    stall: bool | None = None
    anthropic_max_requests: int | None = None
    anthropic_max_body_bytes: int | None = None

    def validated_changes(self, config: SimulatorConfig) -> dict[str, Any]:
        """The knobs to change, validated as part of the whole config (pydantic.ValidationError if not)."""
        changes = self.model_dump(exclude_none=True)
        validated = SimulatorConfig.model_validate({**config.model_dump(), **changes})
        return {name: getattr(validated, name) for name in changes}
