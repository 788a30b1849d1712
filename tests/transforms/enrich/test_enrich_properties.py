"""Properties of the table enrichment on arbitrary input: never raises, keeps the schema."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventpipe.schemas.event_schema import BROWSER_NAMES, OS_NAMES, arrow_schema
from eventpipe.transforms.enrich import Enricher, EnrichOptions

maybe_text = st.none() | st.text(max_size=40)
ips = st.none() | st.ip_addresses().map(str) | st.text(max_size=20)
contexts = st.none() | st.fixed_dictionaries(
    {},
    optional={
        "userAgent": maybe_text,
        "ip": ips,
        "browser": st.none() | st.fixed_dictionaries({}, optional={"name": maybe_text}),
        "os": st.none() | st.fixed_dictionaries({}, optional={"name": maybe_text}),
        "device": st.none() | st.fixed_dictionaries({}, optional={"type": maybe_text}),
        "location": st.none()
        | st.fixed_dictionaries({}, optional={"city": maybe_text, "speed": st.floats()}),
        "campaign": st.none() | st.fixed_dictionaries({}, optional={"name": maybe_text}),
        "page": st.none()
        | st.fixed_dictionaries({}, optional={"search": maybe_text, "url": maybe_text}),
    },
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=st.lists(contexts, max_size=8), policy=st.sampled_from(["keep", "mask", "drop"]))
def test_enrich_keeps_rows_and_schema(
    city_db: Path,
    make_event: Callable[..., dict[str, Any]],
    rows: list[dict[str, Any] | None],
    policy: str,
) -> None:
    table = pa.Table.from_pylist([make_event(context=c) for c in rows], schema=arrow_schema())
    enricher = Enricher(EnrichOptions(geoip_db=str(city_db), ip_policy=policy, drop_bots=True))
    result = enricher.enrich(table)
    enricher.teardown()
    assert result.events.schema.equals(arrow_schema())
    assert result.events.num_rows + result.bots.num_rows == len(rows)
    for context in result.events.column("context").to_pylist():
        if context is None:
            continue
        for name, canonical in (("browser", BROWSER_NAMES), ("os", OS_NAMES)):
            if context[name] is not None and context[name]["name"] is not None:
                assert context[name]["name"] in canonical
        if policy == "drop":
            assert context["ip"] is None
