import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from scipy import stats

import ceas_gym  # noqa: F401
from agents.baselines import EarliestExpiringFirst
from agents.registry import POLICIES, make_policy
from evaluation import results_doc
from evaluation.cli import main, paired_markdown, parse_seeds, summary_markdown
from evaluation.plots import envelope, round_matrix
from evaluation.runner import make_tasks, run_tasks

TINY = "ceas_gym/EntanglementScheduling-Lite-Tiny-v0"
REPO = Path(__file__).resolve().parents[1]


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("eval")
    argv = ["--env", TINY, "--policies", "eef", "random", "--seeds", "0-1", "--per-round", "--out", str(folder)]
    assert main([*argv, "--no-progress"]) == 0
    return folder


def test_episode_rows_in_grid_order_with_metrics(out: Path) -> None:
    rows = read_csv(out / "episodes.csv")
    assert [(row["env"], row["policy"], row["seed"]) for row in rows] == [
        (TINY, "eef", "0"),
        (TINY, "eef", "1"),
        (TINY, "random", "0"),
        (TINY, "random", "1"),
    ]
    assert {"return", "length", "utilisation", "served_on_time", "utilisation_mean"} <= set(rows[0])
    assert json.loads((out / "episodes.json").read_text())[0]["policy"] == "eef"


def test_returns_and_means_agree_with_round_rows(out: Path) -> None:
    episodes = read_csv(out / "episodes.csv")
    rounds = read_csv(out / "rounds.csv")
    for episode in episodes:
        mine = [r for r in rounds if (r["policy"], r["seed"]) == (episode["policy"], episode["seed"])]
        assert [int(r["round"]) for r in mine] == list(range(1, int(episode["length"]) + 1))
        assert float(episode["return"]) == pytest.approx(sum(float(r["reward"]) for r in mine))
        assert float(episode["utilisation_mean"]) == pytest.approx(np.mean([float(r["utilisation"]) for r in mine]))
        assert float(episode["utilisation"]) == pytest.approx(float(mine[-1]["utilisation"]))


def test_eef_episode_matches_a_hand_written_loop(out: Path) -> None:
    env = gym.make(TINY)
    policy = EarliestExpiringFirst(env)
    observation, info = env.reset(seed=1)
    total, done = 0.0, False
    while not done:
        observation, reward, terminated, truncated, info = env.step(policy.act(observation, info))
        total += reward
        done = terminated or truncated
    row = next(r for r in read_csv(out / "episodes.csv") if (r["policy"], r["seed"]) == ("eef", "1"))
    assert float(row["return"]) == pytest.approx(total)
    assert float(row["served_on_time"]) == pytest.approx(info["served_on_time"])


def test_summary_table_has_means_and_t_intervals(out: Path) -> None:
    text = (out / "summary.md").read_text()
    assert "| policy | seeds | return |" in text
    returns = [float(r["return"]) for r in read_csv(out / "episodes.csv") if r["policy"] == "random"]
    half = stats.t.ppf(0.975, 1) * np.std(returns, ddof=1) / math.sqrt(2)
    assert f"| random | 2 | {np.mean(returns):.4g} ± {half:.2g} |" in text


def test_plots_are_png_files(out: Path) -> None:
    for name in (
        "bars_return_EntanglementScheduling-Lite-Tiny-v0.png",
        "rounds_utilisation_EntanglementScheduling-Lite-Tiny-v0.png",
    ):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob("rounds_accuracy_*.png"))  # the Lite env reports no accuracy


def test_parallel_workers_give_the_same_rows_in_the_same_order() -> None:
    tasks = make_tasks([TINY], ["greedy", "random"], [0, 1, 2])
    serial = [result.episode for result in run_tasks(tasks, workers=1)]
    parallel = [result.episode for result in run_tasks(tasks, workers=2)]
    assert serial == parallel


