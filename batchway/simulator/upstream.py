"""How one simulated API plugs into the app: its routers, its state's clock, its error envelope."""

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import APIRouter

from batchway.simulator.errors import ErrorDialect


@dataclass(frozen=True)
class Upstream:
    """One simulated API. To add an API, write a module with a router and its state, build one of
    these in `app.build_upstreams`, and the app serves it next to the others on the same port."""

    name: str  # its key in `GET /_simulator/calls`
    routers: tuple[APIRouter, ...]  # its public routes; every call to them is counted
    # Advances its objects to `now` under the current config; called before a config change so new
    # speeds apply from then on. None for APIs whose objects do not move by the clock.
    settle: Callable[[float], None] | None = None
    control_router: APIRouter | None = None  # its `/_simulator/...` test hooks (no auth, not counted)
    # Errors raised outside its route code (unknown URL under its paths, a bad query parameter, a
    # crash) use this envelope when the path starts with `path_prefix`. None: OpenAI's envelope.
    path_prefix: str | None = None
    error_dialect: ErrorDialect | None = None
