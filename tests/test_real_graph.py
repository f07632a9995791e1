"""Graph as documented, not as the client assumed: each of issue 13's points, asserted on tenant
state, report rows and the requests that reached the tenant."""

import asyncio
import time

import httpx
import pytest
from click.testing import CliRunner
from conftest import make_connection

import bulkphone
from bulkphone.cli import main
from bulkphone._executor import NOT_UNIQUE_WARNING
from bulkphone._model import Status
from bulkphone._report import result_rows
from bulkphone.sim import APP_TOKEN, Faults, SimTenant, serve

ANN, BOB = "ann@contoso.com", "bob@contoso.com"
HELP_DESK = "+1 4255550999"


def requests_for(tenant, user, method=None):
    """The phone-method requests the tenant answered for one user (batch sub-requests included)."""
    return [r for r in tenant.requests if f"/users/{user}/" in r[1] and (method is None or r[0] == method)]


# ---- 1. extensions only on office phones ---------------------------------------------------

def test_an_extension_on_a_mobile_is_a_row_to_fix_and_never_sent(tenant, connection, write_file):
    tenant.add_user(ANN)
    path = write_file("in.csv", f"user,mobile,alternateMobile,office\n{ANN},+44 7911 123456 x12,,+1 425 555 0199 ext. 12\n")
    rows = {r["phoneType"]: r for r in result_rows(bulkphone.apply(path, connection=connection))}
    assert rows["mobile"]["action"] == "skip"
    assert rows["mobile"]["error"] == (
        "Graph supports extensions only on office phones (+44 7911123456x12): put this number in the office column, "
        "or drop the extension (x12)"
    )
    assert (rows["office"]["action"], rows["office"]["status"]) == ("create", "ok")
    assert tenant.state()[ANN] == {"office": "+1 4255550199x12"}
    assert requests_for(tenant, ANN, "POST") == [("POST", f"/v1.0/users/{ANN}/authentication/phoneMethods", 201)]


def test_normalize_reports_an_extension_on_a_mobile(write_file, tmp_path):
    source = write_file("in.csv", f"user,mobile,office\n{ANN},+1 425 555 0100 x7,+1 425 555 0100 x7\n")
    result = CliRunner().invoke(main, ["normalize", str(source), "--report", str(tmp_path / "n.csv")])
    assert result.exit_code == 1
    text = (tmp_path / "n.csv").read_text()
    assert "Graph supports extensions only on office phones" in text and ",+1 4255550100x7,ok," in text


# ---- 2. 409 phoneNumberNotUnique ---------------------------------------------------------

def test_409_not_unique_is_read_back_and_ok_with_the_warning(tenant, connection, write_file):
    tenant.add_user(BOB, {"mobile": HELP_DESK})
    tenant.add_user(ANN)
    path = write_file("in.csv", f"user,mobile,office\n{ANN},{HELP_DESK},+1 425 555 0199\n")
    result = bulkphone.apply(path, connection=connection)
    rows = {r["phoneType"]: r for r in result_rows(result)}
    assert (rows["mobile"]["status"], rows["mobile"]["warning"]) == ("ok", NOT_UNIQUE_WARNING)
    assert rows["mobile"]["smsSignInState"] == "phoneNumberNotUnique" and rows["mobile"]["httpStatus"] == ""
    assert rows["office"]["status"] == "ok"  # the user's later change is not skipped
    assert tenant.state()[ANN] == {"mobile": HELP_DESK, "office": "+1 4255550199"}
    posts = requests_for(tenant, ANN, "POST")
    assert [status for _, _, status in posts] == [409, 201]  # the 409 was not sent again
    assert len(requests_for(tenant, ANN, "GET")) == 1  # one read-back


