"""The filter of a list-events request as a predicate for the reader's SQL dialect.

`parse_filter(text, dialect)` parses the `filter` parameter once into a typed tree
(`eventpipe.query.tree`, FilterError naming the bad part), renders it for `dialect`
(`eventpipe.query.sql`) and adds the conditions the lake's serving index can look up.
The language itself: `FILTER_LANGUAGE` (served on `/docs`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from eventpipe.query.duckdb_dialect import DUCKDB, table_source
from eventpipe.query.language import (
    FILTER_LANGUAGE,
    INLINE_VALUES,
    MAX_CONDITIONS,
    MAX_FILTER_VALUES,
    NULL_OPERATORS,
    OPERATORS,
)
from eventpipe.query.sql import Dialect, Predicate, render, render_all
from eventpipe.query.tree import (
    Filter,
    FilterError,
    filter_from_document,
    index_conditions,
    json_pointer,
    resolve_property,
)
from eventpipe.query.tree import parse_filter as parse_tree
from eventpipe.query.values import parse_datetime, parse_ip
from eventpipe.serving.index_format import INDEXED_COLUMNS, INTEGER_COLUMNS

__all__ = [
    "FILTER_LANGUAGE",
    "INLINE_VALUES",
    "MAX_CONDITIONS",
    "MAX_FILTER_VALUES",
    "NULL_OPERATORS",
    "OPERATORS",
    "FilterError",
    "Predicate",
    "compile_filter",
    "compile_filters",
    "json_pointer",
    "parse_datetime",
    "parse_filter",
    "parse_ip",
    "predicate_of",
    "resolve_property",
    "table_source",
]


def predicate_of(tree: Filter, dialect: Dialect) -> Predicate:
    """`tree` rendered for `dialect`, with the conditions the serving index can look up."""
    indexed = index_conditions(tree, INDEXED_COLUMNS, INTEGER_COLUMNS)
    return replace(render(tree, dialect), indexed_conditions=indexed)


def compile_filter(
    document: object, parameter: str = "filter", dialect: Dialect = DUCKDB
) -> Predicate:
    """The predicate of a decoded filter document, validated against the event schema."""
    return predicate_of(filter_from_document(document, parameter), dialect)


def compile_filters(
    document: object, groups: Sequence[object], parameter: str = "filter", dialect: Dialect = DUCKDB
) -> Predicate:
    """The predicate of filter document `document` AND each of the filter documents
    `groups` (so a seed adapter can require "a or b" next to other conditions); the serving
    index conditions and date bounds are `document`'s."""
    tree = filter_from_document(document, parameter)
    trees = [filter_from_document(g, f"{parameter}.groups[{i}]") for i, g in enumerate(groups)]
    indexed = index_conditions(tree, INDEXED_COLUMNS, INTEGER_COLUMNS)
    return replace(render_all(tree, trees, dialect), indexed_conditions=indexed)


def parse_filter(
    text: str | None, parameter: str = "filter", dialect: Dialect = DUCKDB
) -> Predicate | None:
    """The predicate of the `filter` query parameter (JSON text), or None when absent/blank."""
    tree = parse_tree(text, parameter)
    return None if tree is None else predicate_of(tree, dialect)
