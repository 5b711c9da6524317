"""The job filter language: MLflow's search syntax, plus OR, parentheses and summaries.

    metrics.rmse < 0.5 and params.model = 'forest'
    min(metrics.loss) <= 0.1 or tags.team IN ('a', 'b')
    status = 'FINISHED' and attributes.start_time > 1700000000000
    params.lr LIKE '0.0%'  and  datasets.name = 'flights'

Fields are ``metrics.K`` (its last value), ``min(metrics.K)``, ``max(metrics.K)``,
``last(metrics.K)``, ``count(metrics.K)``, ``params.K``, ``tags.K``,
``attributes.A`` (or a bare ``A``) and ``datasets.name|digest|context``. Keys with
unusual characters are quoted with backticks or double quotes. Errors name the
character position and what was expected there.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

from keel.errors import InvalidInput

T = TypeVar("T")
Kind = Literal["metric", "param", "tag", "attribute", "dataset"]
Aggregate = Literal["last", "min", "max", "count"]

_ENTITY_KINDS: dict[str, Kind] = {
    "metrics": "metric",
    "metric": "metric",
    "params": "param",
    "param": "param",
    "parameters": "param",
    "tags": "tag",
    "tag": "tag",
    "attributes": "attribute",
    "attribute": "attribute",
    "attr": "attribute",
    "run": "attribute",
    "datasets": "dataset",
    "dataset": "dataset",
}
_AGGREGATES: tuple[Aggregate, ...] = ("last", "min", "max", "count")
COMPARATORS = (
    "=",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "LIKE",
    "ILIKE",
    "IN",
    "NOT IN",
    "IS NULL",
    "IS NOT NULL",
)

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<string>'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*")
  | (?P<quoted>`[^`]*`)
  | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
  | (?P<op><=|>=|!=|<>|==|=|<|>)
  | (?P<punct>[(),.])
  | (?P<word>[A-Za-z_][\w]*)
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class Field:
    """What a comparison or an ordering looks at."""

    kind: Kind
    key: str
    aggregate: Aggregate = "last"

    def __str__(self) -> str:
        prefix = {"metric": "metrics", "param": "params", "tag": "tags"}.get(self.kind, self.kind)
        base = f"{prefix}.{self.key}" if self.kind != "attribute" else self.key
        return f"{self.aggregate}({base})" if self.kind == "metric" and self.aggregate != "last" else base


@dataclass(frozen=True)
class Comparison:
    field: Field
    op: str
    value: str | float | tuple[str | float, ...] | None
    value_is_number: bool


@dataclass(frozen=True)
class Logical:
    op: Literal["AND", "OR"]
    items: tuple[Node, ...]


Node = Comparison | Logical


@dataclass(frozen=True)
class OrderKey:
    field: Field
    descending: bool


@dataclass
class _Token:
    kind: str
    text: str
    position: int


def _tokenize(source: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(source):
        match = _TOKEN.match(source, position)
        if match is None:
            raise InvalidInput(
                f"malformed filter at character {position + 1}: unexpected {source[position]!r}"
            )
        kind = match.lastgroup or ""
        if kind != "space":
            tokens.append(_Token(kind, match.group(), position))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, source: str, what: str) -> None:
        self.source = source
        self.what = what
        self.tokens = _tokenize(source)
        self.index = 0

    # -- token helpers -------------------------------------------------------------

    def peek(self, offset: int = 0) -> _Token | None:
        at = self.index + offset
        return self.tokens[at] if at < len(self.tokens) else None

    def next(self, expected: str) -> _Token:
        token = self.peek()
        if token is None:
            raise self.error(f"expected {expected}, but the {self.what} ended")
        self.index += 1
        return token

    def at_word(self, *words: str) -> bool:
        token = self.peek()
        return token is not None and token.kind == "word" and token.text.upper() in words

    def expect_punct(self, char: str) -> None:
        token = self.next(f"'{char}'")
        if token.text != char:
            raise self.error(f"expected '{char}'", token)

    def error(self, message: str, token: _Token | None = None) -> InvalidInput:
        where = token.position + 1 if token else len(self.source) + 1
        return InvalidInput(f"malformed {self.what} at character {where}: {message}")

    # -- grammar -------------------------------------------------------------------

    def parse_expression(self) -> Node:
        items = [self.parse_conjunction()]
        while self.at_word("OR"):
            self.index += 1
            items.append(self.parse_conjunction())
        return items[0] if len(items) == 1 else Logical("OR", tuple(items))

    def parse_conjunction(self) -> Node:
        items = [self.parse_factor()]
        while self.at_word("AND"):
            self.index += 1
            items.append(self.parse_factor())
        return items[0] if len(items) == 1 else Logical("AND", tuple(items))

    def parse_factor(self) -> Node:
        token = self.peek()
        if token is not None and token.text == "(":
            self.index += 1
            node = self.parse_expression()
            self.expect_punct(")")
            return node
        return self.parse_comparison()

    def parse_field(self) -> Field:
        token = self.next("a field such as metrics.loss, params.lr or status")
        if token.kind != "word":
            raise self.error(f"expected a field, got {token.text!r}", token)
        following = self.peek()
        if token.text.lower() in _AGGREGATES and following is not None and following.text == "(":
            self.index += 1
            inner = self.parse_field()
            if inner.kind != "metric":
                raise self.error(f"{token.text}() applies to metrics, not {inner}", token)
            self.expect_punct(")")
            aggregate: Aggregate = token.text.lower()  # type: ignore[assignment]
            return Field("metric", inner.key, aggregate)
        kind = _ENTITY_KINDS.get(token.text.lower())
        if kind is None or following is None or following.text != ".":
            return Field("attribute", token.text)
        self.index += 1
        return Field(kind, self.parse_key(token))

    def parse_key(self, entity: _Token) -> str:
        token = self.next(f"a key after {entity.text!r}.")
        if token.kind == "quoted" or (token.kind == "string" and token.text.startswith('"')):
            return _unquote(token.text)
        if token.kind not in ("word", "number"):
            raise self.error(f"expected a key after '{entity.text}.', got {token.text!r}", token)
        parts = [token.text]
        while self._continues_key():
            self.index += 1
            parts.append(self.next("a key part").text)
        return ".".join(parts)

    def _continues_key(self) -> bool:
        dot, part = self.peek(), self.peek(1)
        return (
            dot is not None
            and dot.text == "."
            and part is not None
            and part.kind in ("word", "number")
            and dot.position + 1 == part.position
        )

    def parse_comparison(self) -> Comparison:
        field = self.parse_field()
        op = self.parse_operator(field)
        if op in ("IS NULL", "IS NOT NULL"):
            return Comparison(field, op, None, False)
        if op in ("IN", "NOT IN"):
            values, numeric = self.parse_list()
            return Comparison(field, op, values, numeric)
        token = self.next(f"a value to compare {field} with")
        if token.kind == "string":
            return Comparison(field, op, _unquote(token.text), False)
        if token.kind == "number":
            return Comparison(field, op, float(token.text), True)
        raise self.error(f"expected a quoted string or a number, got {token.text!r}", token)

    def parse_operator(self, field: Field) -> str:
        token = self.next(f"a comparison after {field}")
        text = token.text.upper()
        if token.kind == "op":
            return {"==": "=", "<>": "!="}.get(text, text)
        if text in ("LIKE", "ILIKE", "IN"):
            return text
        if text == "NOT" and self.at_word("IN", "LIKE", "ILIKE"):
            return "NOT " + self.next("IN").text.upper()
        if text == "IS":
            negated = self.at_word("NOT")
            if negated:
                self.index += 1
            if not self.at_word("NULL"):
                raise self.error("expected NULL after IS", self.peek())
            self.index += 1
            return "IS NOT NULL" if negated else "IS NULL"
        raise self.error(
            f"expected a comparison (=, !=, <, <=, >, >=, LIKE, ILIKE, IN) after {field}, got {token.text!r}",
            token,
        )

    def parse_list(self) -> tuple[tuple[str | float, ...], bool]:
        self.expect_punct("(")
        values: list[str | float] = []
        numeric = True
        while True:
            token = self.next("a value in the list")
            if token.kind == "string":
                values.append(_unquote(token.text))
                numeric = False
            elif token.kind == "number":
                values.append(float(token.text))
            else:
                raise self.error(f"expected a value in the list, got {token.text!r}", token)
            separator = self.next("',' or ')'")
            if separator.text == ")":
                return tuple(values), numeric
            if separator.text != ",":
                raise self.error(f"expected ',' or ')', got {separator.text!r}", separator)

    def finish(self) -> None:
        token = self.peek()
        if token is not None:
            raise self.error(f"unexpected {token.text!r}; join conditions with AND or OR", token)


def _unquote(text: str) -> str:
    quote, body = text[0], text[1:-1]
    if quote == "`":
        return body
    body = body.replace(quote * 2, quote)
    return re.sub(r"\\(.)", r"\1", body)


def parse_filter(source: str | None) -> Node | None:
    """Parse a filter string; None or blank means no filter."""
    if source is None or not source.strip():
        return None
    parser = _Parser(source, "filter")
    node = parser.parse_expression()
    parser.finish()
    return node


def parse_order_by(clauses: Sequence[str] | str | None) -> list[OrderKey]:
    """Parse ``["metrics.loss ASC", "start_time DESC"]`` (or one comma-separated string)."""
    if clauses is None:
        return []
    items = [clauses] if isinstance(clauses, str) else list(clauses)
    keys: list[OrderKey] = []
    for clause in items:
        for part in _split_commas(clause):
            parser = _Parser(part, "order_by clause")
            field = parser.parse_field()
            descending = False
            if parser.at_word("ASC", "DESC"):
                descending = parser.next("ASC or DESC").text.upper() == "DESC"
            parser.finish()
            keys.append(OrderKey(field, descending))
    return keys


def _split_commas(clause: str) -> list[str]:
    """Split on commas outside quotes and parentheses."""
    parts: list[str] = []
    current: list[str] = []
    depth, quote = 0, ""
    for char in clause:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"`":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return [part.strip() for part in parts if part.strip()]


# -- evaluation in memory ------------------------------------------------------------
# Jobs are searched in SQL (keel.tracking.search). Experiments and logged models are few
# and stored partly as JSON, so their searches load the candidates and test them here.

FieldValue = str | float | int | None


def matches(node: Node, value_of: Callable[[Field], FieldValue]) -> bool:
    """Whether a record satisfies ``node``; ``value_of`` gives a field's value, None if absent."""
    if isinstance(node, Logical):
        results = (matches(item, value_of) for item in node.items)
        return all(results) if node.op == "AND" else any(results)
    return _holds(node, value_of(node.field))


