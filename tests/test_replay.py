"""Committed histories must replay on the current workflow code: a change that would break running
batches fails here (gate it with `workflow.patched`). Record anew with BATCHWAY_RECORD_HISTORIES=1."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.batch import BatchWorkflow

HISTORIES = sorted((Path(__file__).parent / "replay" / "histories").glob("*.json"))


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_replays_committed_history(path: Path) -> None:
    replayer = Replayer(workflows=[BatchWorkflow], data_converter=pydantic_data_converter)
    await replayer.replay_workflow(WorkflowHistory.from_json("replayed", path.read_text()))


def test_histories_are_committed() -> None:
    assert HISTORIES, "tests/replay/histories is empty"
