"""The BigQuery client of the sinks and of the read API."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from google.cloud import bigquery


def make_client(
    project: str, endpoint: str | None = None, location: str | None = None
) -> bigquery.Client:
    """A BigQuery client: at `endpoint` with anonymous credentials, else Google's API with ADC."""
    from google.cloud import bigquery

    if endpoint:
        from google.auth.credentials import AnonymousCredentials

        return bigquery.Client(
            project=project,
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": endpoint},
            location=location,
        )
    return bigquery.Client(project=project, location=location)
