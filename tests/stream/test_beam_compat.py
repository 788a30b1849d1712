"""The Beam workarounds apply only to the Beam release they were written for."""

from __future__ import annotations

import apache_beam as beam
import pytest
from apache_beam.runners.worker.statesampler import StateSampler

from eventpipe.io.beam_compat import (
    BEAM_VERSION,
    UnsupportedBeamVersion,
    check_beam_version,
    local_streaming_runner,
)


def test_the_installed_beam_is_the_supported_release():
    check_beam_version()
    assert beam.__version__.startswith(BEAM_VERSION + ".")


@pytest.mark.parametrize(
    "installed", [f"{BEAM_VERSION}.0", f"{BEAM_VERSION}.3", f"{BEAM_VERSION}.1rc2"]
)
def test_any_patch_release_of_the_supported_version_passes(installed):
    check_beam_version(installed)


@pytest.mark.parametrize("installed", ["2.78.0", "2.7.0", "3.77.0", "2.76.1"])
def test_another_release_is_refused_with_a_message_naming_both_versions(installed):
    with pytest.raises(UnsupportedBeamVersion, match=rf"Beam {BEAM_VERSION}.*{installed}"):
        check_beam_version(installed)


def test_the_state_sampler_patch_is_undone_on_leaving():
    before = StateSampler.scoped_state
    with local_streaming_runner():
        assert StateSampler.scoped_state is not before
    assert StateSampler.scoped_state is before
