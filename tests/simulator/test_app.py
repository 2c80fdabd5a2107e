"""The simulator package as a whole: its isolation from batchway and the hooks shared by every API."""

import ast
from collections.abc import Callable
from pathlib import Path

import httpx

import batchway.simulator
from tests.simulator.helpers import API_KEY, RunningSimulator

PACKAGE_DIR = Path(batchway.simulator.__file__).parent


def _imported_modules(tree: ast.Module) -> list[str]:
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative imports stay inside the package
                continue
            names.append(node.module or "")
    return names


def test_simulator_imports_nothing_else_from_batchway() -> None:
    """The simulator fakes the upstreams batchway calls; sharing code with batchway would let both
    agree on the same bug."""
    modules = sorted(PACKAGE_DIR.rglob("*.py"))
    assert len(modules) > 10
    offending = [
        f"{path.relative_to(PACKAGE_DIR)}: {name}"
        for path in modules
        for name in _imported_modules(ast.parse(path.read_text(), filename=str(path)))
        if (name == "batchway" or name.startswith("batchway.")) and not name.startswith("batchway.simulator")
    ]
    assert offending == []


def test_call_counters_per_api(start: Callable[..., RunningSimulator]) -> None:
    sim = start()
    calls = sim.calls()
    assert set(calls) == {"openai", "anthropic"}
    assert set(calls["openai"].values()) == set(calls["anthropic"].values()) == {0}
    assert {"batches.create", "batches.cancel", "files.create", "files.content"} <= set(calls["openai"])
    assert set(calls["anthropic"]) == {
        "batches.create",
        "batches.list",
        "batches.retrieve",
        "batches.cancel",
        "batches.delete",
        "batches.results",
    }

    sim.client().batches.list()
    httpx.get(
        f"{sim.base_url}/v1/files", headers={"Authorization": "Bearer wrong"}
    )  # rejected, still counted
    sim.anthropic().messages.batches.list()
    calls = sim.calls()
    assert (calls["openai"]["batches.list"], calls["openai"]["files.list"]) == (1, 1)
    assert calls["anthropic"]["batches.list"] == 1
    httpx.get(f"{sim.base_url}/_simulator/batches")  # test hooks are not counted
    assert sim.calls() == calls

    reset = httpx.delete(f"{sim.base_url}/_simulator/calls").json()
    assert set(reset["openai"].values()) == set(reset["anthropic"].values()) == {0}


def test_errors_use_the_envelope_of_the_api_hit(start: Callable[..., RunningSimulator]) -> None:
    sim = start()
    headers = {"Authorization": f"Bearer {API_KEY}", "anthropic-version": "2023-06-01"}
    openai_404 = httpx.get(f"{sim.base_url}/v1/nothing", headers=headers)
    assert openai_404.status_code == 404 and set(openai_404.json()["error"]) == {
        "message",
        "type",
        "param",
        "code",
    }
    anthropic_404 = httpx.get(f"{sim.base_url}/v1/messages/batches/x/nothing", headers=headers)
    assert anthropic_404.status_code == 404 and anthropic_404.json()["type"] == "error"
    assert anthropic_404.json()["error"]["type"] == "not_found_error"
    for response in (openai_404, anthropic_404):
        assert response.headers["x-request-id"] == response.headers["request-id"]


def test_config_hook_covers_every_api(start: Callable[..., RunningSimulator]) -> None:
    sim = start(anthropic_max_requests=7)
    config = httpx.get(f"{sim.base_url}/_simulator/config").json()
    assert config["anthropic_max_requests"] == 7 and config["anthropic_max_body_bytes"] == 256 * 1024 * 1024
    assert "api_key" not in config
    bad = sim.set_config(anthropic_max_requests=0)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "anthropic_max_requests"
