import pytest


@pytest.fixture(autouse=True, scope="session")
def _no_oracle_disk_cache():
    """klconf's own tests never read a stale oracle cache, nor write one. Set for the tests in this
    folder only: pytest also loads this file for a `klconf run` started in the repository root
    (testpaths), and changing the environment at import would switch that run's cache off."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KLCONF_CACHE_DIR", "off")
        yield
