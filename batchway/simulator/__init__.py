"""Fakes of the upstream batch APIs batchway talks to, served over real HTTP on one port.

- OpenAI Files + Batch API (contract §1-2): the official `openai` SDK works against it unchanged
  with `base_url="http://host:port/v1"`.
- Anthropic Message Batches API (contract §3): the official `anthropic` SDK works against it
  unchanged with `base_url="http://host:port"`.

Batches move by the wall clock from their stored timestamps, state survives restarts under
`data_dir`, and trigger phrases in request bodies (`SIMULATE_ERROR_<status>`, ...) make requests
fail or answer differently. The package imports nothing else from batchway, so it never shares a
bug with the code it tests. Module map: `app` composes the APIs (`Upstream`s); `openai_*` and
`anthropic_*` are one API each; `config`, `errors`, `middleware`, `storage`, `progress`,
`simulation`, `calls` are shared plumbing.
"""

from batchway.simulator.app import create_simulator_app
from batchway.simulator.config import SimulatorConfig
from batchway.simulator.server import run_simulator

__all__ = ["SimulatorConfig", "create_simulator_app", "run_simulator"]
