"""A hostile OpenAI Files + Batches upstream for end-to-end tests of batchway.

It speaks enough of the wire contract (batch-api-contract.md §1, §2, §5) for the official `openai`
SDK, and misbehaves as scripted by `Faults`: malformed result files, cancels refused or swallowed,
batches stuck in `finalizing` or an unknown status, create answers lost behind 150 newer batches,
every Nth call failing with 503, stalls. It imports nothing from batchway, so it cannot share its bugs.

    upstream = HostileUpstream(Faults(lost_create="drop"))
    with serve_in_thread(upstream.app) as url:  # tests/servers.py
        client = openai.OpenAI(base_url=url + "/v1", api_key="any", max_retries=0)
        upstream.set_faults(fail_every=2)  # or POST {url}/_hostile/faults {"fail_every": 2}
        ...
        assert upstream.stats()["batches_created"]["bw_123"] == 1  # or GET {url}/_hostile/stats
"""

from tests.hostile.app import HostileUpstream
from tests.hostile.faults import (
    ALL_CORRUPTIONS,
    ROUTES,
    UNREADABLE_CORRUPTIONS,
    VICTIM_CORRUPTIONS,
    Faults,
    Timing,
)

__all__ = [
    "ALL_CORRUPTIONS",
    "ROUTES",
    "UNREADABLE_CORRUPTIONS",
    "VICTIM_CORRUPTIONS",
    "Faults",
    "HostileUpstream",
    "Timing",
]
