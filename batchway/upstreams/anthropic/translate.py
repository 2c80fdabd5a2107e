"""OpenAI ⇄ Anthropic translation for the Anthropic Message Batches adapter: one import point.

- `translate_request` (+ `translate_messages`): OpenAI chat/completions body → Anthropic Messages
  `params` (§4.1); `UntranslatableRequest` when it has no faithful translation.
- `translate_result`: Anthropic result → OpenAI `chat.completion` body and `ResultLine` (§4.2, §4.3).
- `custom_ids`: client custom_id ⇄ an id Anthropic accepts (its docstring describes the scheme).

All of it is pure: no I/O and no SDK calls.
"""

from batchway.upstreams.anthropic.custom_ids import (
    REMAP_PREFIX,
    anthropic_custom_id,
    client_custom_id,
    is_anthropic_custom_id,
    needs_remap,
    remapped_custom_id,
    remapped_line_number,
)
from batchway.upstreams.anthropic.translate_request import to_anthropic_params
from batchway.upstreams.anthropic.translate_result import result_line_from_anthropic, to_openai_completion
from batchway.upstreams.anthropic.untranslatable import UntranslatableRequest
from batchway.upstreams.result_line import UnreadableResult

__all__ = [
    "REMAP_PREFIX",
    "UnreadableResult",
    "UntranslatableRequest",
    "anthropic_custom_id",
    "client_custom_id",
    "is_anthropic_custom_id",
    "needs_remap",
    "remapped_custom_id",
    "remapped_line_number",
    "result_line_from_anthropic",
    "to_anthropic_params",
    "to_openai_completion",
]
