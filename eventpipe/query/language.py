"""The filter language of GET /v1/events (seed 000): its reference text, operators and
limits."""

from __future__ import annotations

FILTER_LANGUAGE = """The filter language of GET /v1/events (seed 000), compiled to a parameterised SQL predicate.

A filter is `{"logical": "and"|"or", "conditions": [{"property", "operator", "values"}]}`.
`property` is a column of the event schema, a dotted path into the nested `context`
(`context.browser.name`), or a dotted path into a json column (`properties.plan`,
`traits.address.city`; a segment of digits also indexes a JSON array). Property names
are resolved against the schema and only schema names ever reach the SQL text; every
value, and every JSON key, is bound as a parameter.

Operators by property type (a mismatch is a 400 naming the operator and property):

- string: is, is not, is one of, is not one of, contains, does not contain, starts
  with, ends with, is empty, is not empty, is less than (or equal to), is greater
  than (or equal to), is between, is not between (comparisons are by code point);
- int, float, decimal: is, is not, is one of, is not one of, the four comparisons,
  is between, is not between;
- datetime: is, is not, is before, is on or before, is after, is on or after, is
  between, is not between;
- boolean: is true, is false;  uuid, ip: is, is not;
- every optional property also takes is null / is not null;
- json columns and paths into them: all 26 operators, and eventpipe's `includes one
  of` (1 to 1000 values): the value is one of them (as `is one of`), or an array with an
  element that is a JSON string equal to one of them (`traits.groups includes one of
  ["admin"]` matches `"admin"` and `["staff", "admin"]`).

Values: none for is true/false, is (not) empty, is (not) null, exists, does not exist;
two for is (not) between; 1 to 1000 for is (not) one of; exactly one otherwise. Each
is parsed for the property's type (integers within the bit size, finite numbers, ISO
8601 datetimes, UUIDs, IP addresses) or refused with a 400 naming `values[i]`; text
that is not valid Unicode (a lone surrogate such as `"\\ud800"`) is a 400 too. At most
100 conditions, 3,000 values in all the conditions together, and 64 KB of filter JSON.
A long `is one of` list is matched with one hash lookup per row, not a comparison per
value.

Semantics of null and missing values (the whole rule set):

- `is null` is true for a null column or nested field; for a json path it is true when
  the key is missing, when its value is JSON `null`, or when the json column is null.
  `is not null` is its exact complement.
- `exists` / `does not exist` (json paths only) test whether the key is present at
  all; a key holding JSON `null` exists.
- Every other operator is false on a null or missing value, negative ones included:
  `is not`, `is not one of`, `does not contain`, `is not between`, `is not empty` match
  only values that are present and not null.
- String operators are case-sensitive; `contains`/`starts with`/`ends with` take the
  value literally (no wildcards). `is empty` is true for `""` only (and, on json paths,
  for `[]` and `{}` too).
- `is between` / `is not between` are inclusive on both ends; when the first value is
  greater than the second, `is between` matches nothing.
- Datetime values are ISO 8601 (`2025-10-20`, `2025-10-20T16:15:24.010Z`,
  `...+02:00`); without an offset they are UTC. `is` compares to the microsecond.
- On json paths a value is compared according to the JSON type of the stored value:
  JSON strings as text, JSON numbers numerically (when the operand is a number; as
  64-bit floats), JSON booleans with `true`/`false`. So `properties.n is "5"` matches
  both `5` and `"5"`. The date operators (`is before`...) match JSON strings that
  parse as timestamps. Arrays and objects only match `is empty`, `is not empty`,
  `is not`, `is not one of`, `is null`-family and `exists`-family operators.
"""
"""The reference of the filter language, served on the API's `/docs` page."""

MAX_FILTER_BYTES = 64 * 1024
MAX_CONDITIONS = 100
MAX_VALUES = 1000
MAX_FILTER_VALUES = 3000
"""Most values in all the conditions of one filter together."""
INLINE_VALUES = 16
"""A longer `is one of` list is bound as one list parameter and matched by a hash join."""
MAX_JSON_PATH_DEPTH = 32

COMPARISONS = {
    "is less than": "<",
    "is less than or equal to": "<=",
    "is greater than": ">",
    "is greater than or equal to": ">=",
}
DATE_COMPARISONS = {
    "is before": "<",
    "is on or before": "<=",
    "is after": ">",
    "is on or after": ">=",
}
NO_VALUES = (
    "is true",
    "is false",
    "is empty",
    "is not empty",
    "is null",
    "is not null",
    "exists",
    "does not exist",
)
"""The operators that take no values."""
OPERATORS: tuple[str, ...] = (
    "is",
    "is not",
    *COMPARISONS,
    "is between",
    "is not between",
    "contains",
    "does not contain",
    "is one of",
    "is not one of",
    "starts with",
    "ends with",
    *DATE_COMPARISONS,
    *NO_VALUES,
)

EXTENSION_OPERATORS: tuple[str, ...] = ("includes one of",)
"""Operators beyond seed 000's 26 (json paths only): array membership."""
RANGES = ("is between", "is not between")
NUMBER_OPERATORS = ("is", "is not", "is one of", "is not one of", *COMPARISONS, *RANGES)
OPERATORS_BY_KIND: dict[str, tuple[str, ...]] = {
    "string": (
        *NUMBER_OPERATORS,
        "contains",
        "does not contain",
        "starts with",
        "ends with",
        "is empty",
        "is not empty",
    ),
    "int": NUMBER_OPERATORS,
    "float": NUMBER_OPERATORS,
    "decimal": NUMBER_OPERATORS,
    "datetime": ("is", "is not", *DATE_COMPARISONS, *RANGES),
    "boolean": ("is true", "is false"),
    "uuid": ("is", "is not"),
    "ip": ("is", "is not"),
    "json": (*OPERATORS, *EXTENSION_OPERATORS),
}
NULL_OPERATORS = ("is null", "is not null")
MANY_VALUES = frozenset(("is one of", "is not one of", "includes one of"))
