import textwrap

import pytest

import bulkphone
from bulkphone._clock import FakeClock
from bulkphone._retry import RetryPolicy
from bulkphone.sim import APP_TOKEN, SimTenant, SimTransport

GRAPH = "https://graph.test"


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch, tmp_path_factory):
    for name in ("BULKPHONE_ACCESS_TOKEN", "BULKPHONE_CLIENT_SECRET", "BULKPHONE_TENANT_ID", "BULKPHONE_CLIENT_ID",
                 "BULKPHONE_PLAN_KEY", "BULKPHONE_GRAPH_URL", "BULKPHONE_LOG_FORMAT"):
        monkeypatch.delenv(name, raising=False)
    # Plan keys are made in the user's config folder: each test gets a folder of its own.
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("config")))


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def tenant(clock):
    return SimTenant(clock=clock)


def make_connection(tenant, clock, token=APP_TOKEN, **kwargs):
    """A Connection to the in-process simulated tenant; waits are instant on the fake clock."""
    return bulkphone.connect(
        bulkphone.StaticToken(token),
        graph_url=GRAPH,
        transport=SimTransport(tenant),
        policy=RetryPolicy(clock=clock),
        **kwargs,
    )


@pytest.fixture
def connection(tenant, clock):
    return make_connection(tenant, clock)


@pytest.fixture
def write_file(tmp_path):
    """Write a dedented text file into tmp_path and return its path."""

    def write(name, text, encoding="utf-8"):
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding=encoding)
        return path

    return write
