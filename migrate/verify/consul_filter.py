"""Consul catalog filter expressions (go-bexpr), as ServiceResolver subsets use them.

Enough of the grammar for subsets (developer.hashicorp.com/consul/api-docs/features/filtering):
``Selector == Value``, ``!=``, ``contains``, ``not contains``, ``in``, ``not in``, ``matches``,
``not matches``, ``is empty``, ``is not empty``, joined by ``and``/``or``/``not`` and
parentheses. Selectors are ``Service.Meta.<key>``, ``Service.Tags``, ``Service.Service``.
An expression this does not understand matches nothing, so a subset never looks wider than
Consul would make it.
"""

from __future__ import annotations

import re
from typing import Any

_TOKEN = re.compile(r'\s*(\(|\)|==|!=|"(?:[^"\\]|\\.)*"|`[^`]*`|[^\s()]+)')


class FilterError(ValueError):
    """The expression is outside the grammar handled here."""


def _tokens(text: str) -> list[str]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or not m.group(1):
            raise FilterError(text)
        out.append(m.group(1))
        pos = m.end()
    return out


def _unquote(token: str) -> str:
    if len(token) >= 2 and token[0] == token[-1] and token[0] in "\"`":
        return token[1:-1].replace('\\"', '"')
    return token


class _Parser:
    def __init__(self, tokens: list[str], facts: dict[str, Any]) -> None:
        self.t, self.i, self.facts = tokens, 0, facts

    def peek(self, offset: int = 0) -> str:
        j = self.i + offset
        return self.t[j] if j < len(self.t) else ""

    def take(self) -> str:
        if self.i >= len(self.t):
            raise FilterError("unexpected end")
        self.i += 1
        return self.t[self.i - 1]

    def expr(self) -> bool:
        value = self.term()
        while self.peek() == "or":
            self.take()
            right = self.term()
            value = value or right
        return value

    def term(self) -> bool:
        value = self.factor()
        while self.peek() == "and":
            self.take()
            right = self.factor()
            value = value and right
        return value

    def factor(self) -> bool:
        if self.peek() == "not":
            self.take()
            return not self.factor()
        if self.peek() == "(":
            self.take()
            value = self.expr()
            if self.take() != ")":
                raise FilterError("unbalanced")
            return value
        return self.match()

    def match(self) -> bool:
        selector = self.take()
        got = self.lookup(selector)
        op = self.take()
        if op == "is":
            negate = self.peek() == "not"
            if negate:
                self.take()
            if self.take() != "empty":
                raise FilterError(op)
            return (not got) != negate
        negate = op == "not"
        if negate:
            op = self.take()
        if op in ("==", "!="):
            value = _unquote(self.take())
            result = isinstance(got, str) and got == value
            return result != (op == "!=")
        value = _unquote(self.take())
        if op == "contains":
            result = value in got if isinstance(got, (list, str)) else False
        elif op == "in":
            result = isinstance(got, str) and got in value
        elif op == "matches":
            try:
                result = isinstance(got, str) and re.search(value, got) is not None
            except re.error:
                raise FilterError(value) from None
        else:
            raise FilterError(op)
        return result != negate

    def lookup(self, selector: str) -> Any:
        parts = selector.split(".")
        if parts[0] != "Service" or len(parts) < 2:
            raise FilterError(selector)
        if parts[1] == "Meta" and len(parts) == 3:
            return self.facts.get("Meta", {}).get(parts[2], "")
        if parts[1] in ("Tags", "Service") and len(parts) == 2:
            return self.facts.get(parts[1], "")
        raise FilterError(selector)


def matches(expression: str, meta: dict[str, str], tags: list[str], service: str) -> bool:
    """Whether a service instance with this meta, tags and name passes the filter."""
    if not expression.strip():
        return True
    try:
        parser = _Parser(_tokens(expression), {"Meta": meta, "Tags": tags, "Service": service})
        result = parser.expr()
        if parser.i != len(parser.t):
            raise FilterError("trailing tokens")
        return result
    except FilterError:
        return False
