"""A pytest plugin for tests/test_protocol.py: fake.exact's value checks raise past their runner's guard,
as a bug in klconf itself would."""

from conformance import kinds

_run = kinds.Kind.run


def _broken(self, check, upcoming=None):
    if self.name == "value" and check.api.name == "fake.exact":
        raise RuntimeError("planted")
    return _run(self, check, upcoming)


kinds.Kind.run = _broken  # type: ignore[method-assign]
