"""The hold budgets: seconds of holding per user and player within a window,
in a table that stays bounded without forgetting a budget spent."""

from __future__ import annotations

from jetforce_sesh.bridge.holds import HoldBudgets

ALICE = (1000, "visits", b"a" * 32)
BOB = (1000, "visits", b"b" * 32)


def test_holds_add_up_within_the_window_and_start_again_after() -> None:
    budgets = HoldBudgets(budget=10, window=60)
    assert 10 == budgets.left(ALICE, 0)
    budgets.charge(ALICE, 5, 9)
    budgets.charge(ALICE, 20, 24.5)
    assert (1.5, 10) == (budgets.left(ALICE, 30), budgets.left(BOB, 30))
    assert 35 == budgets.reopens(ALICE, 30)
    # The window opened at the first hold, at 5: at 65 it has closed.
    assert 10 == budgets.left(ALICE, 65)
    budgets.charge(ALICE, 70, 71)
    assert (9, 60) == (budgets.left(ALICE, 71), budgets.reopens(ALICE, 70))


def test_closed_windows_are_forgotten() -> None:
    budgets = HoldBudgets(budget=10, window=60)
    budgets.charge(ALICE, 0, 1)
    budgets.charge(BOB, 30, 31)
    budgets.forget_closed(61)
    assert 1 == len(budgets)
    budgets.forget_closed(91)
    assert 0 == len(budgets)


def test_a_full_table_forgets_those_that_held_least() -> None:
    """A program that looks up many players for an instant each cannot wash
    out the budget it spent on one."""
    budgets = HoldBudgets(budget=10, window=60, most=4)
    budgets.charge(ALICE, 0, 10)
    for n in range(10):
        budgets.charge((1000, "visits", bytes([n]) * 32), 1, 1.001)
    assert 4 >= len(budgets)
    assert 0 == budgets.left(ALICE, 20)
