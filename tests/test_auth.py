"""Every sign-in mode gets a real token through msal from a local HTTPS authority, and the
simulated tenant checks it. No internet."""


import pytest
from authority import CLIENT_ID, TENANT, serve_authority
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from bulkphone._auth import decode_claims
from bulkphone.cli import main
from bulkphone.sim import SimTenant, serve

ANN, BOB = "ann@contoso.com", "bob@contoso.com"


@pytest.fixture
def authority(tmp_path, monkeypatch):
    with serve_authority(tmp_path) as running:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", running.ca_path)
        yield running


@pytest.fixture
def graph():
    tenant = SimTenant(tokens={})  # only JWTs from the authority get in
    tenant.add_user(ANN)
    tenant.add_user(BOB, {"mobile": "+1 4255550000"})
    with serve(tenant) as url:
        yield tenant, url


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text(f"user,mobile\n{ANN},+1 425 555 0100\n{BOB},+1 425 555 0101\n")
    return path


def invoke(command, source, tmp_path, graph_url, authority, *extra, env=None):
    args = [command, str(source), "--report", str(tmp_path / f"{command}.csv"), "--graph-url", graph_url,
            "--authority-url", authority.url, "--tenant-id", TENANT, "--client-id", CLIENT_ID, *extra]
    return CliRunner().invoke(main, args, env=env or {})


def assert_applied(result, tenant):
    assert result.exit_code == 0, result.output
    assert tenant.state() == {ANN: {"mobile": "+1 4255550100"}, BOB: {"mobile": "+1 4255550101"}}
    assert tenant.jwt_requests > 0


def test_client_secret(authority, graph, source, tmp_path):
    tenant, url = graph
    result = invoke("apply", source, tmp_path, url, authority, env={"BULKPHONE_CLIENT_SECRET": authority.secret})
    assert_applied(result, tenant)
    assert authority.issued[0]["roles"] == ["UserAuthenticationMethod.ReadWrite.All"]


def test_wrong_secret_is_exit_2_with_the_authoritys_reason_and_never_the_secret(authority, graph, source, tmp_path):
    tenant, url = graph
    wrong = "not-the-secret-9f8e7d"
    result = invoke("apply", source, tmp_path, url, authority, env={"BULKPHONE_CLIENT_SECRET": wrong})
    assert result.exit_code == 2
    assert "invalid client secret" in result.output and "Traceback" not in result.output
    assert wrong not in result.output and authority.secret not in result.output
    assert tenant.requests == []


@pytest.mark.parametrize("send_x5c", [False, True])
def test_certificate_pem(authority, graph, source, tmp_path, send_x5c):
    tenant, url = graph
    extra = ["--auth", "certificate", "--certificate", str(tmp_path / "app.pem")] + (["--send-x5c"] if send_x5c else [])
    result = invoke("apply", source, tmp_path, url, authority, *extra)
    assert_applied(result, tenant)
    header = authority.assertions[0]
    assert header["alg"] == "RS256" and ("x5t" in header or "x5t#S256" in header)
    assert ("x5c" in header) is send_x5c


def write_pfx(tmp_path, password):
    pem = (tmp_path / "app.pem").read_bytes()
    key = serialization.load_pem_private_key(pem, None)
    certificate = x509.load_pem_x509_certificate(pem)
    path = tmp_path / "app.pfx"
    path.write_bytes(pkcs12.serialize_key_and_certificates(
        b"app", key, certificate, None, serialization.BestAvailableEncryption(password.encode())
    ))
    return path


def test_certificate_pfx_with_password(authority, graph, source, tmp_path):
    tenant, url = graph
    pfx = write_pfx(tmp_path, "pfx-pass-123")
    result = invoke("apply", source, tmp_path, url, authority, "--certificate", str(pfx),
                    env={"BULKPHONE_CERTIFICATE_PASSWORD": "pfx-pass-123"})
    assert_applied(result, tenant)
    assert "pfx-pass-123" not in result.output


