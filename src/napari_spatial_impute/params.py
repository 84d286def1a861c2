"""``key=value`` method parameters from the CLI (``--param``) and the widgets' Parameters field."""

from __future__ import annotations

import json
from collections.abc import Iterable

from .errors import InputError


def parse_key_values(items: Iterable[str], example: str = "k=50") -> dict:
    """``["a=1", "b=x"]`` → ``{"a": 1, "b": "x"}``; values are parsed as JSON when possible.

    Only the syntax is checked here (KEY=VALUE, a name, no key twice); names, types and ranges are checked
    against the method's declared parameters by :func:`napari_spatial_impute.models.params_spec.validate_params`.
    """
    params = {}
    for item in (str(i).strip() for i in items):
        if not item:
            continue
        if "=" not in item:
            raise InputError(f"Parameter {item!r} is not KEY=VALUE.", f"write e.g. {example}.")
        key, value = (x.strip() for x in item.split("=", 1))
        if not key.isidentifier():
            raise InputError(f"Parameter {item!r} has no valid name before '='.", f"write e.g. {example}.")
        if key in params:
            raise InputError(f"Parameter {key!r} is given twice.", "give each parameter once.")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params
