"""OpenAI `custom_id` ⇄ Anthropic `custom_id`.

Anthropic requires ids that match `^[a-zA-Z0-9_-]{1,64}$` and are unique within the batch (§3.2).
OpenAI accepts any unique string, so some client ids have to be remapped.

Scheme (per line, deterministic, needs nothing from the rest of the batch):
- A client id that already matches the pattern and does NOT start with `REMAP_PREFIX` (compared
  case-insensitively) is sent unchanged.
- Every other id, whether it breaks the pattern or merely starts with the prefix, is sent as
  `REMAP_PREFIX + <line number>`, for example `batchway-line-17`.

Why this never collides: the ids sent unchanged are distinct (batchway enforces unique custom_ids) and
none of them starts with the prefix. The remapped ids all start with the prefix and differ by line
number, which is unique per line. The two sets cannot overlap, even when a client id merely looks like
a remapped one (`batchway-line-3` on line 9 is sent as `batchway-line-9`). The prefix test ignores case,
so the two sets stay apart even if Anthropic compared ids case-insensitively.

Mapping back: a result whose id does not start with the prefix carries the client's id. A remapped id
gives its line number (`remapped_line_number`), and the adapter looks up that line's client id, from
the input file or from a {line: custom_id} map it kept for the remapped lines only
(`client_custom_id`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

ANTHROPIC_CUSTOM_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")
REMAP_PREFIX = "batchway-line-"
_REMAPPED = re.compile(re.escape(REMAP_PREFIX) + r"([1-9][0-9]*)")


def is_anthropic_custom_id(custom_id: str) -> bool:
    """Whether Anthropic accepts `custom_id` as it is."""
    return ANTHROPIC_CUSTOM_ID.fullmatch(custom_id) is not None


def needs_remap(custom_id: str) -> bool:
    """Whether `anthropic_custom_id` sends this client id under a remapped id."""
    return not is_anthropic_custom_id(custom_id) or custom_id[: len(REMAP_PREFIX)].lower() == REMAP_PREFIX


def remapped_custom_id(line_number: int) -> str:
    """The Anthropic id of a remapped line. `line_number` is its 1-based line in the input file
    (anything unique per line in the batch works)."""
    if isinstance(line_number, bool) or not isinstance(line_number, int) or line_number < 1:
        raise ValueError(f"line_number must be a positive integer, not {line_number!r}")
    return f"{REMAP_PREFIX}{line_number}"


def anthropic_custom_id(custom_id: str, line_number: int) -> str:
    """The id to send to Anthropic for the client's `custom_id` on line `line_number`."""
    return remapped_custom_id(line_number) if needs_remap(custom_id) else custom_id


def remapped_line_number(anthropic_id: str) -> int | None:
    """The line number behind a remapped Anthropic id; None for an id sent unchanged."""
    match = _REMAPPED.fullmatch(anthropic_id)
    return int(match.group(1)) if match else None


def client_custom_id(anthropic_id: str, remapped_by_line: Mapping[int, str]) -> str | None:
    """The client's custom_id for an Anthropic result id, given the client ids of the remapped lines.
    None when the id carries the prefix but names no remapped line, which means it is not one we sent."""
    if anthropic_id[: len(REMAP_PREFIX)].lower() != REMAP_PREFIX:
        return anthropic_id
    line_number = remapped_line_number(anthropic_id)
    return remapped_by_line.get(line_number) if line_number is not None else None
