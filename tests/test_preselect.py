"""Model preselection (lbmm.preselect): pooled fold scores, the greedy rounds, bad settings."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from lbmm.grid import GridError
from lbmm.preselect import pooled_scores, preselect

TINY = {"num_chains": 2, "num_warmup": 100, "num_samples": 100}


def test_pooled_scores_weigh_folds_by_their_held_out_nuclei():
    t = pd.DataFrame(
        {
            "models": ["A+B", "A+B", "A+C"],
            "n": [10, 30, 40],
            "mlpd": [-1.0, 0.0, -0.5],
            "rms": [0.2, 0.4, 0.3],
            "ecp_mean_abs": [0.1, 0.3, 0.2],
            "converged": [True, False, True],
        }
    )
    s = pooled_scores(t).set_index("models")
    assert s.loc["A+B", "mlpd"] == pytest.approx((-10.0 + 0.0) / 40)
    assert s.loc["A+B", "rms"] == pytest.approx(np.sqrt((10 * 0.04 + 30 * 0.16) / 40))
    assert s.loc["A+B", "ecp_mean_abs"] == pytest.approx((1.0 + 9.0) / 40)
    assert s.loc["A+B", "held_out"] == 40 and s.loc["A+B", "converged"] == 0.5
    assert s.loc["A+C", "mlpd"] == pytest.approx(-0.5)


def _spec(**pre):
    return {
        "name": "pre",
        "study": "default",
        "base": {"mixers": ["linear_spread"], "sampling": TINY},
        "preselect": {"folds": ["neutron_rich"], **pre},
    }


@pytest.mark.parametrize(
    "spec, match",
    [
        ({**_spec(), "axes": {"prior_scale": [2.0]}}, "axes may hold seed only"),
        (_spec(fold=["regions"]), r"preselect\.fold is not known"),
        (_spec(start=["DUZUU"]), r"preselect\.start names no model 'DUZUU'"),
        ({**_spec(), "base": {"sampling": TINY}}, "scores one mixer entry"),
        (_spec(folds=[]), r"preselect\.folds must be a non-empty list"),
        (_spec(folds=["regoins"]), r"preselect\.folds names no fold kind 'regoins'"),
        (_spec(start="DUZU"), r"preselect\.start must be a list"),
        (_spec(max_size=0), r"preselect\.max_size must be an integer of at least 2"),
        (_spec(min_gain="x"), r"preselect\.min_gain must be a number"),
    ],
)
def test_bad_preselect_settings_are_refused(spec, match, tmp_path):
    with pytest.raises(GridError, match=match):
        preselect(spec, output=tmp_path / "p")


def test_greedy_rounds_keep_the_best_pooled_score(tmp_path):
    """Five models, start from DUZU, two rounds (max_size 3), one fold: each round's kept
    subset is the one with the highest pooled held-out log predictive density among its
    candidates, read back from that round's own results table."""
    out = tmp_path / "p"
    res = preselect(_spec(start=["DUZU"], max_size=3), output=out, n_workers=2)
    assert res.chosen[0] == "DUZU" and len(res.chosen) in (2, 3)
    rounds = pd.read_csv(out / "rounds.csv")
    assert sorted(rounds["round"].unique()) == [1, 2]  # round 1 always keeps its best
    assert (rounds.groupby("round").size() == [4, 3]).all()
    best_so_far = None
    for r in (1, 2):
        table = pd.read_csv(out / f"round-{r}" / "results.csv")
        assert set(table["split"]) == {"neutron_rich"}
        pooled = pooled_scores(table)
        top = pooled.loc[pooled["mlpd"].idxmax()]
        kept = rounds[(rounds["round"] == r) & rounds["chosen"]]
        # kept: the round's best, where it beats the last kept score (round 1: always)
        if best_so_far is None or top["mlpd"] > best_so_far:
            assert list(kept["added"]) == [top["models"].split("+")[-1]]
            assert top["models"].split("+")[-1] in res.chosen
            best_so_far = top["mlpd"]
        else:
            assert kept.empty and len(res.chosen) == 2
    rec = json.loads((out / "preselect.json").read_text())
    assert rec["chosen"] == list(res.chosen)
