"""Smoke tests of the command line."""

from __future__ import annotations

import contextlib
import io
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
    """--json reports the fit's numbers; they are those of the saved posterior."""
    import numpy as np

    from lbmm.data import load_dataset
    from lbmm.inference import Posterior

    out = tmp_path / "post.nc"
    args = ["fit", "--dataset", "default", "--mixer", "linear", "--num-chains", "1"]
    args += ["--num-warmup", "20", "--num-samples", "20", "--json", "--out", str(out)]
    assert main(args) == 0
    rep = json.loads(capsys.readouterr().out)
    post = Posterior.load(out)
    assert post.samples("sigma").shape == (20,)
    assert rep["sigma_mean"] == pytest.approx(float(post.samples("sigma").mean()), rel=1e-12)
    w = post.samples("weights").mean(axis=0)
    ds = load_dataset("default")
    assert list(rep["weights"].values()) == pytest.approx(list(w), rel=1e-12)
    assert list(rep["weights"]) == list(ds.models)
    # train rms: the posterior-mean mixture at the training nuclei (computed by hand here)
    tr = ds.split("train")
    mu = post.samples("weights") @ tr.F.T
    assert rep["train_rms"] == pytest.approx(np.sqrt(np.mean((mu.mean(0) - tr.y) ** 2)), rel=1e-9)
    assert set(rep["ecp"]) == {f"{k / 10:.1f}" for k in range(1, 10)}
    assert 0 <= rep["test"]["pit_ks_p"] <= 1 and len(rep["test"]["pit"]) == rep["test"]["n"]


