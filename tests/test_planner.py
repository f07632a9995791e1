import pytest

from bulkphone._model import Action, Mode, PhoneMethod, PhoneType
from bulkphone._planner import ALTERNATE_NEEDS_MOBILE, MOBILE_KEEPS_ALTERNATE, Cell, UserState, build_plan, settle_cells

ANN = "ann@contoso.com"
M, A, O = PhoneType.MOBILE, PhoneType.ALTERNATE_MOBILE, PhoneType.OFFICE


def cell(phone_type, number="", row=2, user=ANN, **kwargs):
    return Cell(row=row, user=user, phone_type=str(phone_type), raw=number, number=number, **kwargs)


def state(**numbers):
    types = {"mobile": M, "alternateMobile": A, "office": O}
    return UserState(methods={types[t]: PhoneMethod(types[t], n) for t, n in numbers.items()})


def actions(plan):
    return [(item.row, item.phone_type, item.action) for item in plan.items]


def test_upsert_creates_updates_and_leaves_equal_numbers_alone():
    plan = build_plan(
        [cell(M, "+1 4255550100"), cell(A, "+1 4255550101"), cell(O, "+1 4255550199")],
        {ANN: state(mobile="+1 (425) 555-0100", office="+1 4255550000")},
    )
    assert actions(plan) == [(2, "mobile", Action.NOOP), (2, "alternateMobile", Action.CREATE), (2, "office", Action.UPDATE)]
    office = plan.items[2]
    assert office.current == "+1 4255550000" and office.number == "+1 4255550199"


def test_blank_cell_leaves_a_type_alone_in_upsert_and_create_only():
    for mode in (Mode.UPSERT, Mode.CREATE_ONLY):
        plan = build_plan([cell(M)], {ANN: state(mobile="+1 4255550100")}, mode)
        assert actions(plan) == [(2, "mobile", Action.NOOP)]


def test_sync_deletes_a_type_whose_cell_is_blank():
    plan = build_plan([cell(M, "+1 4255550100"), cell(O)], {ANN: state(mobile="+1 4255550100", office="+1 4255550199")}, Mode.SYNC)
    assert actions(plan) == [(2, "mobile", Action.NOOP), (2, "office", Action.DELETE)]


def test_sync_blank_with_nothing_to_delete_is_a_noop():
    plan = build_plan([cell(O)], {ANN: state()}, Mode.SYNC)
    assert actions(plan) == [(2, "office", Action.NOOP)]


def test_create_only_never_touches_an_existing_number():
    plan = build_plan([cell(M, "+1 4255550100"), cell(O, "+1 4255550199")], {ANN: state(mobile="+1 4255550000")}, Mode.CREATE_ONLY)
    assert actions(plan) == [(2, "mobile", Action.NOOP), (2, "office", Action.CREATE)]
    assert "already has a number" in plan.items[0].note


def test_creates_put_mobile_before_alternate_and_deletes_put_alternate_before_mobile():
    create = build_plan([cell(A, "+1 4255550101"), cell(M, "+1 4255550100")], {ANN: state()})
    assert [(i.phone_type, i.action) for i in create.changes_by_user()[0]] == [("mobile", Action.CREATE), ("alternateMobile", Action.CREATE)]
    delete = build_plan([cell(M), cell(A)], {ANN: state(mobile="+1 4255550100", alternateMobile="+1 4255550101")}, Mode.SYNC)
    assert [(i.phone_type, i.action) for i in delete.changes_by_user()[0]] == [("alternateMobile", Action.DELETE), ("mobile", Action.DELETE)]


def test_a_number_moving_type_is_created_on_the_new_type_before_the_old_is_deleted():
    plan = build_plan([cell(M), cell(O, "+1 4255550100")], {ANN: state(mobile="+1 4255550100")}, Mode.SYNC)
    assert [(i.phone_type, i.action) for i in plan.changes_by_user()[0]] == [("office", Action.CREATE), ("mobile", Action.DELETE)]


def test_same_user_and_type_twice_with_different_numbers_is_a_conflict_on_both_rows():
    plan = build_plan([cell(M, "+1 4255550100", row=2), cell(M, "+1 4255550101", row=7)], {ANN: state()})
    assert actions(plan) == [(2, "mobile", Action.SKIP), (7, "mobile", Action.SKIP)]
    assert all("rows 2 and 7" in item.error for item in plan.items)


def test_same_number_twice_is_one_change_and_one_noop():
    plan = build_plan([cell(M, "+1 4255550100", row=2), cell(M, "+1 4255550100", row=5, user="ANN@contoso.com")], {ANN: state()})
    assert actions(plan) == [(2, "mobile", Action.CREATE), (5, "mobile", Action.NOOP)]
    assert "row 2 decides" in plan.items[1].note


SHORT_ROW = "this row has 1 of the header's 3 fields (mobile, office missing): fill in the row"
CONFLICT = "conflict: rows 2 and 5 leave this user's mobile empty on one row and fill it in on another"


@pytest.mark.parametrize(
    "mode, filled, its_own_error",
    [(mode, {"number": "+1 4255550100"}, CONFLICT) for mode in Mode]  # a number on one row, an empty cell on another
    + [(mode, {"error": "too short for US"}, "too short for US") for mode in Mode]  # an invalid value (item 5)
    + [(mode, {"error": SHORT_ROW}, SHORT_ROW) for mode in Mode]  # a row short of fields
    + [(Mode.SYNC, {"placeholder": "N/A"}, "placeholder 'N/A' in sync mode")],  # in sync a placeholder is a row to fix
)
def test_a_type_one_row_leaves_empty_and_another_fills_is_a_conflict_never_a_delete(mode, filled, its_own_error):
    cells = [cell(M, row=2), Cell(row=5, user="ANN@contoso.com", phone_type="mobile", raw="x", **filled)]
    plan = build_plan(cells, {ANN: state(mobile="+1 4255559999")}, mode)
    assert actions(plan) == [(2, "mobile", Action.SKIP), (5, "mobile", Action.SKIP)]
    assert plan.items[0].error.startswith(CONFLICT) and "nothing is set or deleted" in plan.items[0].error
    assert plan.items[1].error.startswith(its_own_error)
    assert plan.write_count == 0


