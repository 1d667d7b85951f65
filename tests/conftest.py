"""The suite's fixtures live in `tests.support.fixtures` (and the trainer's, shared by both
tiers, in `tests.support.training`); this file only loads them."""

pytest_plugins = ("tests.support.fixtures", "tests.support.training")
