"""eventpipe: Apache Beam pipelines for customer-event data."""
