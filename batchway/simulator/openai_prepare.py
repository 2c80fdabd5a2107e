"""An OpenAI batch's input, validated and answered once at creation; its result files at the end.

`prepare_input` streams the input file line by line, precomputes every line's result into a scratch
file and keeps only per-line counters in memory. `write_results` later splits the scratch file into
the output and error files once the batch stops.
"""

import itertools
from array import array
from pathlib import Path
from typing import Any

import orjson
import pydantic

from batchway.simulator.lines import simulate_line
from batchway.simulator.openai_objects import Batch, PreparedInput
from batchway.simulator.simulation import det_hex

MAX_BATCH_LINES = 50_000
MAX_VALIDATION_ERRORS = 10
CANCELLED_ERROR = {
    "code": "batch_cancelled",
    "message": "This request was cancelled before it could be executed.",
}
EXPIRED_ERROR = {
    "code": "batch_expired",
    "message": "This request could not be executed before the completion window expired.",
}


def prepare_input(
    input_path: Path, scratch_path: Path, endpoint: str, batch_id: str, created: int
) -> PreparedInput:
    """Validate the input file and precompute every line's result into a scratch file.

    Streams line by line so big files never sit in memory; only per-line counters are kept.
    """
    prepared = PreparedInput()
    seen: set[str] = set()
    with input_path.open("rb") as src, scratch_path.open("wb") as dst:
        for line_no, raw in enumerate(src, start=1):
            if not raw.strip():
                continue
            if prepared.total >= MAX_BATCH_LINES:
                prepared.errors.append(
                    {
                        "code": "too_many_tasks",
                        "message": f"The batch input file has more than {MAX_BATCH_LINES} requests.",
                        "param": None,
                        "line": line_no,
                    }
                )
                break
            result = simulate_line(raw, prepared.total, endpoint, batch_id, created)
            if result.custom_id is not None:
                if result.custom_id in seen and len(prepared.errors) < MAX_VALIDATION_ERRORS:
                    prepared.errors.append(
                        {
                            "code": "duplicate_custom_id",
                            "message": f"The custom_id {result.custom_id!r} is used more than once.",
                            "param": "custom_id",
                            "line": line_no,
                        }
                    )
                seen.add(result.custom_id)
            if prepared.model is None:
                prepared.model = result.model
            dst.write(orjson.dumps(result.line) + b"\n")
            prepared.total += 1
            prepared.custom_ids.append(result.custom_id)
            prepared.ok_prefix.append(prepared.ok_prefix[-1] + int(result.ok))
            prepared.input_tokens_prefix.append(prepared.input_tokens_prefix[-1] + result.input_tokens)
            prepared.output_tokens_prefix.append(prepared.output_tokens_prefix[-1] + result.output_tokens)
    if prepared.total == 0 and not prepared.errors:
        prepared.errors.append(
            {"code": "empty_file", "message": "The batch input file is empty.", "param": None, "line": None}
        )
    return prepared


def write_results(
    batch: Batch, out_path: Path, err_path: Path, unexecuted_error: dict[str, str]
) -> tuple[int, int]:
    """Split the precomputed results into output/error files. Returns (output lines, error lines).

    Lines done before the batch stopped keep their result; the rest get `unexecuted_error`.
    Output order is input order, which is deterministic (OpenAI does not promise any order).
    """
    prepared, done = batch.prepared, batch.done
    n_out = n_err = 0
    with batch.scratch_path.open("rb") as scratch, out_path.open("wb") as out, err_path.open("wb") as err:
        for index, raw in enumerate(itertools.islice(scratch, done)):
            if prepared.ok_prefix[index + 1] > prepared.ok_prefix[index]:
                out.write(raw)
                n_out += 1
            else:
                err.write(raw)
                n_err += 1
        for index in range(done, prepared.total):
            line = {
                "id": "batch_req_" + det_hex(f"{batch.id}:{index}", "line"),
                "custom_id": prepared.custom_ids[index],
                "response": None,
                "error": unexecuted_error,
            }
            err.write(orjson.dumps(line) + b"\n")
            n_err += 1
    return n_out, n_err


class PreparedRecord(pydantic.BaseModel):
    """On-disk form of `PreparedInput`. Written once when the batch is created, never changed."""

    total: int
    model: str | None
    custom_ids: list[str | None]
    ok_prefix: list[int]
    input_tokens_prefix: list[int]
    output_tokens_prefix: list[int]
    errors: list[dict[str, Any]]

    @pydantic.model_validator(mode="after")
    def _consistent_lengths(self) -> "PreparedRecord":
        # request_counts() indexes these by lines done, so a mismatch would fail on every read.
        prefixes = (self.ok_prefix, self.input_tokens_prefix, self.output_tokens_prefix)
        if len(self.custom_ids) != self.total or any(len(p) != self.total + 1 for p in prefixes):
            raise ValueError("per-line lists do not match 'total'")
        return self

    @classmethod
    def dump(cls, prepared: PreparedInput) -> bytes:
        values = {name: getattr(prepared, name) for name in cls.model_fields}
        return orjson.dumps({k: v.tolist() if isinstance(v, array) else v for k, v in values.items()})

    def load(self) -> PreparedInput:
        return PreparedInput(
            total=self.total,
            model=self.model,
            custom_ids=self.custom_ids,
            ok_prefix=array("q", self.ok_prefix),
            input_tokens_prefix=array("q", self.input_tokens_prefix),
            output_tokens_prefix=array("q", self.output_tokens_prefix),
            errors=self.errors,
        )
