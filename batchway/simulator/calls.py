"""Counts of the calls each simulated API received, so tests can assert what reached "upstream"."""

from collections import defaultdict
from collections.abc import Callable

from fastapi import APIRouter, Request
from fastapi.routing import APIRoute


class CallCounter:
    """Per API, per route name (e.g. `anthropic` / `batches.create`): requests that reached the route,
    whatever their outcome (a rejected create still counts as sent)."""

    def __init__(self) -> None:
        self._counts: dict[str, dict[str, int]] = defaultdict(dict)

    def register(self, api: str, router: APIRouter) -> Callable[[Request], None]:
        """Start every route of `router` at zero; returns the dependency that counts its calls."""
        for route in router.routes:
            if isinstance(route, APIRoute):
                self._counts[api].setdefault(route.name, 0)

        def count_call(request: Request) -> None:
            route = request.scope.get("route")
            if isinstance(route, APIRoute):
                self._counts[api][route.name] = self._counts[api].get(route.name, 0) + 1

        return count_call

    def snapshot(self) -> dict[str, dict[str, int]]:
        return {api: dict(sorted(counts.items())) for api, counts in sorted(self._counts.items())}

    def reset(self) -> None:
        for counts in self._counts.values():
            for name in counts:
                counts[name] = 0
