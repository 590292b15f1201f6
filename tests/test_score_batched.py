"""The masked score rule over many sets against ``score_rule`` on each set's present rows (independent code)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ceas_gym.config import ConfigError
from ceas_gym.learning.aggregators import AggregationContext, score_rule
from ceas_gym.learning.score_batched import score_rule_masked


def _per_set(updates, present, faulty, previous, has_previous, stakes):
    results = []
    for index in range(updates.shape[0]):
        rows = torch.as_tensor(np.flatnonzero(present[index].numpy()))
        context = AggregationContext(
            num_faulty=int(faulty[index]),
            previous_direction=previous[index] if bool(has_previous[index]) else None,
            stakes=stakes[index][rows],
        )
        results.append((rows, score_rule(updates[index][rows], None, context)))
    return results


@pytest.mark.parametrize("seed", range(6))
def test_each_set_is_scored_as_the_rule_scores_its_present_rows(seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    sets, rows, size = 7, 9, 5
    updates = torch.randn(sets, rows, size, generator=generator, dtype=torch.float64)
    updates[1, 3] = updates[1, 2]  # equal updates: equal distances must compare equal
    present = torch.rand(sets, rows, generator=generator) < 0.75
    present[:, :4] = True  # at least 4 present rows per set
    present[2] = True
    counts = present.sum(dim=1)
    faulty = torch.minimum(counts - 3, torch.randint(0, 4, (sets,), generator=generator))
    previous = torch.randn(sets, size, generator=generator, dtype=torch.float64)
    previous[3] = 0.0  # a zero direction: cosine 0 for everyone
    has_previous = torch.tensor([True, False, True, True, False, True, True])
    stakes = torch.rand(sets, rows, generator=generator, dtype=torch.float64) + 0.5
    batched = score_rule_masked(updates, present, faulty, previous, has_previous, stakes)
    for index, (kept_rows, expected) in enumerate(_per_set(updates, present, faulty, previous, has_previous, stakes)):
        chosen = kept_rows[expected.selected]
        assert torch.equal(torch.nonzero(batched.selected[index]).ravel(), chosen), index
        torch.testing.assert_close(batched.aggregate[index], expected.aggregate, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(batched.scores[index][kept_rows], expected.scores, rtol=1e-9, atol=1e-12)
        assert torch.isnan(batched.scores[index][~present[index]]).all()


def test_identical_updates_have_no_spread_and_keep_the_lowest_indices() -> None:
    updates = torch.ones(1, 6, 3, dtype=torch.float64)
    present = torch.tensor([[True, False, True, True, True, True]])
    stakes = torch.tensor([[1.0, 1.0, 1.0, 3.0, 1.0, 1.0]], dtype=torch.float64)
    result = score_rule_masked(
        updates, present, torch.tensor([1]), torch.zeros(1, 3, dtype=torch.float64), torch.tensor([False]), stakes
    )
    # n = 5 present, f = 1: keep n - f - 2 = 2; every score is 0, so the two lowest present indices 0 and 2
    assert result.selected.tolist() == [[True, False, True, False, False, False]]
    assert torch.equal(result.scores[0, present[0]], torch.zeros(5, dtype=torch.float64))
    torch.testing.assert_close(result.aggregate[0], torch.ones(3, dtype=torch.float64))


def test_a_set_with_too_few_present_rows_is_an_error() -> None:
    updates = torch.zeros(1, 4, 2)
    present = torch.tensor([[True, True, True, False]])
    with pytest.raises(ConfigError, match="n - f - 2 >= 1"):
        score_rule_masked(
            updates, present, torch.tensor([1]), torch.zeros(1, 2), torch.tensor([False]), torch.ones(1, 4)
        )
