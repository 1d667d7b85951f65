"""`"auto"` hyperparameters resolve as OpenAI's do, and given values pass through."""

from __future__ import annotations

import math

from service.datasets.checks import default_epochs
from trainer.hyperparameters import BASE_LEARNING_RATE, Hyperparameters, resolve


def test_auto_for_the_donkey_is_the_cookbook_epochs_batch_1_and_the_base_rate() -> None:
    hp = resolve(Hyperparameters(), n_examples=12, seed=3)

    assert hp.n_epochs == default_epochs(12) == 8
    assert (hp.batch_size, hp.learning_rate_multiplier) == (1, 1.0)
    assert hp.learning_rate == BASE_LEARNING_RATE
    assert hp.seed == 3 and hp.beta is None


def test_auto_batch_is_two_per_mille_of_the_examples_and_the_rate_grows_with_its_root() -> None:
    hp = resolve(Hyperparameters(), n_examples=5000, seed=0)

    assert (hp.n_epochs, hp.batch_size) == (3, 10)
    assert math.isclose(hp.learning_rate, BASE_LEARNING_RATE * math.sqrt(10), rel_tol=1e-3)
    assert resolve(Hyperparameters(), n_examples=10**6, seed=0).batch_size == 256
    assert resolve(Hyperparameters(), n_examples=10**6, seed=0).learning_rate_multiplier == 8.0


def test_given_values_pass_through_and_a_batch_never_exceeds_the_examples() -> None:
    asked = Hyperparameters(n_epochs=4, batch_size=64, learning_rate_multiplier=0.5)
    hp = resolve(asked, n_examples=12, seed=1)

    assert (hp.n_epochs, hp.batch_size, hp.learning_rate_multiplier) == (4, 12, 0.5)
    assert hp.learning_rate == BASE_LEARNING_RATE * 0.5


def test_an_auto_seed_is_drawn_and_reported() -> None:
    seeds = {resolve(Hyperparameters(), n_examples=12, seed=None).seed for _ in range(5)}
    assert len(seeds) > 1
    assert all(0 <= s < 2**31 for s in seeds)


def test_dpo_resolves_beta() -> None:
    assert resolve(Hyperparameters(), n_examples=12, seed=0, method="dpo").beta == 0.1
    given = Hyperparameters(beta=0.3)
    assert resolve(given, n_examples=12, seed=0, method="dpo").beta == 0.3