def test_certificate_pfx_with_a_wrong_password_says_how_to_fix_it(authority, graph, source, tmp_path):
    tenant, url = graph
    pfx = write_pfx(tmp_path, "pfx-pass-123")
    result = invoke("apply", source, tmp_path, url, authority, "--certificate", str(pfx),
                    env={"BULKPHONE_CERTIFICATE_PASSWORD": "wrong-pass-456"})
    assert result.exit_code == 2
    assert "can't load the certificate" in result.output and "wrong-pass-456" not in result.output
    assert tenant.requests == []


@pytest.mark.parametrize("client_id", [None, "99999999-8888-7777-6666-555555555555"])
def test_managed_identity(authority, graph, source, tmp_path, monkeypatch, client_id):
    tenant, url = graph
    monkeypatch.setenv("IDENTITY_ENDPOINT", f"{authority.url}/msi/token")
    monkeypatch.setenv("IDENTITY_HEADER", authority.identity_header)
    extra = ["--auth", "managed-identity"] + (["--managed-identity-client-id", client_id] if client_id else [])
    result = CliRunner().invoke(main, ["apply", str(source), "--report", str(tmp_path / "r.csv"), "--graph-url", url, *extra])
    assert_applied(result, tenant)
    assert authority.issued[0]["appid"] == (client_id or "system-assigned-identity")
    assert authority.issued[0]["aud"] == "https://graph.microsoft.com"


def test_workload_identity_reads_the_federated_token_file(authority, graph, source, tmp_path, monkeypatch):
    tenant, url = graph
    token_file = tmp_path / "federated-token"
    token_file.write_text("eyJ.federated.token-from-the-platform")
    authority.federated_token = "eyJ.federated.token-from-the-platform"
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", str(token_file))
    result = invoke("apply", source, tmp_path, url, authority)  # the mode is detected from the environment
    assert_applied(result, tenant)


def test_device_code_sign_in_shows_the_code_and_masked_numbers_stop_the_run(authority, graph, source, tmp_path):
    tenant, url = graph
    result = invoke("apply", source, tmp_path, url, authority, "--auth", "device-code")
    assert "enter the code BULK-PHONE" in result.output
    assert "scp" in authority.issued[0]
    # the preflight probe reads ann (no numbers): fine; bob's number comes back masked to a delegated admin
    check = CliRunner().invoke(main, ["check", "--probe-user", BOB, "--graph-url", url, "--authority-url", authority.url,
                                      "--tenant-id", TENANT, "--client-id", CLIENT_ID, "--auth", "device-code"])
    assert check.exit_code == 2
    assert "masked numbers" in check.output and "application permission" in check.output
    assert tenant.writes[-1]["user"] == ANN  # ann had nothing to mask; bob was never written
    assert tenant.state()[BOB] == {"mobile": "+1 4255550000"}


def test_masked_numbers_stop_apply_before_any_write(authority, graph, tmp_path):
    tenant, url = graph
    source = tmp_path / "bob-first.csv"
    source.write_text(f"user,mobile\n{BOB},+1 425 555 0101\n{ANN},+1 425 555 0100\n")
    result = invoke("apply", source, tmp_path, url, authority, "--auth", "device-code")
    assert result.exit_code == 2
    assert "masked numbers" in result.output
    assert tenant.writes == []


def test_missing_permission_is_found_before_row_1(authority, graph, source, tmp_path):
    tenant, url = graph
    authority.roles = ["User.Read.All"]
    env = {"BULKPHONE_CLIENT_SECRET": authority.secret}
    result = invoke("apply", source, tmp_path, url, authority, env=env)
    assert result.exit_code == 2
    assert "grants User.Read.All, none of UserAuthenticationMethod.ReadWrite.All" in result.output
    assert "Grant admin consent" in result.output
    assert tenant.requests == []


def test_read_permission_is_enough_to_plan_but_not_to_apply(authority, graph, source, tmp_path):
    tenant, url = graph
    authority.roles = ["UserAuthenticationMethod.Read.All"]
    env = {"BULKPHONE_CLIENT_SECRET": authority.secret}
    assert invoke("plan", source, tmp_path, url, authority, env=env).exit_code == 0
    applied = invoke("apply", source, tmp_path, url, authority, env=env)
    assert applied.exit_code == 2 and "UserAuthenticationMethod.ReadWrite.All" in applied.output
    assert tenant.writes == []