def test_fit_bma_prints_three_weight_rows(capsys):
    assert main(["fit", "--dataset", "default", "--mixer", "bma", "--num-samples", "200",
                 "--num-chains", "1"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "BMA(exact)" in out and "BMA(mc)" in out and "BMA(laplace)" in out


# ---------------------------------------------------------------------- fit options


def test_fit_offers_every_registered_mixer():
    from lbmm.cli import build_parser
    from lbmm.mixers import MIXERS

    parser = build_parser()
    fit = parser._subparsers._group_actions[0].choices["fit"]
    mixer = next(a for a in fit._actions if a.dest == "mixer")
    assert set(mixer.choices) == set(MIXERS)


def test_option_values_are_read_as_json_where_they_parse():
    from lbmm.cli import _parse_options

    opts = _parse_options(["gp=exact", "hsgp_m=[20, 30]", "hsgp_c=1.5", "intercept=false"])
    assert opts == {"gp": "exact", "hsgp_m": [20, 30], "hsgp_c": 1.5, "intercept": False}
    with pytest.raises(ValueError, match="expected KEY=VALUE"):
        _parse_options(["gp"])


def test_fit_refuses_an_unknown_option(capsys):
    args = ["fit", "--mixer", "linear", "--option", "gp=exact", "--num-chains", "1"]
    assert main([*args, "--num-warmup", "5", "--num-samples", "5", "--quiet"]) == 2
    assert "unknown option(s) ['gp']" in capsys.readouterr().err


def test_fit_passes_options_to_a_local_mixer(capsys, tmp_path):
    """intercept=false reaches the model: β has one row per input, none for an intercept."""
    from lbmm.inference import Posterior

    out = tmp_path / "gld.nc"
    args = ["fit", "--mixer", "glm_dirichlet", "--option", "intercept=false", "--json"]
    args += ["--out", str(out)]
    assert main([*args, "--num-chains", "1", "--num-warmup", "10", "--num-samples", "10"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["options"]["intercept"] is False and rep["mixer"] == "glm_dirichlet"
    assert Posterior.load(out).samples("beta").shape[1:] == (2, 5)


def test_fit_on_corrected_models(capsys, monkeypatch):
    """--corrected fits on the GP-corrected models: BMA's evidences, and so its weights,
    change (the corrected models fit the evidence nuclei far better). The wiring is what is
    tested here (the corrections themselves in test_corrections.py): one optimiser start per
    model instead of six keeps it cheap."""
    import lbmm.corrections

    full = lbmm.corrections.correct
    monkeypatch.setattr(lbmm.corrections, "correct", lambda ds, **kw: full(ds, n_restarts=0, **kw))
    args = ["fit", "--mixer", "bma", "--num-samples", "50", "--num-chains", "1", "--json"]
    assert main([*args, "--corrected"]) == 0
    corr = json.loads(capsys.readouterr().out)
    assert main(args) == 0
    raw = json.loads(capsys.readouterr().out)
    assert corr["corrected"] is True and raw["corrected"] is False
    assert corr["bma_weights"]["exact"] != pytest.approx(raw["bma_weights"]["exact"], abs=1e-3)


# ---------------------------------------------------------------------- studies


def test_studies_lists_the_builtin_ones(capsys):
    assert main(["studies"]) == 0
    out = capsys.readouterr().out
    assert "default" in out and "kejzlar2023" in out
    assert main(["studies", "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out)) == {"default", "kejzlar2023", "masses"}


def test_study_show_prints_the_builtin_file(capsys):
    import tomllib

    from lbmm.study import builtin_study_text

    assert main(["study", "show", "default"]) == 0
    out = capsys.readouterr().out
    assert out == builtin_study_text("default")
    assert tomllib.loads(out)["name"] == "default"


def test_study_show_resolved_and_check(capsys, tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('name = "mine"\n[[mixers]]\nmixer = "linear"\n')
    assert main(["study", "show", str(path)]) == 0
    out = capsys.readouterr().out
    assert "num_warmup = 1000" in out and 'key = "linear"' in out
    assert main(["study", "check", str(path)]) == 0
    assert "is valid" in capsys.readouterr().out
    path.write_text('name = "mine"\n[sampling]\nnum_chains = "four"\n[[mixers]]\nmixer = "bma"\n')
    assert main(["study", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "key 'sampling.num_chains' must be an integer" in err and "mine.toml" in err


# ---------------------------------------------------------------------- run, report, predict


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """``lbmm run`` of a tiny study through the CLI (2 chains × 20 + 20, three models)."""
    root = tmp_path_factory.mktemp("cli")
    study = root / "tiny.toml"
    study.write_text(
        'name = "tiny"\n[data]\nrecipe = "default"\nmodels = ["DUZU", "FRDM95", "WS32010"]\n'
        '[[mixers]]\nmixer = "bma"\n[[mixers]]\nmixer = "linear"\n'
    )
    out = root / "run"
    args = [
        "run",
        str(study),
        "--out",
        str(out),
        "--num-chains",
        "2",
        "--num-warmup",
        "20",
        "--num-samples",
        "20",
        "--seed",
        "5",
        "--quiet",
        "--cache-dir",
        str(root / "c"),
    ]
    # run here, not in the first test, so every test using the folder has it whatever the
    # order or the worker it runs on
    with contextlib.redirect_stdout(io.StringIO()) as buf:
        code = main(args)
    return out, args, code, buf.getvalue()


def test_run_writes_a_run_folder_and_prints_the_tables(cli_run, capsys):
    out, args, code, printed = cli_run
    assert code == 0
    assert "Table 1" in printed and "GBMM+L" in printed and "BMA(ex)" in printed
    assert f"run folder: {out}" in printed
    man = json.loads((out / "manifest.json").read_text())
    assert man["study"]["mixers"][1]["sampling"]["num_samples"] == 20
    assert man["seed"] == 5 and man["mixers"]["linear"]["seed"] == 5
    assert (out / "report.html").is_file()
    assert main(args) == 2  # the folder exists now
    assert "already exists; pass --overwrite" in capsys.readouterr().err


def test_report_rebuilds(cli_run, capsys):
    out, *_ = cli_run
    (out / "report.html").unlink()
    assert main(["report", str(out)]) == 0
    assert "report:" in capsys.readouterr().out
    assert (out / "report.html").is_file()


def test_predict_prints_rows_and_json(cli_run, capsys):
    out, *_ = cli_run
    assert main(["predict", str(out), "--nuclei", "50,82", "208Pb", "132Sn"]) == 0
    text = capsys.readouterr().out
    assert text.count("132Sn") == 2 and text.count("208Pb") == 2  # each nucleus once per mixer
    assert "GBMM+L" in text and "P(>0)" in text
    assert main(["predict", str(out), "--nuclei", "82,126", "--mixers", "linear", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 1 and rows[0]["nucleus"] == "208Pb" and rows[0]["lo95"] < rows[0]["hi95"]


def test_report_and_predict_refuse_foreign_folders(cli_run, capsys, tmp_path):
    for cmd in (["report", str(tmp_path)], ["predict", str(tmp_path), "--nuclei", "50,82"]):
        assert main(cmd) == 2
        err = capsys.readouterr().err
        assert err.startswith("lbmm: error: ") and "no manifest.json" in err
    out, *_ = cli_run
    assert main(["predict", str(out), "--nuclei", "50,2"]) == 2
    assert "nucleus 52Sn (Z=50, N=2) is not in the dataset" in capsys.readouterr().err
    assert main(["predict", str(out), "--nuclei", "50;82"]) == 2
    assert main(["run", "nope"]) == 2
    assert "no study 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["--mixer", "gp_dirichlet", "--option", "hsgp_m=[0,0]"],
            "option hsgp_m: expected 2 positive",
        ),
        (["--mixer", "linear", "--num-chains", "0"], "num_chains: expected an integer >= 1"),
        (["--mixer", "linear", "--thinning", "50"], "thinning 50 exceeds num_samples 10"),
        (["--mixer", "linear", "--init", "prior"], "init: expected one of"),
        (["--mixer", "gp_dirichlet", "--option", "hsgp_c=0.5"], "option hsgp_c: expected"),
    ],
)
def test_bad_settings_are_refused_before_sampling(capsys, extra, message):
    args = ["fit", "--num-warmup", "5", "--num-samples", "10", "--quiet", *extra]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("lbmm: error: ") and message in err
    assert "Traceback" not in err


def test_a_bug_keeps_its_traceback(monkeypatch):
    """Only the user's input errors become one-line messages: an internal ValueError is a
    bug and propagates with its traceback."""
    import lbmm.data

    def broken(*args, **kwargs):
        raise ValueError("internal: shapes do not match")

    monkeypatch.setattr(lbmm.data, "load_dataset", broken)
    monkeypatch.setattr("lbmm.cli.load_dataset", broken)
    with pytest.raises(ValueError, match="internal: shapes"):
        main(["data", "--dataset", "default"])
