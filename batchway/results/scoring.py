"""Quality scores of successful chat lines, for orgs with the "feedback" feature: pure logic, no I/O.

Every successful `/v1/chat/completions` line gets a heuristic score (`heuristic_score`); a deterministic
sample of them (`judge_sampled`) also gets an LLM judge's grade (`judge_request` → upstream call →
`parse_judge`). Both are in [0, 1]; the request log stores them and SQL aggregates them per provider
and model, the signal a router uses.

Heuristic rules (reason code → factor the score is multiplied by):

- `malformed_response` → 0: the body is not a chat.completion (not an object, `object` other than
  "chat.completion", no or empty `choices`, a choice without a `message`, content that is not text).
- `empty_answer` → 0: no text (content, or an audio answer's transcript), no tool call, no refusal.
- `refusal` → 0.2: `finish_reason` "content_filter", a non-empty `message.refusal`, or an answer
  opening with a refusal: "I can't" / "I'm unable to" / "I'm not able to" / "I won't" then "help" /
  "assist" / "comply", optionally after "I'm sorry, (but)" / "Sorry, (but)" / "I apologize, but"
  (case, "cannot"/"can not", "I am" and curly apostrophes normalized; "I can't help but..." is not one).
  Legitimate refusals score low too: the score measures usable answers, not whether refusing was right.
- `truncated` → 0.5: `finish_reason` "length", cut off by the token limit (often the caller's
  `max_tokens`, hence a milder penalty than an unusable answer).
- `invalid_json` → 0.2: the request's `response_format` is `json_object` or `json_schema` and the text
  does not parse as JSON (or, for `json_object`, is not an object). Not checked on a refusal (its
  penalty covers the missing JSON) nor on an answer without text (a tool call).
- `schema_mismatch` → 0.5: `json_schema` only: the JSON's top level is not an object where the schema
  is an object, or lacks one of the schema's top-level `required` keys (no deeper validation).
- `invalid_tool_arguments` → 0.2: a function tool call (or legacy `function_call`) whose `arguments`
  is not a string holding a JSON object: the caller cannot execute it.
- `unknown_tool` → 0.2: a tool call naming no tool of that kind (function or custom) in the request's
  `tools` (or legacy `functions`).

No rule for a short answer to a long prompt: batch work is full of correct terse answers
(classification, extraction, yes/no), so length says nothing principled about quality.

Combination: each rule counts at most once per choice; a choice scores the product of its reasons'
factors (independent problems compound, and any zero-factor reason zeroes it); the line scores the
mean over its choices (n > 1), rounded to 4 decimals, with the union of the choices' reasons in
rule order. A clean answer scores 1.0 with no reasons.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from batchway.results.judge import JudgeScore, judge_request, judge_sampled, parse_judge
from batchway.results.scoring_rules import (
    MALFORMED_RESPONSE,
    PENALTIES,
    MalformedResponse,
    choice_reasons,
    read_choices,
)

__all__ = [
    "PENALTIES",
    "HeuristicScore",
    "JudgeScore",
    "heuristic_score",
    "judge_request",
    "judge_sampled",
    "parse_judge",
]


@dataclass(frozen=True, slots=True)
class HeuristicScore:
    score: float  # in [0, 1]
    reasons: tuple[str, ...]  # reason codes, empty for a clean answer


def heuristic_score(request_body: dict[str, Any], response_body: dict[str, Any]) -> HeuristicScore:
    """The heuristic score of a chat line's response to its request. Never raises: a body that is not a
    chat.completion scores 0 (`malformed_response`), an unreadable request counts as a bare one."""
    try:
        choices = read_choices(response_body)
    except MalformedResponse:
        return HeuristicScore(0.0, (MALFORMED_RESPONSE,))
    request = request_body if isinstance(request_body, dict) else {}
    per_choice = [choice_reasons(request, choice) for choice in choices]
    score = sum(combined_factor(reasons) for reasons in per_choice) / len(per_choice)
    found = {reason for reasons in per_choice for reason in reasons}
    return HeuristicScore(round(score, 4), tuple(code for code in PENALTIES if code in found))


def combined_factor(reasons: list[str]) -> float:
    # A set: a rule counts once per choice, however many of its tool calls it caught.
    return math.prod(PENALTIES[reason] for reason in set(reasons))