def test_the_phone_only_permission_can_set_numbers_but_not_the_default_method(authority, graph, tmp_path):
    tenant, url = graph
    authority.roles = ["UserAuthMethod-Phone.ReadWrite.All"]
    env = {"BULKPHONE_CLIENT_SECRET": authority.secret}
    numbers = tmp_path / "numbers.csv"
    numbers.write_text(f"user,mobile\n{ANN},+1 425 555 0100\n")
    with_default = tmp_path / "default.csv"
    with_default.write_text(f"user,mobile,defaultMethod\n{ANN},+1 425 555 0100,sms\n")
    refused = invoke("apply", with_default, tmp_path, url, authority, env=env)
    assert refused.exit_code == 2, refused.output
    assert ("none of UserAuthenticationMethod.ReadWrite.All, which apply needs for the defaultMethod and smsSignIn "
            "columns") in refused.output
    assert tenant.writes == []
    assert invoke("apply", numbers, tmp_path / "r2", url, authority, env=env).exit_code == 0


def test_a_token_that_expires_mid_run_is_renewed(authority, graph, tmp_path):
    tenant, url = graph
    users = [f"user{i}@contoso.com" for i in range(30)]
    for user in users:
        tenant.add_user(user)
    source = tmp_path / "many.csv"
    source.write_text("user,mobile\n" + "".join(f"{u},+1 425 555 {i:04d}\n" for i, u in enumerate(users)))
    authority.valid_for = 1  # Graph rejects it after a second; msal still thinks it is good for an hour
    result = invoke("apply", source, tmp_path, url, authority, "--max-writes-per-second", "10",
                    env={"BULKPHONE_CLIENT_SECRET": authority.secret})
    assert result.exit_code == 0, result.output
    assert all(tenant.state()[u] for u in users)
    assert len(authority.issued) >= 2
    assert any(status == 401 for _, _, status in tenant.requests)


def test_check_reports_what_it_verified(authority, graph, tmp_path):
    tenant, url = graph
    result = CliRunner().invoke(
        main,
        ["check", "--probe-user", BOB, "--graph-url", url, "--authority-url", authority.url, "--tenant-id", TENANT,
         "--client-id", CLIENT_ID],
        env={"BULKPHONE_CLIENT_SECRET": authority.secret},
    )
    assert result.exit_code == 0, result.output
    assert "application token" in result.output and "UserAuthenticationMethod.ReadWrite.All" in result.output
    assert "not masked" in result.output and "ready to apply" in result.output
    assert tenant.writes == []


def test_secrets_never_reach_output_reports_or_journal(authority, graph, source, tmp_path):
    tenant, url = graph
    env = {"BULKPHONE_CLIENT_SECRET": authority.secret}
    outputs = [invoke(command, source, tmp_path, url, authority, env=env).output for command in ("plan", "apply")]
    outputs.append(invoke("apply", source, tmp_path, url, authority, env={"BULKPHONE_CLIENT_SECRET": "wrong-" + authority.secret}).output)
    files = [p.read_bytes() for p in tmp_path.iterdir() if p.is_file() and p.suffix in (".csv", ".sqlite", ".sqlite-wal")]
    assert files
    for text in outputs:
        assert authority.secret not in text
    for data in files:
        assert authority.secret.encode() not in data


def test_china_cloud_says_the_api_may_be_unavailable(graph, source, tmp_path):
    tenant, url = graph
    tenant.tokens["opaque"] = next(iter(SimTenant().tokens.values()))
    result = CliRunner().invoke(main, ["plan", str(source), "--report", str(tmp_path / "p.csv"), "--cloud", "china",
                                       "--graph-url", url], env={"BULKPHONE_ACCESS_TOKEN": "opaque"})
    assert result.exit_code == 0, result.output
    assert "China (21Vianet)" in result.output


def test_decode_claims_reads_a_jwt_and_ignores_anything_else():
    from authority import make_jwt

    assert decode_claims(make_jwt({"roles": ["A"]})) == {"roles": ["A"]}
    assert decode_claims("opaque-token") == {}
    assert decode_claims("a.b.c") == {}
