"""Lets Dataflow (and any remote Beam runner) install eventpipe on its workers.

Pass `--setup_file ./setup.py` with the pipeline options; the metadata lives in
pyproject.toml.
"""

import setuptools

setuptools.setup()