def test_rows_that_agree_on_an_empty_cell_are_one_decision():
    plan = build_plan([cell(M, row=2), cell(M, row=4)], {ANN: state(mobile="+1 4255550100")}, Mode.SYNC)
    assert actions(plan) == [(2, "mobile", Action.DELETE), (4, "mobile", Action.NOOP)]
    assert plan.items[1].note == "duplicate; row 2 decides this mobile"


@pytest.mark.parametrize("text", ["-", "--", "N/A", "n/a", "#N/A", "null", "None", "nan", "TBD", "0", "U+200B", "U+FEFF"])
def test_a_placeholder_never_deletes_in_sync_and_means_no_number_elsewhere(text):
    existing = {ANN: state(mobile="+1 4255550100")}
    sync = build_plan([cell(M, placeholder=text)], existing, Mode.SYNC)
    assert actions(sync) == [(2, "mobile", Action.SKIP)]
    assert sync.items[0].error == f"placeholder {text!r} in sync mode: leave the cell empty to delete, or fill in a number"
    for mode in (Mode.UPSERT, Mode.CREATE_ONLY):
        kept = build_plan([cell(M, placeholder=text)], existing, mode)
        assert actions(kept) == [(2, "mobile", Action.NOOP)]
        assert kept.items[0].note.startswith(f"placeholder {text!r}: read as no number")


def test_settling_is_the_same_however_often_it_is_done():
    cells = [cell(M, row=2), cell(M, "+1 4255550100", row=3), cell(O, placeholder="-", row=2)]
    once = settle_cells(cells, Mode.SYNC)
    assert settle_cells(once, Mode.SYNC) == once
    assert [bool(c.error) for c in once] == [True, True, True]


def test_masked_current_number_is_never_updated_or_deleted():
    masked = state(mobile="+1 XXXXXXXX00")
    for mode, desired in ((Mode.UPSERT, "+1 4255550100"), (Mode.SYNC, "")):
        plan = build_plan([cell(M, desired)], {ANN: masked}, mode)
        assert plan.items[0].action is Action.SKIP
        assert "masked" in plan.items[0].error and "application permission" in plan.items[0].error


def test_unknown_user_is_skipped_with_the_reason():
    plan = build_plan([cell(M, "+1 4255550100")], {ANN: UserState(error="user not found: check the UPN")})
    assert actions(plan) == [(2, "mobile", Action.SKIP)]
    assert plan.items[0].error == "user not found: check the UPN"


def test_alternate_mobile_without_a_mobile_is_refused():
    plan = build_plan([cell(A, "+1 4255550101")], {ANN: state()})
    assert plan.items[0].action is Action.SKIP
    assert plan.items[0].error == ALTERNATE_NEEDS_MOBILE


def test_alternate_mobile_is_fine_when_the_mobile_is_created_in_the_same_run():
    plan = build_plan([cell(M, "+1 4255550100"), cell(A, "+1 4255550101")], {ANN: state()})
    assert [i.action for i in plan.items] == [Action.CREATE, Action.CREATE]


def test_mobile_is_not_deleted_while_the_alternate_stays():
    plan = build_plan([cell(M), cell(A, "+1 4255550101")], {ANN: state(mobile="+1 4255550100", alternateMobile="+1 4255550101")}, Mode.SYNC)
    assert actions(plan) == [(2, "mobile", Action.SKIP), (2, "alternateMobile", Action.NOOP)]
    assert plan.items[0].error == MOBILE_KEEPS_ALTERNATE


def test_rows_with_input_errors_and_excluded_rows_are_skipped_and_kept():
    plan = build_plan(
        [cell(M, error="too short for GB", row=2), cell(M, "+1 4255550100", row=3, user="bob@contoso.com", excluded="not in the users file")],
        {},
    )
    assert actions(plan) == [(2, "mobile", Action.SKIP), (3, "mobile", Action.SKIP)]
    assert plan.items[0].error == "too short for GB"
    assert plan.items[1].error == "" and plan.items[1].note == "not in the users file"


@pytest.mark.parametrize("mode", list(Mode))
def test_every_cell_gets_exactly_one_item(mode):
    cells = [
        cell(M, "+1 4255550100", row=2),
        cell(A, "", row=2),
        cell(M, "+1 4255550101", row=3),
        cell(O, "+1 4255550199", row=4, user="bob@contoso.com"),
        cell(M, error="bad", row=5, user="cy@contoso.com"),
    ]
    plan = build_plan(cells, {ANN: state(mobile="+1 4255550000"), "bob@contoso.com": UserState(error="user not found")}, mode)
    assert sorted((i.row, i.phone_type) for i in plan.items) == sorted((c.row, c.phone_type) for c in cells)


def test_counts_and_write_count():
    plan = build_plan([cell(M, "+1 4255550100"), cell(O, "+1 4255550199")], {ANN: state(office="+1 4255550199")})
    assert plan.counts() == {"create": 1, "update": 0, "delete": 0, "noop": 1, "skip": 0}
    assert plan.write_count == 1
