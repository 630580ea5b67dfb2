"""What the JSON routes answer, as pydantic models: one module per route module, named alike.

They document the wire format the domain functions have always returned; they
do not reshape it. A route declares its model with `response_model=`, so the
OpenAPI document describes every answer and a client can be generated from it
(tests/web/test_response_models.py checks that each JSON route has one).

`Reply` keeps keys a model does not declare yet: a field added to a domain
function reaches clients at once, and is documented when its model catches up,
rather than vanishing from the answer.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Reply(BaseModel):
    model_config = ConfigDict(extra="allow")