def test_a_503_on_the_read_back_after_a_409_is_retried_not_reported_unknown(tenant, connection, write_file):
    tenant.add_user(BOB, {"mobile": HELP_DESK})
    tenant.add_user(ANN)
    path = write_file("in.csv", f"user,mobile\n{ANN},{HELP_DESK}\n")
    original = tenant.handle

    def handle(method, path, *args, **kwargs):
        answer = original(method, path, *args, **kwargs)
        if method == "POST" and ANN in path:
            tenant.fail_next("503", "GET")  # the read-back that follows the 409
        return answer

    tenant.handle = handle
    row = result_rows(bulkphone.apply(path, connection=connection))[0]
    assert (row["status"], row["warning"], row["error"]) == ("ok", NOT_UNIQUE_WARNING, "")
    assert tenant.injected["503"] == 1 and tenant.state()[ANN] == {"mobile": HELP_DESK}
    assert [status for _, _, status in requests_for(tenant, ANN, "POST")] == [409]


def test_a_shared_help_desk_number_never_stops_the_run(tenant, clock, write_file):
    tenant.add_user(BOB, {"mobile": HELP_DESK})
    users = [f"user{i}@contoso.com" for i in range(12)]
    for user in users:
        tenant.add_user(user)
    path = write_file("in.csv", "user,mobile\n" + "".join(f"{u},{HELP_DESK}\n" for u in users))
    result = bulkphone.apply(path, connection=make_connection(tenant, clock, max_concurrency=1))
    assert result.stopped == ""
    assert [o.status for o in result.outcomes.values()] == [Status.OK] * 12
    assert all(tenant.state()[u] == {"mobile": HELP_DESK} for u in users)


def test_409_with_the_number_not_saved_fails_once_with_the_fix(tenant, connection, write_file):
    tenant.not_unique_saves = False
    tenant.add_user(BOB, {"mobile": HELP_DESK})
    tenant.add_user(ANN)
    path = write_file("in.csv", f"user,mobile\n{ANN},{HELP_DESK}\n")
    row = result_rows(bulkphone.apply(path, connection=connection))[0]
    assert row["status"] == "failed" and row["httpStatus"] == 409
    assert "the number was not saved" in row["error"] and "a mobile number no other user has" in row["error"]
    assert len(requests_for(tenant, ANN, "POST")) == 1 and tenant.state()[ANN] == {}


# ---- 3. default method deletes, and 4. only run-wide errors stop a run -----------------------

def test_a_sync_where_users_keep_their_office_default_is_not_stopped(tenant, clock, write_file):
    users = [f"user{i}@contoso.com" for i in range(12)]
    for user in users:
        tenant.add_user(user, {"mobile": "+1 4255550100", "office": "+1 4255550199"}, default_method="office")
    path = write_file("in.csv", "user,mobile,office\n" + "".join(f"{u},+1 425 555 0100,\n" for u in users))
    result = bulkphone.apply(path, connection=make_connection(tenant, clock, max_concurrency=1), mode="sync")
    assert result.stopped == ""
    office = [result.outcomes[(row, "office")] for row in range(2, 14)]
    assert [o.status for o in office] == [Status.FAILED] * 12
    assert "it is the user's default sign-in method" in office[0].error and "another default in the defaultMethod column" in office[0].error
    assert sum(1 for r in tenant.requests if r[0] == "DELETE") == 12  # each tried once, never retried


def test_a_5xx_storm_still_stops_the_run(clock, write_file):
    tenant = SimTenant(clock=clock, faults=Faults(error_503=1.0))
    users = [f"user{i}@contoso.com" for i in range(14)]
    for user in users:
        tenant.add_user(user)
    path = write_file("in.csv", "user,mobile\n" + "".join(f"{u},+1 425 555 01{i:02d}\n" for i, u in enumerate(users)))
    connection = make_connection(tenant, clock, max_concurrency=1)
    tenant.faults.error_503 = 0.0
    the_plan = bulkphone.plan(path, connection=connection)
    tenant.faults.error_503 = 1.0
    result = bulkphone.apply(the_plan, connection=connection)
    assert "the last 10 users all failed with the same error" in result.stopped
    assert tenant.writes == []


# ---- 5. fresh users wait in a side lane; 6. a user gone since the plan ---------------------

