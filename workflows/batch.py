"""BatchWorkflow: one durable run per batch (workflow id = batch id).

open (row + input checks) -> remote upstream: submit -> poll with durable, backing-off timers -> collect
results -> finalize (result files, totals, final status).

A cancel (the `cancel` signal from the API, the CLI or the Temporal UI, or a workflow cancellation
requested in Temporal) interrupts any wait at once. Every wait has an end: past the deadline batchway
cancels the upstream, and an upstream that ignores a cancel is given up on after the cancel grace, with
whatever results it will still hand over. Only ids and counts pass through here; activities keep the
batch row (the read model) current.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError
from temporalio.workflow import ActivityHandle

with workflow.unsafe.imports_passed_through():
    from activities.notify import NotifyActivities
    from activities.remote import RemoteActivities
    from activities.rows import RowActivities
    from batchway.contracts import (
        CANCEL_SIGNAL,
        PROGRESS_QUERY,
        SA_STATUS,
        WORKFLOW_TYPE,
        BatchRef,
        BatchWorkflowInput,
        CancelUpstreamInput,
        CollectInput,
        CollectResult,
        FinalizeInput,
        FinalizeResult,
        Outcome,
        PollResult,
        Progress,
        SubmitResult,
    )
    from workflows.fanout import FanoutPhase
    from workflows.options import CANCEL, COLLECT, FINALIZE, NOTIFY, OPEN, POLL, SCORE, SUBMIT

# While an upstream winds a cancelled batch down, look again this often.
CANCEL_POLL_SECONDS = 2.0


@workflow.defn(name=WORKFLOW_TYPE)
class BatchWorkflow:
    @workflow.init
    def __init__(self, state: BatchWorkflowInput) -> None:
        self.state = state
        self.status = "validating" if state.phase in ("open", "submit") else "in_progress"
        if state.cancel_requested and state.phase != "finalize":
            self.status = "cancelling"
        self.poll: PollResult | None = None
        self._submit: ActivityHandle[SubmitResult] | None = None
        self._fanout = FanoutPhase(state, state.chunks_in_flight)

    @workflow.signal(name=CANCEL_SIGNAL)
    def cancel(self) -> None:
        self.state.cancel_requested = True

    @workflow.query(name=PROGRESS_QUERY)
    def progress(self) -> Progress:
        state, poll = self.state, self.poll
        if state.chunks is not None:  # fan-out: what the finished chunks account for
            completed, total = state.lines_done, state.chunks[-1].last_line if state.chunks else 0
        else:
            completed, total = (poll.completed, poll.total) if poll else (0, 0)
        return Progress(
            batch_id=state.spec.id,
            phase=state.phase,
            status=self.status,
            upstream_state=poll.state if poll else None,
            completed=completed,
            failed=poll.failed if poll else 0,
            total=total,
            cancel_requested=state.cancel_requested,
            resent=state.resent,
        )

    @workflow.run
    async def run(self, state: BatchWorkflowInput) -> str:
        # The batch runs in its own task: a cancellation requested in Temporal cancels only this (the
        # primary) task, and is turned into the same cancel the signal asks for.
        body = asyncio.create_task(self._advance())
        cancelled_in_temporal = False
        while True:
            try:
                await workflow.wait_condition(body.done)
                break
            except asyncio.CancelledError:
                if workflow.cancellation_reason() is None:
                    raise
                cancelled_in_temporal = True
                self.cancel()
        status = body.result()
        if cancelled_in_temporal:  # the batch ended cleanly; show the run as cancelled in Temporal too
            raise asyncio.CancelledError(f"batch ended {status}")
        return status

    # -- phases ------------------------------------------------------------------------------------------

    async def _advance(self) -> str:
        state = self.state
        ref = BatchRef(batch_id=state.spec.id)
        if state.phase == "open":
            opened = await workflow.execute_activity_method(
                RowActivities.open_batch, state.spec, summary="check the input", **OPEN
            )
            if opened.ok:
                state.phase = "submit" if state.style == "remote" else "execute"
            else:
                state.outcome, state.phase = "failed", "finalize"
        if state.phase == "submit":
            await self._submit_phase(ref)
        if state.phase == "poll":
            await self._poll_phase(ref)
        if state.phase == "execute":
            await self._execute_phase()
        if state.phase == "collect":
            await self._collect_phase()
        ended = await self._finalize()
        await self._after_end(ref, ended)
        return ended.status

    async def _submit_phase(self, ref: BatchRef) -> None:
        """Submit upstream, unless a cancel arrives first (it interrupts a submit stuck in retries)."""
        state = self.state
        result: SubmitResult | None = None
        if not state.cancel_requested:
            if self._submit is None:
                self._submit = workflow.start_activity_method(
                    RemoteActivities.submit_batch,
                    ref,
                    summary="submit to upstream",
                    schedule_to_close_timeout=self._until(state.deadline_at, minimum=60),
                    **SUBMIT,
                )
            submit = self._submit
            await workflow.wait_condition(lambda: submit.done() or state.cancel_requested)
            if not submit.done():
                submit.cancel()
            with contextlib.suppress(ActivityError):  # cancelled by us, or unreachable until the deadline
                result = await submit
        if result is not None:
            if result.ok:
                state.phase = "poll"
                self._show("in_progress")
            else:
                state.outcome, state.phase = "failed", "finalize"
            return
        # Cancelled, or the deadline passed while submitting: an attempt may still have created an
        # upstream batch. Cancel it if so, and poll it until it stops so its finished lines are kept.
        if not state.cancel_requested:
            state.deadline_hit = True
        if await self._cancel_upstream(requested=state.cancel_requested):
            state.phase = "poll"
        else:
            state.outcome, state.phase = ("cancelled" if state.cancel_requested else "expired"), "finalize"

    async def _poll_phase(self, ref: BatchRef) -> None:
        state = self.state
        interval = state.poll_interval_seconds or state.poll_min_seconds
        polls_this_run = 0
        while True:
            now = workflow.now().timestamp()
            if state.upstream_cancel_sent_at is None:
                if state.cancel_requested:
                    await self._cancel_upstream(requested=True)
                elif now >= state.deadline_at:
                    state.deadline_hit = True
                    await self._cancel_upstream(requested=False)
            elif now >= state.upstream_cancel_sent_at + state.cancel_grace_seconds:
                # The upstream ignores our cancel: stop waiting and keep whatever it will hand over.
                state.outcome, state.phase = ("expired" if state.deadline_hit else "cancelled"), "collect"
                return
            try:
                self.poll = await workflow.execute_activity_method(
                    RemoteActivities.poll_batch, ref, summary="poll upstream batch", **POLL
                )
            except ActivityError as err:  # the next tick polls again; the deadline bounds the whole wait
                workflow.logger.warning("poll of %s failed: %s", state.spec.id, err)
            else:
                if self.poll.cancel_requested:
                    state.cancel_requested = True  # recorded by the API even if its signal was lost
                if self.poll.lost:
                    state.outcome, state.phase = "failed", "finalize"
                    return
                if self.poll.ended:
                    state.outcome, state.phase = self._outcome(self.poll.state), "collect"
                    return
                self._show(self.status)
            await self._wait_before_next_poll(interval)
            interval = min(interval * 2, state.poll_max_seconds)
            state.poll_interval_seconds = interval
            polls_this_run += 1
            if workflow.info().is_continue_as_new_suggested() or polls_this_run == state.polls_per_run:
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(state)

    async def _wait_before_next_poll(self, interval: float) -> None:
        state = self.state
        now = workflow.now().timestamp()
        if state.upstream_cancel_sent_at is None:
            wait = min(interval, max(1.0, state.deadline_at - now))
        else:
            give_up_at = state.upstream_cancel_sent_at + state.cancel_grace_seconds
            wait = max(0.1, min(CANCEL_POLL_SECONDS, give_up_at - now))
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: state.cancel_requested and state.upstream_cancel_sent_at is None,
                timeout=timedelta(seconds=wait),
                timeout_summary="wait before the next poll",
            )

    async def _execute_phase(self) -> None:
        """Fan-out: batchway runs the lines itself, chunk by chunk."""
        state = self.state
        fanout = self._fanout
        await fanout.plan()
        self._show("in_progress")
        outcome = await fanout.run(self._show_fanout_progress)
        if outcome == "cancelled":
            await workflow.execute_activity_method(
                RowActivities.mark_cancelling,
                BatchRef(batch_id=state.spec.id),
                summary="record the cancel",
                **OPEN,
            )
        if outcome is None:  # a long run: carry on in a fresh history once the chunks in flight are done
            await workflow.wait_condition(workflow.all_handlers_finished)
            workflow.continue_as_new(state)
        state.outcome, state.phase = outcome, "finalize"

    def _show_fanout_progress(self) -> None:
        state, fanout = self.state, self._fanout
        total = state.chunks[-1].last_line if state.chunks else 0
        running = len(fanout.running)
        detail = f"{state.lines_done} of {total} lines in finished chunks, {running} chunks running"
        if fanout.last is not None:
            detail += (
                f", {fanout.last.admitted_per_second:.1f} req/s, concurrency {fanout.last.concurrency}, "
                f"{fanout.last.rate_limited} 429s"
            )
        if state.resent:
            detail += f", {state.resent} lines re-sent after a crash"
        self._show("cancelling" if state.cancel_requested else self.status, detail)

    async def _collect_phase(self) -> None:
        state = self.state
        assert state.outcome is not None
        try:
            collected: CollectResult = await workflow.execute_activity_method(
                RemoteActivities.collect_results,
                CollectInput(batch_id=state.spec.id, outcome=state.outcome),
                summary=f"store upstream results ({state.outcome})",
                **COLLECT,
            )
        except ActivityError as err:
            # The results could not be fetched within the collect budget: the lines end as failed.
            workflow.logger.warning("collecting results of %s failed: %s", state.spec.id, err)
            state.outcome = "failed"
        else:
            state.unreadable = collected.unreadable
            if not collected.fetched:
                state.outcome = "failed"
        state.phase = "finalize"

    async def _finalize(self) -> FinalizeResult:
        state = self.state
        state.phase = "finalize"
        outcome = state.outcome or "failed"
        if outcome in ("completed", "expired"):
            self._show("finalizing")
        result = await workflow.execute_activity_method(
            RowActivities.finalize_batch,
            FinalizeInput(batch_id=state.spec.id, outcome=outcome, unreadable=state.unreadable),
            summary=f"write result files ({outcome})",
            **FINALIZE,
        )
        self._show(result.status, f"{result.completed} completed, {result.failed} failed")
        return result

    async def _after_end(self, ref: BatchRef, ended: FinalizeResult) -> None:
        """The batch has ended for its client; now tell the org (webhook) and score its lines (feedback),
        where finalize found there is anything to do. Neither can change how the batch ended."""
        if self.state.style == "remote":
            try:  # what batchway made upstream (its copy of the input, the result files) is not kept
                await workflow.execute_activity_method(
                    RemoteActivities.cleanup_upstream, ref, summary="delete upstream copies", **CANCEL
                )
            except ActivityError as err:
                workflow.logger.info("upstream copies of %s not deleted: %s", ref.batch_id, err)
        if ended.notify:
            try:
                await workflow.execute_activity_method(
                    NotifyActivities.notify_batch, ref, summary="webhook", **NOTIFY
                )
            except ActivityError as err:
                workflow.logger.warning("webhook for %s not delivered: %s", ref.batch_id, err)
        if ended.status == "completed" and ended.score:
            try:
                scores = await workflow.execute_activity_method(
                    RowActivities.score_batch, ref, summary="feedback scores", **SCORE
                )
            except ActivityError as err:
                workflow.logger.warning("scoring %s failed: %s", ref.batch_id, err)
            else:
                if scores.scored:
                    self._show(ended.status, f"{scores.scored} lines scored, {scores.judged} by the judge")

    # -- helpers -----------------------------------------------------------------------------------------

    async def _cancel_upstream(self, *, requested: bool) -> bool:
        """Ask the upstream to stop; returns whether an upstream batch (may) exist."""
        self.state.upstream_cancel_sent_at = workflow.now().timestamp()
        if requested:
            self._show("cancelling")
        try:
            return await workflow.execute_activity_method(
                RemoteActivities.cancel_upstream,
                CancelUpstreamInput(batch_id=self.state.spec.id, requested=requested),
                summary="cancel upstream batch",
                **CANCEL,
            )
        except ActivityError as err:  # unknown: keep polling; the cancel grace bounds the wait
            workflow.logger.warning("cancel of %s upstream failed: %s", self.state.spec.id, err)
            return True

    def _outcome(self, upstream_state: str) -> Outcome:
        if self.state.deadline_hit and upstream_state in ("cancelled", "expired"):
            return "expired"
        if upstream_state in ("completed", "expired", "cancelled", "failed"):
            return upstream_state  # type: ignore[return-value]
        return "failed"

    def _show(self, status: str, detail: str | None = None) -> None:
        """Keep the Temporal UI current: the status search attribute and a live progress line."""
        if status != self.status:
            self.status = status
            workflow.upsert_search_attributes([SA_STATUS.value_set(status)])
        if detail is None and self.poll:
            poll = self.poll
            detail = f"{poll.completed + poll.failed} of {poll.total} done, {poll.failed} failed"
        workflow.set_current_details(f"**{status}**" + (f": {detail}" if detail else ""))

    @staticmethod
    def _until(timestamp: float, *, minimum: float) -> timedelta:
        return timedelta(seconds=max(minimum, timestamp - workflow.now().timestamp()))