def test_parse_seeds() -> None:
    assert parse_seeds(["0-3,7", "9", "2"]) == [0, 1, 2, 3, 7, 9]
    assert parse_seeds(["5"]) == [5]
    with pytest.raises(ValueError, match="empty range"):
        parse_seeds(["4-2"])
    with pytest.raises(ValueError, match="N-M"):
        parse_seeds(["a-b"])


def test_envelope_and_round_matrix_by_hand() -> None:
    rows = [
        {"policy": "p", "seed": 0, "round": 1, "m": 1.0},
        {"policy": "p", "seed": 0, "round": 2, "m": 2.0},
        {"policy": "p", "seed": 5, "round": 1, "m": 3.0},
    ]
    matrix = round_matrix(rows, "m")
    np.testing.assert_array_equal(matrix, [[1.0, 2.0], [3.0, np.nan]])
    mean, std = envelope(matrix)
    np.testing.assert_allclose(mean, [2.0, 2.0])
    np.testing.assert_allclose(std, [math.sqrt(2.0), 0.0])


def test_confidence_band_is_the_t_interval_of_the_mean_clipped_to_the_metric_range() -> None:
    from evaluation.plots import confidence_band, interval_limits

    matrix = np.array([[0.90, 0.2], [0.96, np.nan], [0.99, np.nan]])
    mean, lower, upper = confidence_band(matrix)
    half = 4.302652729911275 * np.std([0.90, 0.96, 0.99], ddof=1) / math.sqrt(3)  # t(0.975, 2), by hand
    np.testing.assert_allclose([mean[0], lower[0], upper[0]], [0.95, 0.95 - half, 0.95 + half])
    assert lower[1] == upper[1] == mean[1] == 0.2  # one seed at round 2: no interval
    _, clipped_low, clipped_high = confidence_band(matrix, (0.0, 1.0))
    assert clipped_high[0] == 1.0 and 0.95 + half > 1.0 and clipped_low[0] == lower[0]
    low, high = interval_limits(np.array([0.94, 0.96]), np.array([0.95, 0.98]), (0.0, 1.0))
    assert 0.93 < low < 0.94 and 0.98 < high < 0.99  # the axis frames the intervals, not 0 .. 1


def test_summary_markdown_single_seed_has_no_interval() -> None:
    rows = [{"env": "e", "policy": "p", "seed": 0, "return": 2.5, "x": 1.0}]
    text = summary_markdown(rows, ["x", "absent"])
    assert "| p | 1 | 2.5 | 1 |" in text and "absent" not in text