def test_a_new_user_is_waited_for_while_everyone_else_proceeds(tenant, clock, write_file):
    tenant.add_user(ANN, replicating_for=75)
    tenant.add_user(BOB)
    path = write_file("in.csv", f"user,mobile\n{ANN},+1 425 555 0100\n{BOB},+1 425 555 0101\n")
    started = clock.now()
    result = bulkphone.apply(path, connection=make_connection(tenant, clock))
    assert [o.status for o in result.outcomes.values()] == [Status.OK, Status.OK]
    assert [w["user"] for w in tenant.writes] == [BOB, ANN]  # Bob wasn't held up
    assert clock.now() - started >= 75
    assert 4 <= tenant.injected["404-replicating"] <= 12  # read every few seconds, not hammered


def test_a_user_that_never_appears_is_reported_after_the_wait(tenant, clock, write_file):
    path = write_file("in.csv", "user,mobile,office\nghost@contoso.com,+1 425 555 0100,\n")
    result = bulkphone.apply(path, connection=make_connection(tenant, clock), wait_for_new_users=30)
    rows = result_rows(result)
    assert {r["status"] for r in rows} == {"skipped"}
    assert rows[0]["error"].startswith("user not found: Graph still answered 404 after waiting 30 s")
    assert tenant.writes == []


def test_a_user_deleted_between_plan_and_apply_costs_one_write_and_one_read(tenant, clock, write_file):
    tenant.add_user(ANN)
    tenant.add_user(BOB)
    path = write_file("in.csv", f"user,mobile,office\n{ANN},+1 425 555 0100,+1 425 555 0199\n{BOB},+1 425 555 0101,\n")
    connection = make_connection(tenant, clock)
    plan = bulkphone.plan(path, connection=connection)
    tenant.remove_user(ANN)
    before = len(requests_for(tenant, ANN))
    result = bulkphone.apply(plan, connection=connection)
    mobile, office = result.outcomes[(2, "mobile")], result.outcomes[(2, "office")]
    assert mobile.status is Status.FAILED and mobile.error.startswith("user no longer exists")
    assert office.status is Status.SKIPPED and "failed first" in office.error
    assert [r[0] for r in requests_for(tenant, ANN)[before:]] == ["POST", "GET"]
    assert result.stats["retries"] == 0  # no backoff, no retry loop around the read
    assert result.outcomes[(3, "mobile")].status is Status.OK


def test_a_reviewed_plan_says_the_user_no_longer_exists(tenant, clock, write_file):
    tenant.add_user(ANN)
    connection = make_connection(tenant, clock)
    plan = bulkphone.plan(write_file("in.csv", f"user,mobile\n{ANN},+1 425 555 0100\n"), connection=connection)
    tenant.remove_user(ANN)
    outcome = bulkphone.apply(plan, connection=connection, verify_unchanged=True).outcomes[(2, "mobile")]
    assert outcome.status is Status.SKIPPED and "the user no longer exists" in outcome.error
    assert tenant.writes == []


# ---- one retry loop per operation ---------------------------------------------------------

def test_a_throttled_write_is_sent_again_by_one_loop_only(tenant, connection, write_file):
    tenant.add_user(ANN)
    tenant.fail_next("503", "POST", times=2)  # a 5xx on a write: outcome unknown, so read back first
    row = result_rows(bulkphone.apply(write_file("in.csv", f"user,mobile\n{ANN},+1 425 555 0100\n"), connection=connection))[0]
    assert row["status"] == "ok" and row["attempts"] == 3
    assert [r[0] for r in requests_for(tenant, ANN)] == ["POST", "GET", "POST", "GET", "POST"]
    assert tenant.state()[ANN] == {"mobile": "+1 4255550100"}


def test_a_write_that_never_gets_through_gives_up_after_the_capped_attempts(tenant, connection, write_file):
    tenant.add_user(ANN)
    tenant.fail_next("503", "POST", times=50)
    row = result_rows(bulkphone.apply(write_file("in.csv", f"user,mobile\n{ANN},+1 425 555 0100\n"), connection=connection))[0]
    attempts = connection.policy.attempts
    assert row["status"] == "failed" and row["attempts"] == attempts
    assert len(requests_for(tenant, ANN, "POST")) == attempts
    assert len(requests_for(tenant, ANN, "GET")) == attempts  # a read-back before each later attempt, and a last one


