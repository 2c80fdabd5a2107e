"""The fan-out phase of BatchWorkflow: a sliding window of chunk activities over the batch's input
(decision 6). A cancel or the end of the completion window stops scheduling at once and cancels the
chunks in flight, which store what their in-flight calls answer within a short grace."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError
from temporalio.workflow import ActivityHandle

with workflow.unsafe.imports_passed_through():
    from activities.fanout import FanoutActivities
    from batchway.contracts import BatchRef, BatchWorkflowInput, ChunkInput, ChunkResult, Outcome
    from workflows.options import CHUNK, PLAN


class FanoutPhase:
    def __init__(self, state: BatchWorkflowInput, chunks_in_flight: int) -> None:
        self.state = state
        self.window = max(1, chunks_in_flight)
        self.running: dict[int, ActivityHandle[ChunkResult]] = {}
        self.last: ChunkResult | None = None  # the newest chunk report, for the progress line
        self.expired = False
        self._stop_sent = False

    async def plan(self) -> None:
        if self.state.chunks is None:
            ref = BatchRef(batch_id=self.state.spec.id)
            self.state.chunks = await workflow.execute_activity_method(
                FanoutActivities.plan_chunks, ref, summary="plan the chunks", **PLAN
            )

    def stopping(self) -> bool:
        state = self.state
        if not self.expired and workflow.now().timestamp() >= state.spec.expires_at:
            self.expired = True
        return state.cancel_requested or self.expired

    async def run(self, on_progress: Callable[[], None]) -> Outcome | None:
        """Run the chunks to the end; None when the run should continue as new first (its history grew
        long): it then stops starting chunks and returns once those in flight are done."""
        state = self.state
        chunks = state.chunks or []
        draining = False
        while True:
            stopping = self.stopping()
            if not stopping and workflow.info().is_continue_as_new_suggested():
                draining = True
            while (
                not stopping
                and not draining
                and len(self.running) < self.window
                and state.next_chunk < len(chunks)
            ):
                self._start(state.next_chunk)
                state.next_chunk += 1
            if not self.running:
                if draining and state.next_chunk < len(chunks):
                    return None
                break
            if stopping and not self._stop_sent:
                self._stop_sent = True
                for handle in self.running.values():
                    handle.cancel()
            await self._wait(stopping)
            self._collect()
            on_progress()
        if state.cancel_requested:
            return "cancelled"
        if self.expired and (self._stop_sent or state.next_chunk < len(chunks)):
            return "expired"
        return "failed" if state.chunks_failed else "completed"

    def _start(self, index: int) -> None:
        state = self.state
        chunk = (state.chunks or [])[index]
        left = max(60.0, state.spec.expires_at - workflow.now().timestamp() + 600)
        self.running[index] = workflow.start_activity_method(
            FanoutActivities.run_chunk,
            ChunkInput(batch_id=state.spec.id, chunk=chunk, stop_at=state.spec.expires_at),
            summary=f"lines {chunk.first_line}-{chunk.last_line}",
            schedule_to_close_timeout=timedelta(seconds=left),
            **CHUNK,
        )

    async def _wait(self, stopping: bool) -> None:
        running = self.running
        if stopping:
            await workflow.wait_condition(lambda: any(h.done() for h in running.values()))
            return
        left = max(1.0, self.state.spec.expires_at - workflow.now().timestamp())
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: any(h.done() for h in running.values()) or self.state.cancel_requested,
                timeout=timedelta(seconds=left),
                timeout_summary="completion window",
            )

    def _collect(self) -> None:
        state = self.state
        for index, handle in list(self.running.items()):
            if not handle.done():
                continue
            del self.running[index]
            try:
                self.last = handle.result()
            except ActivityError as err:
                if not self._stop_sent:  # a chunk cancelled on purpose is not a failure
                    state.chunks_failed += 1
                    workflow.logger.warning("chunk %s of %s failed: %s", index, state.spec.id, err)
                continue
            state.chunks_done += 1
            state.lines_done += chunk_lines(state, index)
            state.resent += self.last.resent
            if self.last.cancel_requested:
                state.cancel_requested = True  # recorded on the row even if the signal was lost


def chunk_lines(state: BatchWorkflowInput, index: int) -> int:
    chunk = (state.chunks or [])[index]
    return chunk.last_line - chunk.first_line + 1
