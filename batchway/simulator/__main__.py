"""`python -m batchway.simulator [--port N] [--data-dir DIR] [--api-key KEY]`: serve the simulator."""

import argparse
from pathlib import Path

from batchway.simulator.config import SimulatorConfig
from batchway.simulator.server import run_simulator


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m batchway.simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--data-dir", type=Path, default=Path(".batchway/simulator"))
    parser.add_argument("--api-key", default=None)
    args = parser.parse_args()
    run_simulator(
        SimulatorConfig(data_dir=args.data_dir, api_key=args.api_key), host=args.host, port=args.port
    )


if __name__ == "__main__":
    main()
