"""BatchWorkflow: one durable run per batch (workflow id = batch id).

validate -> submit upstream -> poll with durable, backing-off timers (a cancel signal interrupts the
wait at once) -> finalize (result files, request log, final status). Only ids and counts pass through
here; the batch row in SQL is the read model that activities keep current.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import Literal

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from activities.batch import BatchActivities
    from batchway.contracts import (
        CANCEL_SIGNAL,
        PROGRESS_QUERY,
        SA_STATUS,
        BatchRef,
        BatchWorkflowInput,
        CancelUpstreamInput,
        FinalizeInput,
        Outcome,
        Progress,
        UpstreamState,
    )

QUICK = dict(
    start_to_close_timeout=timedelta(minutes=2),
    retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=60)),
)
# A poll that keeps failing gives the loop back its turn: the next timer polls again.
POLL = dict(
    start_to_close_timeout=timedelta(minutes=2),
    retry_policy=RetryPolicy(
        initial_interval=timedelta(seconds=1),
        maximum_interval=timedelta(seconds=30),
        maximum_attempts=5,
        non_retryable_error_types=["UpstreamPermanent"],
    ),
)
# Uploading 200 MB can take a while: the attempt heartbeats, so a dead worker is noticed and a cancel
# reaches it within seconds; the workflow waits for it to stop before cancelling upstream.
SUBMIT = dict(
    start_to_close_timeout=timedelta(minutes=30),
    heartbeat_timeout=timedelta(seconds=10),
    cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=60)),
)
FINALIZE = dict(
    start_to_close_timeout=timedelta(minutes=30),
    heartbeat_timeout=None,
    retry_policy=RetryPolicy(initial_interval=timedelta(seconds=2), maximum_interval=timedelta(minutes=2)),
)
# Upstream cancel takes up to ~10 min; re-poll quickly while it winds down.
CANCEL_POLL_SECONDS = 2.0


@workflow.defn(name="BatchWorkflow")
class BatchWorkflow:
    @workflow.init
    def __init__(self, state: BatchWorkflowInput) -> None:
        self.state = state
        if state.phase == "validate":
            self.status = "validating"
        else:  # a continued run picks up where the previous one stopped
            self.status = "cancelling" if state.cancel_requested else "in_progress"
        self.upstream: UpstreamState | None = None

    @workflow.signal(name=CANCEL_SIGNAL)
    def cancel(self) -> None:
        self.state.cancel_requested = True

    @workflow.query(name=PROGRESS_QUERY)
    def progress(self) -> Progress:
        upstream = self.upstream
        return Progress(
            batch_id=self.state.batch_id,
            phase=self.state.phase,
            status=self.status,
            upstream_status=upstream.status if upstream else None,
            completed=upstream.completed if upstream else 0,
            failed=upstream.failed if upstream else 0,
            total=upstream.total if upstream else 0,
            cancel_requested=self.state.cancel_requested,
        )

    def _set_status(self, status: str) -> None:
        if status != self.status:
            self.status = status
            workflow.upsert_search_attributes([SA_STATUS.value_set(status)])
        counts = ""
        if self.upstream:
            counts = (
                f": {self.upstream.completed + self.upstream.failed}/{self.upstream.total} done, "
                f"{self.upstream.failed} failed"
            )
        workflow.set_current_details(f"**{status}**{counts}")

    @workflow.run
    async def run(self, state: BatchWorkflowInput) -> str:
        ref = BatchRef(batch_id=state.batch_id)
        if state.phase == "validate":
            validation = await workflow.execute_activity_method(
                BatchActivities.validate_batch, ref, summary="validate input lines", **QUICK
            )
            if not validation.ok:
                return await self._finalize("failed")
            state.phase = "submit"
        if state.phase == "submit":
            submitted = await self._submit(ref)
            # Cancelled before or while the upstream batch was created: cancel any that exists and, if
            # one does, poll it until it stops so its finished lines are kept.
            if submitted == "cancelled" and not await self._cancel_upstream(requested=True):
                return await self._finalize("cancelled")
            if submitted in ("failed", "expired"):
                return await self._finalize(submitted)
            state.phase = "poll"
            if submitted == "ok":
                self._set_status("in_progress")
        return await self._poll_until_done()

    async def _submit(self, ref: BatchRef) -> Literal["ok", "cancelled", "failed", "expired"]:
        """Submit upstream, unless a cancel arrives first (it interrupts a submit stuck in retries)."""
        if self.state.cancel_requested:
            return "cancelled"
        submit = workflow.start_activity_method(
            BatchActivities.submit_batch,
            ref,
            summary="submit to upstream",
            schedule_to_close_timeout=self._until_deadline(minimum=60),
            **SUBMIT,
        )
        await workflow.wait_condition(lambda: submit.done() or self.state.cancel_requested)
        if not submit.done():
            submit.cancel()
        try:
            result = await submit
        except ActivityError:
            # Cancelled by us, or the upstream stayed unreachable until the deadline: nothing ran.
            return "cancelled" if self.state.cancel_requested else "expired"
        return "ok" if result.ok else "failed"

    async def _poll_until_done(self) -> str:
        state = self.state
        interval = state.poll_interval_seconds or state.poll_min_seconds
        ref = BatchRef(batch_id=state.batch_id)
        polls_this_run = 0
        while True:
            if state.cancel_requested and not state.upstream_cancel_sent:
                await self._cancel_upstream(requested=True)
            elif workflow.now().timestamp() >= state.deadline_at and not state.upstream_cancel_sent:
                state.deadline_hit = True
                await self._cancel_upstream(requested=False)
            try:
                self.upstream = await workflow.execute_activity_method(
                    BatchActivities.poll_batch, ref, summary="poll upstream batch", **POLL
                )
            except ActivityError as err:
                workflow.logger.warning(
                    "poll of %s failed, retrying on the next tick: %s", state.batch_id, err
                )
            else:
                if self.upstream.cancel_requested:
                    state.cancel_requested = True  # recorded by the API even if its signal was lost
                if self.upstream.terminal:
                    return await self._finalize(self._outcome(self.upstream.status))
                self._set_status(self.status)
            wait = CANCEL_POLL_SECONDS if state.upstream_cancel_sent else interval
            if not state.upstream_cancel_sent:
                wait = min(wait, max(1.0, state.deadline_at - workflow.now().timestamp()))
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: state.cancel_requested and not state.upstream_cancel_sent,
                    timeout=timedelta(seconds=wait),
                    timeout_summary="wait before the next poll",
                )
            interval = min(interval * 2, state.poll_max_seconds)
            state.poll_interval_seconds = interval
            polls_this_run += 1
            if workflow.info().is_continue_as_new_suggested() or polls_this_run == state.polls_per_run:
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(state)

    async def _cancel_upstream(self, *, requested: bool) -> bool:
        self.state.upstream_cancel_sent = True
        if requested:
            self._set_status("cancelling")
        return await workflow.execute_activity_method(
            BatchActivities.cancel_upstream,
            CancelUpstreamInput(batch_id=self.state.batch_id, requested=requested),
            summary="cancel upstream batch",
            **QUICK,
        )

    def _outcome(self, upstream_status: str) -> Outcome:
        if self.state.deadline_hit and upstream_status in ("cancelled", "expired"):
            return "expired"
        if upstream_status in ("completed", "expired", "cancelled", "failed"):
            return upstream_status  # type: ignore[return-value]
        return "failed"

    async def _finalize(self, outcome: Outcome) -> str:
        if outcome in ("completed", "expired"):
            self._set_status("finalizing")
        result = await workflow.execute_activity_method(
            BatchActivities.finalize_batch,
            FinalizeInput(batch_id=self.state.batch_id, outcome=outcome),
            summary=f"write result files ({outcome})",
            **FINALIZE,
        )
        self._set_status(result.status)
        return result.status

    def _until_deadline(self, minimum: float) -> timedelta:
        left = self.state.deadline_at - workflow.now().timestamp()
        return timedelta(seconds=max(minimum, left))
