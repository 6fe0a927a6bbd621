"""The CEL rules of a CRD schema (``x-kubernetes-validations``), evaluated on a manifest the
way the API server does on create: schema defaults first, then each rule with ``self`` bound
to the value at its place in the object.

The evaluator is cel-python (``pip install 'meshmigrate[cel]'``), which has CEL's standard
functions and macros but not the Kubernetes CEL libraries (``isURL``, ``quantity``,
``format``...). A rule it cannot evaluate, for that or any other reason, or every rule when
cel-python is not installed, is reported as unchecked, never passed in silence. Transition
rules (those reading ``oldSelf``) apply only to updates and are not evaluated (Kubernetes
docs, "Transition rules": https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/
custom-resource-definitions/#transition-rules).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Iterator

_OLD_SELF = re.compile(r"\boldSelf\b")


@dataclass(frozen=True)
class RuleOutcome:
    """One rule evaluated at one place of a manifest."""

    path: str
    rule: str
    passed: bool | None
    """True or False, or None when the rule could not be evaluated."""
    message: str


def available() -> bool:
    """Whether cel-python is installed."""
    try:
        import celpy  # noqa: F401
    except ImportError:
        return False
    return True


def defaulted(schema: Any, value: Any) -> Any:
    """``value`` with the schema's ``default`` values filled in where fields are missing, as
    the API server defaults an object before validating it."""
    if not isinstance(schema, dict):
        return value
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        out = dict(value)
        for key, sub in props.items():
            if key not in out and isinstance(sub, dict) and "default" in sub:
                out[key] = copy.deepcopy(sub["default"])
        extra = schema.get("additionalProperties")
        for key in list(out):
            sub = props.get(key, extra if isinstance(extra, dict) else None)
            if sub is not None:
                out[key] = defaulted(sub, out[key])
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [defaulted(schema["items"], v) for v in value]
    return value


def _places(schema: Any, value: Any, path: str) -> Iterator[tuple[str, dict[str, Any], Any]]:
    """Every (field path, rule, value) a schema's rules apply to in ``value``."""
    if not isinstance(schema, dict):
        return
    for rule in schema.get("x-kubernetes-validations") or []:
        if isinstance(rule, dict) and isinstance(rule.get("rule"), str):
            yield path, rule, value
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for key in sorted(value):
            sub = props.get(key, extra if isinstance(extra, dict) else None)
            if sub is not None:
                yield from _places(sub, value[key], f"{path}.{key}" if path else key)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            yield from _places(schema["items"], item, f"{path}[{i}]")


@lru_cache(maxsize=4096)
def _program(rule: str) -> Any:
    import celpy

    env = celpy.Environment()
    return env.program(env.compile(rule))


def _why(error: BaseException) -> str:
    """A CEL error in one short line (cel-python's messages carry the whole activation)."""
    text = str(error.args[0] if error.args else error)
    return text.split(" (in activation")[0].splitlines()[0][:160]


def evaluate(schema: dict[str, Any], body: dict[str, Any]) -> list[RuleOutcome]:
    """Every CEL rule of ``schema`` that applies to ``body``, with its outcome."""
    have_cel = available()
    out: list[RuleOutcome] = []
    for path, rule, value in _places(schema, defaulted(schema, body), ""):
        text = rule["rule"]
        if _OLD_SELF.search(text):
            continue  # a transition rule: evaluated on update only
        message = str(rule.get("message") or f"failed rule: {text}")
        if not have_cel:
            out.append(RuleOutcome(path, text, None, "cel-python is not installed"))
            continue
        import celpy

        try:
            result = _program(text).evaluate({"self": celpy.json_to_cel(value)})
        except Exception as error:  # noqa: BLE001 - any failure means "not evaluated"
            out.append(RuleOutcome(path, text, None, _why(error)))
            continue
        if isinstance(result, celpy.CELEvalError):
            out.append(RuleOutcome(path, text, None, _why(result)))
        elif not isinstance(result, celpy.celtypes.BoolType):
            out.append(RuleOutcome(path, text, None, f"the rule gave {type(result).__name__}"))
        else:
            out.append(RuleOutcome(path, text, bool(result), message))
    return out
