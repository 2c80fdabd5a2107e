"""What the hostile upstream can do wrong, and how fast it does things right.

`Faults` is swapped whole (it is frozen), so the server thread and a test thread never see half of an
update. Two kinds of fault:
- per call, read when a request arrives: `fail_every`, `stall_seconds`, `lost_create`, and the
  `cancel` modes `refuse` and `ignore` (they act on the cancel call itself);
- per batch, fixed when the batch is created: `corruptions`, `fail_midway`, and the `cancel` modes
  `stay_finalizing` and `unknown_status`. A batch stuck that way stays stuck "forever", even after
  the faults are cleared for the next phase of a test.
"""

from __future__ import annotations

from typing import Literal, get_args

import pydantic

Corruption = Literal[
    "error_string",  # {"error": "boom"} where an object is due
    "json_array",  # the line is a JSON array, not an object
    "custom_id_list",  # "custom_id": [<id>]
    "usage_strings",  # a good-looking response whose usage counts are strings
    "missing_status_code",  # response without status_code
    "missing_line",  # the custom_id simply has no line
    "unknown_custom_id",  # an extra line for a custom_id that was never in the input
    "duplicate_line",  # an earlier good line, written twice
    "truncated_last_line",  # the file ends mid-JSON, without a newline
]
CancelFault = Literal["refuse", "ignore", "stay_finalizing", "unknown_status"]
LostCreate = Literal["500", "503", "drop", "hang"]

ALL_CORRUPTIONS: tuple[Corruption, ...] = get_args(Corruption)
# These replace the good line of one input custom_id each; the others only add lines.
VICTIM_CORRUPTIONS: frozenset[str] = frozenset(ALL_CORRUPTIONS) - {"unknown_custom_id", "duplicate_line"}
# Victims left with no line a parser can attribute to them: they must end in batchway's error file.
UNREADABLE_CORRUPTIONS: frozenset[str] = frozenset(
    {"json_array", "custom_id_list", "missing_line", "truncated_last_line"}
)
ROUTES = (
    "files.create",
    "files.retrieve",
    "files.content",
    "files.delete",
    "batches.create",
    "batches.list",
    "batches.retrieve",
    "batches.cancel",
)


class Faults(pydantic.BaseModel):
    """The scripted misbehaviour; the defaults are a well-behaved upstream."""

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    corruptions: tuple[Corruption, ...] = ()
    cancel: CancelFault | None = None
    fail_midway: bool = False  # per batch: it runs, then ends `failed` (with errors) instead of finishing
    lost_create: LostCreate | None = None
    lost_creates: int = pydantic.Field(1, ge=0, description="create calls per batchway_batch_id that lose it")
    decoy_batches: int = pydantic.Field(150, ge=0, description="newer batches created behind a lost one")
    hang_seconds: float = pydantic.Field(30.0, gt=0, description="`hang` gives up after this long")
    fail_every: int = pydantic.Field(0, ge=0, description="every Nth call of each route answers 503; 0 = off")
    fail_routes: tuple[str, ...] | None = None  # None = every /v1 route
    stall_seconds: float = pydantic.Field(0.0, ge=0)
    stall_routes: tuple[str, ...] | None = None

    @pydantic.field_validator("fail_routes", "stall_routes")
    @classmethod
    def _known_routes(cls, routes: tuple[str, ...] | None) -> tuple[str, ...] | None:
        unknown = set(routes or ()) - set(ROUTES)
        if unknown:
            raise ValueError(f"unknown routes {sorted(unknown)}; known: {', '.join(ROUTES)}")
        return routes


class Timing(pydantic.BaseModel):
    """How long a healthy batch takes: completed about 0.3 s after create by default."""

    model_config = pydantic.ConfigDict(frozen=True)

    validate_seconds: float = pydantic.Field(0.05, ge=0)
    run_seconds: float = pydantic.Field(0.2, gt=0, description="lines finish evenly over this")
    finalize_seconds: float = pydantic.Field(0.05, ge=0)
    cancel_seconds: float = pydantic.Field(0.1, ge=0)