def _holds(comparison: Comparison, actual: FieldValue) -> bool:
    op, expected = comparison.op, comparison.value
    if op in ("IS NULL", "IS NOT NULL"):
        return (actual is None) == (op == "IS NULL")
    if actual is None:
        return False
    if isinstance(expected, tuple):
        found = any(_same(actual, item) for item in expected)
        return found if op == "IN" else not found
    if op.endswith("LIKE"):
        found = _like(str(actual), str(expected), insensitive=op.endswith("ILIKE"))
        return not found if op.startswith("NOT") else found
    if op in ("=", "!="):
        return _same(actual, expected) == (op == "=")
    if not comparison.value_is_number or isinstance(actual, str):
        raise InvalidInput(f"{comparison.field} cannot be compared with {op} {expected!r}")
    return bool(_ORDERINGS[op](float(actual), float(expected or 0)))


_ORDERINGS: dict[str, Callable[[float, float], bool]] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _same(actual: str | float | int, expected: str | float | None) -> bool:
    if isinstance(expected, float) and not isinstance(actual, str):
        return float(actual) == expected
    if isinstance(expected, float) and expected.is_integer():
        return actual == str(int(expected))
    return str(actual) == str(expected)


def _like(text: str, pattern: str, *, insensitive: bool) -> bool:
    """SQL LIKE: ``%`` is any run of characters, ``_`` any one character."""
    translated = "".join(".*" if char == "%" else "." if char == "_" else re.escape(char) for char in pattern)
    flags = re.DOTALL | (re.IGNORECASE if insensitive else 0)
    return re.fullmatch(translated, text, flags) is not None


def sort_records(
    records: Sequence[T], keys: Sequence[OrderKey], value_of: Callable[[T, Field], FieldValue]
) -> list[T]:
    """``records`` ordered by ``keys`` (stable, missing values last in either direction)."""
    ordered = list(records)
    for key in reversed(keys):
        present = [r for r in ordered if value_of(r, key.field) is not None]
        absent = [r for r in ordered if value_of(r, key.field) is None]
        present.sort(key=lambda r: _sortable(value_of(r, key.field)), reverse=key.descending)
        ordered = present + absent
    return ordered


def _sortable(value: FieldValue) -> tuple[int, float, str]:
    if isinstance(value, int | float):
        return (0, float(value), "")
    return (1, 0.0, str(value))
