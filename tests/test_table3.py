import csv
import math

import pytest
import torch

from evaluation.statistics import t_quantile_975
from evaluation.table3 import Row, main, markdown_table, score_rule_gaps


@pytest.fixture(autouse=True)
def _single_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _row(attack, count, aggregator, seed, accuracy):
    return Row(attack, count, aggregator, seed, accuracy, accuracy, 0.0, 10, 50)


def test_markdown_means_ci_and_bold_best():
    rows = [
        _row("bit-flip", 20, "fedavg", 0, 0.50),
        _row("bit-flip", 20, "fedavg", 1, 0.70),
        _row("bit-flip", 20, "score", 0, 0.90),
        _row("bit-flip", 20, "score", 1, 0.94),
    ]
    table = markdown_table(rows)
    # fedavg: mean 60, sample std 14.142, half width t_{0.975,1} * 14.142 / sqrt(2) = 12.706 * 10
    half = t_quantile_975(1) * math.sqrt(((50 - 60) ** 2 + (70 - 60) ** 2) / 1) / math.sqrt(2)
    assert f"60.0 ± {half:.1f}" in table
    assert "**92.0 ± 25.4**" in table  # 12.706 * 2.828 / 1.414 = 25.4
    assert "holds" in table and "does not hold" not in table
    assert score_rule_gaps(rows) == {("bit-flip", 20): 0.0}


def test_gap_reported_when_score_rule_is_not_best():
    rows = [_row("gaussian", 20, "median", 0, 0.95), _row("gaussian", 20, "score", 0, 0.92)]
    assert score_rule_gaps(rows)[("gaussian", 20)] == pytest.approx(3.0)
    assert "does not hold" in markdown_table(rows)


def test_quick_command_writes_csv_markdown_and_png(tmp_path):
    rows = main(["--quick", "--out", str(tmp_path), "--no-progress"])
    with (tmp_path / "table3.csv").open() as handle:
        records = list(csv.DictReader(handle))
    assert len(records) == len(rows) == 3 * 3 * 5  # attacks x malicious counts x aggregators x 1 seed
    assert {r["attack"] for r in records} == {"label-flip", "bit-flip", "gaussian"}
    assert {int(r["num_malicious"]) for r in records} == {10, 15, 20}
    assert all(0.0 <= float(r["final_accuracy"]) <= 1.0 for r in records)
    markdown = (tmp_path / "table3.md").read_text()
    assert markdown.startswith("| Method | label-flip 10 |")
    assert (tmp_path / "table3.png").stat().st_size > 1000
