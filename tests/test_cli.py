"""Smoke tests of the command line."""

from __future__ import annotations

import json

import pytest

from lbmm.cli import main


def test_data_lists_recipes_and_tables(capsys):
    assert main(["data"]) == 0
    out = capsys.readouterr().out
    assert "kejzlar2023" in out and "default" in out and "FRDM95" in out


def test_data_default_json(capsys):
    assert main(["data", "--dataset", "default", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["counts"]["train"] > 400
    assert set(rep["rms"]["train"]) == set(rep["models"])
    assert all(len(t["sha256"]) == 64 for t in rep["tables"].values())


def test_data_kejzlar_table(capsys, massexplorer_dir):
    assert main(["data", "--dataset", "kejzlar2023", "--data-dir", str(massexplorer_dir)]) == 0
    out = capsys.readouterr().out
    assert "train 514, test 59, evidence 7" in out
    assert "HFB24" in out and "0.417" in out


def test_data_kejzlar_json(capsys, massexplorer_dir):
    main(["data", "--dataset", "kejzlar2023", "--data-dir", str(massexplorer_dir), "--json"])
    rep = json.loads(capsys.readouterr().out)
    assert rep["counts"]["train"] == 514 and rep["counts"]["test"] == 59
    assert rep["rms"]["train"]["SKMS"] == pytest.approx(1.196, abs=0.001)


def test_bad_input_is_one_clear_line(capsys, tmp_path):
    assert main(["data", "--dataset", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lbmm: error: unknown dataset recipe 'nope'")
    assert main(["data", "--dataset", "kejzlar2023", "--data-dir", str(tmp_path)]) == 2
    assert "lacks 10 of the 10 tables" in capsys.readouterr().err


def test_fit_smoke_json(capsys, tmp_path):
    out = tmp_path / "post.nc"
    args = ["fit", "--dataset", "default", "--mixer", "linear", "--num-chains", "1"]
    args += ["--num-warmup", "20", "--num-samples", "20", "--json", "--out", str(out)]
    code = main(args)
    assert code == 0
    rep = json.loads(capsys.readouterr().out)
    for key in ("mixer", "train_rms", "test_rms", "sigma_mean", "weights", "rhat_max",
                "ess_bulk_min", "ess_tail_min", "divergences", "ecp", "wall_s"):  # fmt: skip
        assert key in rep
    assert set(rep["ecp"]) == {f"{k / 10:.1f}" for k in range(1, 10)}
    assert out.is_file()


def test_fit_bma_prints_three_weight_rows(capsys):
    assert main(["fit", "--dataset", "default", "--mixer", "bma", "--num-samples", "200",
                 "--num-chains", "1"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "BMA(exact)" in out and "BMA(mc)" in out and "BMA(laplace)" in out
