"""The CEAS Fig. 4 reproduction command, on a few rounds."""

from __future__ import annotations

import csv

import pytest

from evaluation import paper_fig4


def test_paper_fig4_writes_csv_table_and_plot(tmp_path, capsys):
    out = tmp_path / "fig4"
    assert paper_fig4.main(["--seeds", "2", "--rounds", "6", "--workers", "1", "--out", str(out), "--no-progress"]) == 0
    rows = list(csv.DictReader(open(out / "rounds.csv")))
    assert len(rows) == 4 * 2 * 6  # arms (2 protocols x 2 schedulers) x seeds x rounds
    assert {row["arm"] for row in rows} == set(paper_fig4.ARMS)
    summary = list(csv.DictReader(open(out / "summary.csv")))
    assert [row["arm"] for row in summary] == list(paper_fig4.ARMS)
    for row in summary:
        assert 0.0 <= float(row["final_accuracy"]) <= 1.0
        assert 0.0 <= float(row["utilisation"]) <= 1.0
    assert (out / "accuracy.png").stat().st_size > 10_000
    printed = capsys.readouterr().out
    assert "CEAS (EEF)" in printed and "random selection" in printed


def test_summary_uses_the_last_rounds_per_seed():
    rows = []
    for seed, values in enumerate([[0.2, 0.4, 0.6, 0.8], [0.1, 0.3, 0.5, 0.7]]):
        for round_index, accuracy in enumerate(values, start=1):
            for arm in paper_fig4.ARMS:
                rows.append(
                    {
                        "arm": arm,
                        "seed": seed,
                        "round": round_index,
                        "accuracy": accuracy,
                        "utilisation": 0.9,
                        "isolation_rate": 1.0,
                        "false_quarantine_rate": 0.0,
                    }
                )
    summary = paper_fig4.summarise(rows, window=2)
    # Seed 0: mean(0.6, 0.8) = 0.7; seed 1: mean(0.5, 0.7) = 0.6; mean 0.65, sample std 0.0707.
    assert summary[0]["final_accuracy"] == pytest.approx(0.65)
    assert summary[0]["final_accuracy_std"] == pytest.approx(0.070710678, rel=1e-6)
    # Within-run spread over the window: std(0.6, 0.8) = std(0.5, 0.7) = 0.1.
    assert summary[0]["within_run_std"] == pytest.approx(0.1)


def test_too_few_seeds_is_an_error():
    with pytest.raises(SystemExit):
        paper_fig4.main(["--seeds", "1"])


def test_env_kwargs_merge_with_the_attack_and_reach_every_arm():
    merged = paper_fig4.scenario_kwargs(
        "phased", {"roles": {"byzantine_hardware": "ceas-honest"}, "learning": {"data": {"byzantine_separation": 1.4}}}
    )
    assert merged["roles"] == {"byzantine_hardware": "ceas-honest"}
    assert merged["learning"]["data"] == {"byzantine_separation": 1.4}
    assert merged["learning"]["attack"] == "phased"  # the --attack flag's settings are kept beside the user's
    assert paper_fig4.scenario_kwargs("switching", {}) == {}
    rows = paper_fig4.run_arm("CEAS (EEF)", 0, 2, paper_fig4.scenario_kwargs("phased", {"budget": 0}))
    assert [row["utilisation"] for row in rows] == [0.0, 0.0]  # budget 0: the scenario change reached the arm


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (["protocol:qba"], "--env-kwargs protocol"),
        (["max_rounds:5"], "--env-kwargs max_rounds"),
        (["learning:{attack: reversal}"], "learning.attack"),
        (["learning:3"], "expected a mapping"),
    ],
)
def test_env_kwargs_the_arms_set_themselves_are_refused(items, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        paper_fig4.main(["--seeds", "2", "--rounds", "2", "--env-kwargs", *items, "--no-progress"])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
