"""Issue 12, part 3: hostile files and output. Reports that can't attack their reader, input that
can't exhaust the machine or hang it, and a token that never crosses a network in clear."""

import csv
import os
import re
import signal
import subprocess
import sys
import zipfile

import httpx
import openpyxl
import pytest
from click.testing import CliRunner

import bulkphone
from bulkphone.cli import main
from bulkphone._errors import InputError, PermanentError
from bulkphone._graph import GraphClient
from bulkphone._ingest import read_input
from bulkphone._planfile import read_plan
from bulkphone.sim import APP_TOKEN, SimTenant, SimTransport, serve
from bulkphone._text import defuse, restore

ENV = {"BULKPHONE_ACCESS_TOKEN": APP_TOKEN}
GRAPH_SHAPE = re.compile(r"\+\d{1,3} \d+(x\d+)?\Z")


def run(*args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], env={**ENV, **(env or {})})


def cells_of(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return [cell for row in csv.reader(handle) for cell in row]


def report_rows(path):
    """A report's rows as a person's script reads them back: csv, then the apostrophes taken off."""
    with open(path, newline="", encoding="utf-8") as handle:
        return [{column: restore(value) for column, value in row.items()} for row in csv.DictReader(handle)]


def assert_safe_for_a_spreadsheet(path):
    """No cell starts as a formula would (OWASP CSV injection), except Graph's own number shape."""
    live = [cell for cell in cells_of(path) if cell[:1] in ("=", "+", "-", "@", "\t", "\r") and not GRAPH_SHAPE.match(cell)]
    assert live == [], f"{path.name} has cells a spreadsheet would run: {live}"


HOSTILE_USERS = [
    '=HYPERLINK("http://x","click")',
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "+1+cmd@contoso.com",
    "-2+3@contoso.com",
    "'=already defused by hand",
]


@pytest.mark.parametrize("value", [*HOSTILE_USERS, "+1 4255550100", "+44 7911123456x12", "'", "''=", "plain", "", "-", "\t=1+1"])
def test_defusing_is_undone_exactly_on_reading_back(value):
    written = defuse(value)
    assert restore(written) == value
    assert written[:1] not in ("=", "+", "-", "@", "\t", "\r") or GRAPH_SHAPE.match(written)


def test_every_report_csv_is_safe_to_open_and_reads_back_as_written(tmp_path, write_file):
    tenant = SimTenant()
    tenant.add_user("ann@contoso.com", {"mobile": "+1 (425) 555-0100"})  # a legacy shape Graph still holds
    for user in {*map(restore, HOSTILE_USERS), "=1+1"}:
        tenant.add_user(user, {"office": "+1 4255550199"})
    lines = "".join(f'"{user.replace(chr(34), chr(34) * 2)}",=1+1,\n' for user in HOSTILE_USERS)
    source = write_file(
        "in.csv",
        "user,mobile,office\n"
        + lines
        + '"\t=1+1",+1 425 555 0100,\n'  # a defused cell whose tab ingest strips: still defused on the way out
        + "ann@contoso.com,+1 425 555 0101,@office\n",
    )
    with serve(tenant) as url:
        assert run("normalize", source, "--report", tmp_path / "normalized.csv", "--default-region", "US").exit_code == 1
        assert run("plan", source, "--report", tmp_path / "plan.csv", "--graph-url", url).exit_code == 1
        assert run("apply", source, "--report", tmp_path / "results.csv", "--graph-url", url).exit_code == 1
    for report in ("normalized.csv", "plan.csv", "results.csv"):
        assert_safe_for_a_spreadsheet(tmp_path / report)
    # A cell someone defused by hand ('=...) is read as what it defuses, like bulkphone's own reports.
    expected = {*map(restore, HOSTILE_USERS), "=1+1", "ann@contoso.com"}
    assert {row["user"] for row in report_rows(tmp_path / "results.csv")} == expected
    plan = read_plan(tmp_path / "plan.csv")  # the plan read back is the plan that was made, cell for cell
    assert {item.user for item in plan.items} == expected
    ann = next(item for item in plan.items if item.user == "ann@contoso.com" and item.phone_type == "mobile")
    assert (ann.current, ann.raw, ann.number) == ("+1 (425) 555-0100", "+1 425 555 0101", "+1 4255550101")


def test_an_export_with_formula_like_names_plans_back_to_the_same_users(tmp_path):
    tenant = SimTenant()
    tenant.add_user("-ann@contoso.com", {"mobile": "+1 4255550100"})
    tenant.add_user("=bob@contoso.com", {"office": "+1 4255550199x12"})
    users = tmp_path / "users.csv"
    users.write_text('user\n-ann@contoso.com\n"=bob@contoso.com"\n')
    with serve(tenant) as url:
        assert run("export", "--users", users, "--report", tmp_path / "export.csv", "--graph-url", url).exit_code == 0
        assert_safe_for_a_spreadsheet(tmp_path / "export.csv")
        assert "'-ann@contoso.com" in cells_of(tmp_path / "export.csv")
        result = run("plan", tmp_path / "export.csv", "--report", tmp_path / "plan.csv", "--graph-url", url, "--mode", "sync")
    assert result.exit_code == 0, result.output
    rows = {(r["user"], r["phoneType"]): r["action"] for r in report_rows(tmp_path / "plan.csv")}
    assert rows[("-ann@contoso.com", "mobile")] == "noop" and rows[("=bob@contoso.com", "office")] == "noop"


# ---- bounded on any input ---------------------------------------------------------------------------------

LIMITED = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1536 * 2**20, 1536 * 2**20))  # 1.5 GiB: the old reader wanted ~8 GB
from bulkphone.cli import main
sys.argv = ["bulkphone", *sys.argv[1:]]
main()
"""


def run_limited(*args, timeout=60):
    """The CLI in its own process, with a memory ceiling and a time limit: a hang or a blow-up fails."""
    return subprocess.run([sys.executable, "-c", LIMITED, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **ENV})


def _bomb(path, with_dimension=True):
    book = openpyxl.Workbook()
    book.active["A2"] = "x"
    book.active["XFD1048576"] = "y"
    book.save(path)
    if not with_dimension:
        data = {item: zipfile.ZipFile(path).read(item) for item in zipfile.ZipFile(path).namelist()}
        sheet = "xl/worksheets/sheet1.xml"
        data[sheet] = re.sub(rb"<dimension [^>]*/>", b"", data[sheet])
        with zipfile.ZipFile(path, "w") as out:
            for name, content in data.items():
                out.writestr(name, content)
    return path


def test_a_tiny_workbook_declaring_a_whole_sheet_is_refused_before_loading(tmp_path):
    bomb = _bomb(tmp_path / "bomb.xlsx")
    assert bomb.stat().st_size < 10_000
    result = run_limited("normalize", bomb, "--report", tmp_path / "r.csv")
    assert result.returncode == 2, result.stderr
    assert "the sheet declares 1,048,576 rows × 16,384 columns" in result.stderr and "Fix:" in result.stderr


def test_a_workbook_with_far_cells_and_no_declared_size_is_read_within_memory(tmp_path):
    bomb = _bomb(tmp_path / "bomb.xlsx", with_dimension=False)
    result = run_limited("normalize", bomb, "--report", tmp_path / "r.csv")
    assert result.returncode == 2, result.stderr  # read in bounded memory, then: no header row, so no user column
    assert "no user column" in result.stderr


def test_a_workbook_that_unpacks_too_big_is_refused(tmp_path, monkeypatch):
    import bulkphone._ingest

    book = openpyxl.Workbook()
    book.active.append(["user", "mobile"])
    book.save(tmp_path / "in.xlsx")
    monkeypatch.setattr(bulkphone._ingest, "MAX_WORKBOOK_BYTES", 1000)
    with pytest.raises(InputError, match=r"the workbook unpacks to .* MiB, more than .*Fix: save the sheet as CSV"):
        read_input(tmp_path / "in.xlsx")


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "pipe.csv"
    os.mkfifo(path)
    return path


@pytest.fixture
def endless(tmp_path):
    path = tmp_path / "zero.csv"
    path.symlink_to("/dev/zero")
    return path


@pytest.mark.parametrize("kind", ["fifo", "endless"])
@pytest.mark.parametrize(
    "command",
    [
        ["normalize", "{bad}", "--report", "{out}"],
        ["plan", "{bad}", "--report", "{out}", "--graph-url", "https://graph.invalid"],
        ["apply", "{bad}", "--report", "{out}", "--graph-url", "https://graph.invalid"],
        ["normalize", "{good}", "--report", "{out}", "--users", "{bad}"],
        ["normalize", "{good}", "--report", "{out}", "--map", "{bad}"],
        ["apply", "--plan", "{bad}", "--report", "{out}", "--graph-url", "https://graph.invalid"],
        ["run", "{bad}"],
    ],
)
def test_a_pipe_or_a_device_as_input_is_refused_not_waited_on(request, tmp_path, kind, command):
    bad = request.getfixturevalue(kind)
    good = tmp_path / "good.csv"
    good.write_text("user,mobile\nann@contoso.com,+1 425 555 0100\n")
    args = [part.format(bad=bad, good=good, out=tmp_path / "r.csv") for part in command]

    def hung(signum, frame):
        raise TimeoutError("bulkphone waited on a pipe or a device")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(20)
    try:
        result = run(*args)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert result.exit_code == 2, result.output
    assert "not a regular file, so it could hang or never end" in result.output


def test_a_50_mb_line_gives_a_short_message(tmp_path):
    one_cell = tmp_path / "cell.csv"
    one_cell.write_text("user,mobile\n" + "x" * 50_000_000)
    header = tmp_path / "header.csv"
    header.write_text("u," * 25_000_000)
    wide = tmp_path / "wide.csv"
    wide.write_text(",".join(f"column{i}" for i in range(5000)) + "\nann,1\n")
    for path, says in ((one_cell, "field larger than field limit"), (header, "the first line is longer than 1,000,000"),
                       (wide, "no user column (found: 'column0'")):
        result = run("normalize", path, "--report", tmp_path / "r.csv")
        assert result.exit_code == 2 and says in result.output
        assert len(result.output) < 2_500
    assert "and 4,988 more" in result.output


def test_a_long_cell_is_quoted_short_in_the_report(tmp_path, write_file):
    cells = ["call me " * 30, "1." + "2" * 100_000 + "E+11", "call me " * 12_000]
    source = write_file("in.csv", "user,mobile\n" + "".join(f"ann@contoso.com,{cell}\n" for cell in cells))
    assert run("normalize", source, "--report", tmp_path / "r.csv", "--default-region", "US").exit_code == 1
    errors = [row["error"] for row in report_rows(tmp_path / "r.csv")]
    assert errors[0].startswith("not a phone number ('call me call me") and "more characters" in errors[0]
    assert errors[1].startswith("Excel scientific notation lost digits (1.2222") and "more characters" in errors[1]
    assert errors[2] == "too long for US"
    assert all(len(error) < 250 for error in errors)


def test_terminal_output_shows_control_characters_instead_of_obeying_them(tmp_path, write_file):
    evil = "ann\x1b[2J\x1b]0;pwned\x07@contoso.com"
    tenant = SimTenant()
    tenant.add_user(evil, {"mobile": "+1 4255550100"})
    source = write_file("in.csv", f'user,mobile\n"{evil}",+1 425 555 0100\n')
    with serve(tenant) as url:
        checked = run("check", source, "--graph-url", url)
        refused = run("normalize", tmp_path / "missing\x1b[31m.csv", "--report", tmp_path / "r.csv")
    assert checked.exit_code == 0, checked.output
    for output in (checked.output, refused.output):
        assert "\x1b" not in output and "\x07" not in output
    assert "ann\\x1b[2J\\x1b]0;pwned\\x07@contoso.com" in checked.output
    assert "missing\\x1b[31m.csv" in refused.output


# ---- the token only over TLS ------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["plan", "apply", "check", "export"])
def test_a_plain_http_graph_url_beyond_loopback_is_refused(tmp_path, write_file, command):
    source = write_file("in.csv", "user,mobile\nann@contoso.com,+1 425 555 0100\n")
    args = {"plan": [source, "--report", tmp_path / "r.csv"], "apply": [source, "--report", tmp_path / "r.csv"],
            "check": [], "export": ["--all", "--report", tmp_path / "r.csv"]}[command]
    result = run(command, *args, "--graph-url", "http://graph.example.invalid")
    assert result.exit_code == 2
    assert "http://graph.example.invalid is plain http, so the access token would cross the network unencrypted" in result.output


def test_plain_http_is_allowed_on_loopback_and_when_asked(tenant, clock, write_file):
    for graph_url, allow in (("http://127.0.0.1:9", False), ("http://[::1]:9", False), ("http://localhost:9", False),
                             ("http://graph.lab.example", True)):
        bulkphone.connect(bulkphone.StaticToken(APP_TOKEN), graph_url=graph_url, allow_insecure_http=allow)
    tenant.add_user("ann@contoso.com")
    connection = bulkphone.connect(bulkphone.StaticToken(APP_TOKEN), graph_url="http://graph.lab.example",
                                   transport=SimTransport(tenant), allow_insecure_http=True)
    plan = bulkphone.plan(write_file("in.csv", "user,mobile\nann@contoso.com,+1 425 555 0100\n"), connection=connection)
    assert plan.counts()["create"] == 1
    with pytest.raises(InputError, match="plain http"):
        GraphClient(httpx.AsyncClient(), base_url="http://graph.lab.example")


def test_the_cli_switch_lets_a_trusted_test_server_use_http(tmp_path, write_file):
    tenant = SimTenant()
    tenant.add_user("ann@contoso.com")
    source = write_file("in.csv", "user,mobile\nann@contoso.com,+1 425 555 0100\n")
    with serve(tenant) as url:
        # 127.1 reaches this machine without a name lookup, but isn't written as a loopback address,
        # so it stands for a lab server elsewhere: refused, then allowed when asked.
        lab = url.replace("127.0.0.1", "127.1")
        refused = run("apply", source, "--report", tmp_path / "r.csv", "--graph-url", lab)
        allowed = run("apply", source, "--report", tmp_path / "r.csv", "--graph-url", lab, "--allow-insecure-http")
    assert refused.exit_code == 2 and "plain http" in refused.output
    assert allowed.exit_code == 0, allowed.output
    assert tenant.state()["ann@contoso.com"] == {"mobile": "+1 4255550100"}


@pytest.mark.parametrize(
    "next_link",
    [
        "http://graph.test/v1.0/users?$skiptoken=2",  # https dropped to http on the same host
        "https://graph.test:8443/v1.0/users?$skiptoken=2",  # another port
        "https://graph.evil.example/v1.0/users?$skiptoken=2",  # another host
    ],
)
def test_a_next_link_must_keep_scheme_host_and_port(next_link):
    seen = []

    def graph(request):
        seen.append(str(request.url))
        return httpx.Response(200, json={"value": [{"id": "1", "userPrincipalName": "ann@contoso.com"}], "@odata.nextLink": next_link})

    async def pages():
        async with GraphClient(httpx.AsyncClient(transport=httpx.MockTransport(graph)), base_url="https://graph.test") as client:
            users, link = await client.list_users_page()
            assert link == next_link
            with pytest.raises(PermanentError, match="leads elsewhere"):
                await client.list_users_page(link)

    bulkphone._pipeline.run_sync(pages())
    assert seen == ["https://graph.test/v1.0/users?$select=id,userPrincipalName&$top=999"]


def test_a_next_link_with_the_default_port_written_out_is_followed():
    def graph(request):
        more = "https://graph.test:443/v1.0/users?$skiptoken=2" if "skiptoken" not in str(request.url) else None
        return httpx.Response(200, json={"value": [], "@odata.nextLink": more})

    async def pages():
        async with GraphClient(httpx.AsyncClient(transport=httpx.MockTransport(graph)), base_url="https://graph.test") as client:
            _, link = await client.list_users_page()
            return await client.list_users_page(link)

    assert bulkphone._pipeline.run_sync(pages()) == ([], None)


def test_an_http_sign_in_authority_is_refused(tmp_path):
    result = CliRunner().invoke(main, ["check", "--auth", "secret", "--tenant-id", "t", "--client-id", "c",
                                       "--authority-url", "http://login.example.invalid"],
                                env={"BULKPHONE_CLIENT_SECRET": "s"})
    assert result.exit_code == 2 and "is not https" in result.output
