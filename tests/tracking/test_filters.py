"""The filter language parser: MLflow's syntax, Keel's extensions, and its error messages."""

from __future__ import annotations

import pytest

from keel.errors import InvalidInput
from keel.tracking.filters import Comparison, Field, Logical, OrderKey, parse_filter, parse_order_by


def test_mlflow_style_conjunctions() -> None:
    node = parse_filter("metrics.rmse < 0.5 and params.model = 'rf' and tags.`my tag` != \"x\"")
    assert isinstance(node, Logical) and node.op == "AND"
    first, second, third = node.items
    assert first == Comparison(Field("metric", "rmse"), "<", 0.5, True)
    assert second == Comparison(Field("param", "model"), "=", "rf", False)
    assert third == Comparison(Field("tag", "my tag"), "!=", "x", False)


def test_dotted_keys_summaries_or_and_parentheses() -> None:
    node = parse_filter("(min(metrics.val.loss) <= 1e-3 OR tags.mlflow.source.name LIKE '%train%')")
    assert isinstance(node, Logical) and node.op == "OR"
    assert node.items[0] == Comparison(Field("metric", "val.loss", "min"), "<=", 0.001, True)
    assert node.items[1] == Comparison(Field("tag", "mlflow.source.name"), "LIKE", "%train%", False)


def test_in_lists_null_tests_and_bare_attributes() -> None:
    node = parse_filter("status IN ('FINISHED', 'FAILED') and params.x IS NOT NULL")
    assert isinstance(node, Logical)
    assert node.items[0] == Comparison(Field("attribute", "status"), "IN", ("FINISHED", "FAILED"), False)
    assert node.items[1] == Comparison(Field("param", "x"), "IS NOT NULL", None, False)


def test_quotes_escape_by_doubling() -> None:
    node = parse_filter("params.name = 'it''s'")
    assert node == Comparison(Field("param", "name"), "=", "it's", False)


def test_blank_filters_mean_no_filter() -> None:
    assert parse_filter(None) is None
    assert parse_filter("   ") is None


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            "metrics.loss",
            "character 13: expected a comparison after metrics.loss, but the filter ended",
        ),
        ("metrics.loss ~ 3", "character 14: unexpected '~'"),
        ("metrics.loss < ", "expected a value to compare metrics.loss with"),
        ("params.a = 'x' params.b = 'y'", "character 16: unexpected 'params'"),
        ("(params.a = 'x'", "expected ')'"),
        ("min(params.a) < 3", "min() applies to metrics"),
        ("params.a IN ('x' 'y')", "expected ',' or ')'"),
        ("params.a = foo", "expected a quoted string or a number, got 'foo'"),
        ("metrics. < 3", "expected a key after 'metrics.'"),
    ],
)
def test_malformed_filters_say_where_and_what(source: str, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_filter(source)
    assert message in caught.value.message
    assert caught.value.message.startswith("malformed filter")


def test_order_by_clauses() -> None:
    keys = parse_order_by(["min(metrics.loss) ASC", "params.lr DESC, start_time"])
    assert keys == [
        OrderKey(Field("metric", "loss", "min"), False),
        OrderKey(Field("param", "lr"), True),
        OrderKey(Field("attribute", "start_time"), False),
    ]
    with pytest.raises(InvalidInput, match="order_by"):
        parse_order_by("metrics.loss SIDEWAYS")
