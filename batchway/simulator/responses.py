"""JSON responses rendered with orjson, as every route of the simulator answers."""

from typing import Any

import orjson
from starlette.responses import Response


def json_response(content: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type="application/json")