# ---- 7. connection problems are setup errors ------------------------------------------------

def cli(*args, env=None):
    started = time.monotonic()
    result = CliRunner().invoke(main, [str(a) for a in args], env={"BULKPHONE_ACCESS_TOKEN": APP_TOKEN, **(env or {})})
    return result, time.monotonic() - started


@pytest.mark.parametrize(
    "url, says",
    [
        ("http://127.0.0.1:9", "can't reach Graph at http://127.0.0.1:9/v1.0"),
        ("https://graph.microsoft.com/v1.0", "goes past Graph's root (bulkphone adds /v1.0 itself). Fix: give the root, https://graph.microsoft.com."),
        ("graph.microsoft.com", "is not an https:// URL"),
    ],
)
def test_check_refuses_a_wrong_or_unreachable_graph_within_seconds(url, says):
    result, seconds = cli("check", "--graph-url", url)
    assert result.exit_code == 2 and says in result.output and "ready" not in result.output
    assert seconds < 10


def test_a_server_that_is_not_graph_is_a_setup_error(write_file, tmp_path):
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    import threading

    class NotGraph(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(404)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<html>nothing here</html>")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), NotGraph)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        result, _ = cli("check", "--graph-url", url)
        source = write_file("in.csv", f"user,mobile\n{ANN},+1 425 555 0100\n")
        planned, _ = cli("plan", source, "--report", tmp_path / "p.csv", "--graph-url", url)
    finally:
        server.shutdown()
        server.server_close()
    assert result.exit_code == 2 and "doesn't answer like Microsoft Graph" in result.output
    assert "<html>" not in result.output
    assert planned.exit_code == 2 and "doesn't answer like Microsoft Graph" in planned.output
    assert not (tmp_path / "p.csv").exists()


def test_plan_against_an_unreachable_graph_exits_2_before_row_1(write_file, tmp_path):
    source = write_file("in.csv", f"user,mobile\n{ANN},+1 425 555 0100\n")
    result, seconds = cli("plan", source, "--report", tmp_path / "p.csv", "--graph-url", "http://127.0.0.1:9")
    assert result.exit_code == 2 and "can't reach Graph" in result.output and seconds < 10
    assert not (tmp_path / "p.csv").exists()


def test_an_unreachable_sign_in_authority_is_a_setup_error():
    result, seconds = cli(
        "check", "--auth", "secret", "--tenant-id", "00000000-0000-0000-0000-000000000000",
        "--client-id", "00000000-0000-0000-0000-000000000001", "--authority-url", "https://127.0.0.1:9",
        env={"BULKPHONE_CLIENT_SECRET": "not-a-real-secret"},
    )
    assert result.exit_code == 2 and "can't reach the authority https://127.0.0.1:9" in result.output
    assert "please report it" not in result.output and "not-a-real-secret" not in result.output
    assert seconds < 10


def test_check_passes_against_a_reachable_graph_without_any_user(tmp_path):
    tenant = SimTenant()
    with serve(tenant) as url:
        result, _ = cli("check", "--graph-url", url)
    assert result.exit_code == 0 and f"Graph at {url}/v1.0 answered" in result.output


# ---- the budget: Graph's ceiling by default, and its 150-second window ------------------------

def test_defaults_run_at_graphs_documented_ceiling():
    connection = bulkphone.connect(bulkphone.StaticToken("t"))
    assert connection.limiter.ceiling == 20


def test_after_a_long_retry_after_the_window_budget_is_spent_as_a_burst(clock):
    limiter = bulkphone.connect(bulkphone.StaticToken("t"), clock=clock).limiter

    async def writes(count):
        for _ in range(count):
            await limiter.acquire()
            limiter.succeeded()

    asyncio.run(writes(100))
    limiter.throttled_for(120)  # the window is full: Graph frees it in two minutes
    paused = clock.now()
    asyncio.run(writes(2000))
    # Graph refilled ~120 s x the rate meanwhile: those writes go out at once, not at 20/s after.
    assert clock.now() - paused < 120 + 2000 / 20 - 60
    limiter.throttled_for(1)  # and a 429 after that says the credit was wrong: it is dropped
    resumed = clock.now() + 1
    asyncio.run(writes(40))
    assert clock.now() - resumed >= 0.5  # about one second's burst, then the rate: the banked credit is gone


def test_the_sim_window_answers_a_full_window_with_a_long_retry_after(clock):
    tenant = SimTenant(clock=clock, faults=Faults(writes_per_second=20, window_seconds=150, sliding_window=True))
    tenant.add_user(ANN)
    tenant.other_app_wrote(3000)
    clock.advance(30)
    http = httpx.Client(transport=bulkphone.sim.SimTransport(tenant), headers={"Authorization": f"Bearer {APP_TOKEN}"})
    response = http.post(f"https://graph.test/v1.0/users/{ANN}/authentication/phoneMethods",
                         json={"phoneType": "mobile", "phoneNumber": "+1 4255550100"})
    assert response.status_code == 429 and response.headers["Retry-After"] == "120"


def test_a_reviewed_plan_keeps_waiting_for_a_user_that_was_new_when_planned(tenant, clock, write_file, tmp_path):
    from bulkphone._planfile import read_plan, write_plan

    connection = make_connection(tenant, clock)
    plan = bulkphone.plan(write_file("in.csv", f"user,mobile\n{ANN},+1 425 555 0100\n"), connection=connection)
    assert [(i.action.value, i.awaits_user) for i in plan.items] == [("create", True)]
    write_plan(plan, tmp_path / "plan.csv")
    reviewed = read_plan(tmp_path / "plan.csv")
    assert reviewed.items == plan.items
    tenant.add_user(ANN, replicating_for=20)  # created after the plan, still replicating at apply
    result = bulkphone.apply(reviewed, connection=connection, verify_unchanged=True)
    assert result.outcomes[(2, "mobile")].status is Status.OK
    assert tenant.state()[ANN] == {"mobile": "+1 4255550100"}



def test_a_stop_ends_the_wait_for_new_users_at_once(tenant, clock, write_file, monkeypatch):
    monkeypatch.setattr(bulkphone._executor, "NEW_USER_POLL", (60.0, 1.0, 60.0))  # long pauses between reads
    tenant.add_user(BOB)
    path = write_file("in.csv", f"user,mobile\nghost@contoso.com,+1 425 555 0100\n{BOB},+1 425 555 0101\n")
    plan = bulkphone.plan(path, connection=make_connection(tenant, clock))
    stop = asyncio.Event()

    def interrupt_after_bob(progress):
        stop.set()  # Ctrl-C once Bob's change is done, while the ghost is still awaited

    started = clock.now()
    result = asyncio.run(bulkphone.apply_async(plan, connection=make_connection(tenant, clock), stop=stop,
                                               progress=interrupt_after_bob))
    assert result.stopped == "interrupted" and clock.now() - started < 5  # not the minute's pause
    assert result.outcomes[(3, "mobile")].status is Status.OK
    assert result.outcomes[(2, "mobile")].error.startswith("not attempted: interrupted")


def test_plan_says_which_users_graph_does_not_know_yet(write_file, tmp_path):
    tenant = SimTenant()
    tenant.add_user(BOB)
    source = write_file("in.csv", f"user,mobile\nghost@contoso.com,+1 425 555 0100\n{BOB},+1 425 555 0101\n")
    with serve(tenant) as url:
        result, _ = cli("plan", source, "--report", tmp_path / "p.csv", "--graph-url", url)
    assert result.exit_code == 0
    assert "plan: users Graph doesn't know (yet): 1, e.g. ghost@contoso.com. apply waits for new users" in result.output
