"""The one registry of methods: scenario names -> ``Method``."""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError

from strategies import (
    cloud_retrain,
    em_prior,
    fedavg,
    fedavg_ft,
    fedavg_head,
    fedprox,
    finetune,
    ifca,
    lame,
    persona,
    pfedhn,
    static,
    t3a,
)
from strategies.base import Method, MethodParams

_METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        static.METHOD,
        fedavg.METHOD,
        fedavg_ft.METHOD,
        fedavg_head.METHOD,
        fedprox.METHOD,
        finetune.METHOD,
        ifca.METHOD,
        pfedhn.METHOD,
        cloud_retrain.METHOD,
        em_prior.METHOD,
        t3a.METHOD,
        lame.METHOD,
        *persona.METHODS,
    )
}


def _readable(key: object) -> str:
    """A parameter name as typed, or quoted when it holds spaces or control characters."""
    text = str(key)
    return text if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", text) else repr(text)


def method_names() -> list[str]:
    return sorted(_METHODS)


def get_method(name: str) -> Method:
    """The method registered as ``name``; the error lists the valid names."""
    try:
        return _METHODS[name]
    except KeyError:
        raise KeyError(
            f"unknown method {name!r}; valid methods: {', '.join(method_names())}"
        ) from None


def declared_roles(names: list[str]) -> dict[str, dict[str, str | None]]:
    """Each named method's declared role, parent and colour (``Method.declared_roles``)."""
    return {name: get_method(name).declared_roles() for name in names}


def validate_params(name: str, params: dict[str, Any]) -> MethodParams:
    """Validate a method's parameters; errors name the parameter and the expectation."""
    method = get_method(name)
    for key, value in method.fixed_params.items():
        if key in params and params[key] != value:
            raise ValueError(
                f"{key}: {name} fixes it to {value!r} (what it removes from its parent); "
                "remove the key, or run the parent method"
            )
    try:  # validated as the method will run them, what it fixes included
        method.params.model_validate({**params, **method.fixed_params})
        return method.params.model_validate(params)
    except ValidationError as err:
        problems = []
        for e in err.errors(include_url=False):
            where = ".".join(_readable(p) for p in e["loc"])  # empty: a whole-model check
            if e["type"] == "extra_forbidden":
                what = "unknown parameter"
            elif e["type"] == "value_error":  # the method's own validators phrase the fix
                what = str((e.get("ctx") or {}).get("error", e["msg"]))
            else:
                what = e["msg"]
            problems.append(f"{where}: {what}" if where else what)
        valid = ", ".join(sorted(method.params.model_fields)) or "none"
        raise ValueError(f"{'; '.join(problems)} (valid parameters of {name!r}: {valid})") from None