def test_registry_builds_baselines_and_lists_names() -> None:
    env = gym.make(TINY)
    assert make_policy("eef", env).name == "eef"
    assert {"eef", "greedy", "random"} <= set(POLICIES.names())
    with pytest.raises(KeyError, match="greedy"):
        make_policy("gredy", env)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--env", "ceas_gym/EntanglementScheduling-Lite-Tiny-v1"], f"Did you mean {TINY!r}"),
        (["--env", TINY, "--policies", "missing/model.zip"], "model file 'missing/model.zip' does not exist"),
        (["--env", TINY, "--policies", "eeff"], "did you mean 'eef'"),
        (["--env", TINY, "--seeds", "3-1"], "empty range"),
        (["--env", TINY, "--policies", "eef", "--baseline", "greedy"], "--baseline 'greedy': must be one of"),
    ],
)
def test_bad_arguments_exit_2(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--out", str(tmp_path / "x")])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_command_line_run_in_a_subprocess(tmp_path: Path) -> None:
    argv = [
        "--env",
        TINY,
        "--policies",
        "greedy",
        "--seeds",
        "0",
        "--no-plots",
        "--out",
        str(tmp_path),
        "--no-progress",
    ]
    result = subprocess.run(
        [sys.executable, "-m", "evaluation.cli", *argv], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "| greedy | 1 |" in (tmp_path / "summary.md").read_text()


def test_results_page_is_generated(tmp_path: Path) -> None:
    page = tmp_path / "docs" / "results.md"
    argv = ["--out", str(page), "--env", TINY, "--policies", "eef", "--seeds", "0-1", "--workers", "1"]
    assert results_doc.main([*argv, "--skip-bench"]) == 0  # the benchmarks have their own tests
    text = page.read_text()
    assert "| eef | 2 |" in text and "## Throughput" not in text and '"versions"' in text
    plot = "results_assets/EntanglementScheduling-Lite-Tiny-v0/bars_return_EntanglementScheduling-Lite-Tiny-v0.png"
    assert f"]({plot})" in text
    assert (tmp_path / "docs" / plot).is_file()


def test_results_page_models_go_to_all_envs_or_to_the_named_one() -> None:
    parser = results_doc.build_parser()
    chosen = results_doc.models_by_env(parser, ["a/E-v0", "b/F-v0"], ["all.zip", "a/E-v0=only_e.zip"])
    assert chosen == {"a/E-v0": ["all.zip", "only_e.zip"], "b/F-v0": ["all.zip"]}
    with pytest.raises(SystemExit):
        results_doc.models_by_env(parser, ["a/E-v0"], ["c/G-v0=model.zip"])


def test_paired_differences_by_hand() -> None:
    rows = [
        {"env": "e", "policy": "base", "seed": 0, "return": 10.0, "acc": 0.5},
        {"env": "e", "policy": "base", "seed": 1, "return": 20.0, "acc": 0.7},
        {"env": "e", "policy": "base", "seed": 2, "return": 30.0, "acc": 0.6},
        {"env": "e", "policy": "new", "seed": 0, "return": 12.0, "acc": 0.6},
        {"env": "e", "policy": "new", "seed": 1, "return": 21.0, "acc": 0.7},
        {"env": "e", "policy": "new", "seed": 2, "return": 33.0, "acc": 0.7},
        {"env": "e", "policy": "new", "seed": 9, "return": 99.0, "acc": 0.9},  # no baseline episode: left out
    ]
    text = paired_markdown(rows, ["acc"], "base")
    # Differences 2, 1, 3: mean 2, sample std 1, t_{0.975, 2} = 4.303, half-width 4.303 / sqrt(3) = 2.484.
    # Accuracy differences 0.1, 0, 0.1: mean 0.0667, std 0.0577, half-width 4.303 * 0.0577 / sqrt(3) = 0.1434.
    assert "### e: difference from base" in text
    assert "| new | 3 | 2 ± 2.5 | 0.06667 ± 0.14 |" in text
    # Paired t = 2 / (1 / sqrt(3)) = 3.464 with 2 dof: two-sided p = 1 - t / sqrt(t^2 + 2) = 0.0742 (closed form).
    assert "| new | 3 | 2 ± 2.5 | 0.06667 ± 0.14 | 0.074 |" in text
    assert "| base |" not in text


def test_summary_file_carries_the_paired_table_with_a_baseline(tmp_path: Path) -> None:
    argv = ["--env", TINY, "--policies", "eef", "random", "--seeds", "0-2", "--no-plots", "--baseline", "eef"]
    assert main([*argv, "--out", str(tmp_path), "--no-progress"]) == 0
    episodes = read_csv(tmp_path / "episodes.csv")
    returns = {(row["policy"], row["seed"]): float(row["return"]) for row in episodes}
    differences = [returns[("random", seed)] - returns[("eef", seed)] for seed in ("0", "1", "2")]
    mean = np.mean(differences)
    text = (tmp_path / "summary.md").read_text()
    assert f"| random | 3 | {mean:.4g} ± " in text


def test_results_page_seeds_per_env() -> None:
    parser = results_doc.build_parser()
    chosen = results_doc.seeds_by_env(parser, ["a/E-v0", "b/F-v0"], ["0-9"], ["a/E-v0=0-49"])
    assert chosen == {"a/E-v0": ["0-49"], "b/F-v0": ["0-9"]}
    with pytest.raises(SystemExit):
        results_doc.seeds_by_env(parser, ["a/E-v0"], ["0-9"], ["c/G-v0=0-3"])
    with pytest.raises(SystemExit):
        results_doc.seeds_by_env(parser, ["a/E-v0"], ["0-9"], ["0-3"])
