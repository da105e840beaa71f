"""Reporting: tables, figures and the HTML page of a run folder, rebuilt without sampling, and
the page checked in a real headless browser (Debian's ``chromium``; skipped where absent).

The run behind these tests uses tiny sampling settings (not converged): it tests the report,
not the statistics.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from browser import Page, chromium, chromium_args
from lbmm.report import build_report
from lbmm.report.figures import choose_chains, hyperparameters
from lbmm.report.tables import table1, table2, to_markdown
from lbmm.run import RunError, run_study
from lbmm.study import study_from_dict

MODELS = ["DUZU", "FRDM95", "WS32010"]
LOCAL = "glm_dirichlet"
LOCAL_KEY = LOCAL  # its key in the run (constant noise: no suffix)
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    mixers = [{"mixer": "bma"}, {"mixer": "linear"}, {"mixer": LOCAL}]
    raw = {
        "name": "rep",
        "description": "report test",
        "data": {"recipe": "default", "models": MODELS},
        "sampling": {"num_chains": 2, "num_warmup": 30, "num_samples": 30},
        "report": {"chains": [50, 82]},
        "mixers": mixers,
    }
    out = tmp_path_factory.mktemp("runs") / "rep"
    cache = tmp_path_factory.mktemp("cache")
    return run_study(study_from_dict(raw), output=out, cache_dir=cache, report=False)


@pytest.fixture(scope="module")
def report(run):
    return build_report(run.path)


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.links: list[str] = []
        self.scripts_src: list[str] = []
        self.stylesheets: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.images.append(a["src"])
        elif tag == "a" and "href" in a:
            self.links.append(a["href"])
        elif tag == "script" and "src" in a:
            self.scripts_src.append(a["src"])
        elif tag == "link":
            self.stylesheets.append(a.get("href", ""))


def _page(run) -> _Links:
    parser = _Links()
    parser.feed((run.path / "report.html").read_text())
    return parser


# ---------------------------------------------------------------------- tables


def test_tables_are_written_as_csv_and_markdown(run, report):
    for name in ("table1", "table2", "diagnostics"):
        for ext in ("csv", "md"):
            assert (run.path / "tables" / f"{name}.{ext}").is_file()
    assert report["tables"] == sorted(report["tables"])
    md = (run.path / "tables" / "table1.md").read_text().strip().splitlines()
    assert len({line.count("|") for line in md}) == 1  # a well-formed table


def test_table1_rows_and_values(run, report):
    t1 = pd.read_csv(run.path / "tables" / "table1.csv")
    met = run.metrics()
    assert list(t1["name"][:3]) == MODELS
    assert list(t1[t1["kind"] == "mixer"]["key"]) == run.keys
    # by hand from the run's CSV files: σ_k = a raw model's train rms; rms of the
    # predictive means in predictions.csv; σ the posterior mean of the stored draws
    data = run.dataset_frame()
    tr, te = data[data["in_train"]], data[data["in_test"]]
    for m in MODELS:
        row = t1[t1["name"] == m].iloc[0]
        assert row["sigma"] == pytest.approx(np.sqrt(np.mean((tr[m] - tr["y"]) ** 2)))
        assert row["test_rms"] == pytest.approx(np.sqrt(np.mean((te[m] - te["y"]) ** 2)))
    lin = t1[t1["key"] == "linear"].iloc[0]
    pr = run.predictions()
    pr = pr[(pr["mixer"] == "linear") & pr["in_train"]]
    assert lin["train_rms"] == pytest.approx(np.sqrt(np.mean((pr["mean"] - pr["y_obs"]) ** 2)))
    sig = run.posterior("linear").samples("sigma")
    assert lin["sigma"] == pytest.approx(float(sig.mean()))
    assert met["mixers"]["linear"]["sigma_mean"] == pytest.approx(float(sig.mean()))


def test_table2_has_three_bma_rows_and_every_mixer(run, report):
    t2 = pd.read_csv(run.path / "tables" / "table2.csv")
    assert list(t2["name"][:3]) == ["BMA(ex)", "BMA(MC)", "BMA(Lap)"]
    assert set(MODELS) <= set(t2.columns)
    np.testing.assert_allclose(t2[t2["name"] == "BMA(ex)"][MODELS].sum(axis=1), 1.0)
    # a local mixer's row: the mean over the training nuclei of its weights in weights.csv
    row = t2[t2["key"] == LOCAL].iloc[0]
    assert row["kind"] == "local (train mean)"
    w = run.weights()
    train = set(run.dataset_frame().query("in_train")["nucleus"])
    w = w[(w["mixer"] == LOCAL) & w["nucleus"].isin(train)]
    assert len(w) == len(train)
    for m in MODELS:
        assert row[m] == pytest.approx(w[f"mean_{m}"].mean(), rel=1e-6)


def test_calibration_table_agrees_with_the_intervals_of_predictions_csv(run, report):
    """The share outside the 95 % interval, by hand from predictions.csv (lo95, hi95 at the
    test nuclei), is the table's; BMA is scored without its evidence nuclei."""
    tc = pd.read_csv(run.path / "tables" / "calibration.csv")
    assert list(tc["key"]) == run.keys and set(tc["scored on"]) == {"test"}
    pr = run.predictions()
    evidence = set(run.posterior("bma").settings["fitted_nuclei"])
    for key in run.keys:
        d = pr[(pr["mixer"] == key) & pr["in_test"]]
        if key == "bma":
            d = d[~d["nucleus"].isin(evidence)]
        out = np.mean((d["y_obs"] < d["lo95"]) | (d["y_obs"] > d["hi95"]))
        row = tc[tc["key"] == key].iloc[0]
        assert row["outside 95 %"] == pytest.approx(out, abs=1e-12), key
        assert row["n"] == len(d)
        assert 0 <= row["PIT KS p"] <= 1
    assert "Calibration on the test split" in (run.path / "report.html").read_text()


def test_diagnostics_table(run, report):
    td = pd.read_csv(run.path / "tables" / "diagnostics.csv")
    assert list(td["key"]) == run.keys
    assert td.set_index("key").loc["bma", "sampler"] == "closed form"
    assert np.isnan(td.set_index("key").loc["bma", "rhat_max"])  # no numbers made up
    assert td.set_index("key").loc["linear", "chains_x_draws"] == "2 × (30 + 30)"


def test_diagnostics_table_of_an_smc_fit_and_sigma_k():
    from lbmm.report.tables import diagnostics_display, diagnostics_table, sigma_k_table

    man = {"study": {"mixers": [
        {"key": "d", "sampling": {"method": "smc", "num_chains": 4, "num_samples": 250}},
        {"key": "l", "sampling": {"num_chains": 4, "num_warmup": 10, "num_samples": 20}}]},
        "mixers": {
            "d": {"label": "GBMM+D", "fit_s": 1.0, "diagnostics": {
                "sampler": "SMC", "rhat_max": 1.001, "log_evidence": -132.6}},
            "l": {"label": "GBMM+L", "fit_s": 1.0,
                  "diagnostics": {"sampler": "NUTS"}}}}  # fmt: skip
    td = diagnostics_table(man).set_index("key")
    assert td.loc["d", "chains_x_draws"] == "4 × 250 SMC particles"
    assert td.loc["l", "chains_x_draws"] == "4 × (10 + 20)"
    assert td.loc["d", "log_evidence"] == -132.6 and np.isnan(td.loc["l", "log_evidence"])
    assert "log evidence" in diagnostics_display(diagnostics_table(man)).columns
    del man["mixers"]["d"]
    assert "log evidence" not in diagnostics_display(diagnostics_table(man)).columns
    st = sigma_k_table({"mixers": {"d": {"label": "GBMM+D", "sigma_k": {"A": 0.1, "B": 0.9}},
                                   "l": {"label": "GBMM+L"}}})  # fmt: skip
    assert list(st["name"]) == ["GBMM+D"] and st.loc[0, "B"] == 0.9


def test_to_markdown_shows_missing_values_as_dashes():
    md = to_markdown(pd.DataFrame({"a": ["x", "y"], "b": [1.23456, float("nan")]}), 2)
    assert md.splitlines()[2] == "| x | 1.23 |"
    assert md.splitlines()[3] == "| y | — |"


def test_tables_from_metrics_without_runs():
    metrics = {"models": {"raw": {}}, "mixers": {"k": {"label": "GBMM+D", "weights": {"A": 1.0},
               "train": {"rms": 0.1, "n": 3}, "sigma_mean": 0.2, "sigma_sd": 0.01}}}  # fmt: skip
    t1 = table1(metrics)
    assert t1.iloc[0]["name"] == "GBMM+D" and np.isnan(t1.iloc[0]["test_rms"])
    assert table2(metrics).iloc[0]["A"] == 1.0


# ---------------------------------------------------------------------- figures


def test_every_figure_is_a_png(run, report):
    files = report["figures"]
    expected = {"ecp.png", "pit.png", "weights_global.png", "residuals_models.png",
                "residuals_mixers.png", "existence.png", "chains_bma.png", "chains_linear.png",
                "trace_linear.png", "rank_linear.png"}  # fmt: skip
    expected |= {f"weights_{LOCAL}.png", f"chains_{LOCAL}.png", f"trace_{LOCAL}.png"}
    assert expected <= set(files)
    assert "trace_bma.png" not in files  # closed form: no chains to trace
    for f in files:
        data = (run.path / "figures" / f).read_bytes()
        assert data[:8] == PNG and len(data) > 5000, f


def test_hyperparameters_put_sigma_first(run):
    series = hyperparameters(run.posterior("linear"))
    names = list(series)
    assert names[0] == "sigma"
    assert names[1:] == [f"weights[{m}]" for m in MODELS]
    assert all(v.shape == (2, 30) for v in series.values())
    assert len(hyperparameters(run.posterior("linear"), limit=2)) == 2


def test_trace_panels_show_dirichlet_weights_not_auxiliaries():
    """GBMM+D's non-centred auxiliaries (gamma_aux, exp_aux) are not traced; α, σ and the
    weights are."""
    from lbmm.data import load_dataset
    from lbmm.inference import Posterior, make_idata

    ds = load_dataset("default").select_models(MODELS)
    rng = np.random.default_rng(0)
    draws = {"alpha": rng.gamma(2.0, size=(2, 10, 3)), "gamma_aux": rng.gamma(2.0, size=(2, 10, 3)),
             "exp_aux": rng.exponential(size=(2, 10, 3)), "sigma": rng.gamma(5.0, size=(2, 10)),
             "weights": rng.dirichlet(np.ones(3), size=(2, 10))}  # fmt: skip
    post = Posterior("dirichlet", make_idata(draws, ds, "train", None), ds, {}, {})
    names = list(hyperparameters(post))
    assert names == ["sigma", *[f"alpha[{m}]" for m in MODELS], *[f"weights[{m}]" for m in MODELS]]


def test_choose_chains():
    pred = pd.DataFrame({"Z": [20, 20, 50, 50, 50, 82], "y_obs": [1, 2, 3, np.nan, 4, 5.0]})
    assert choose_chains(pred, [50, 126]) == [50]
    assert choose_chains(pred, [], count=2) == [20, 82]


# ---------------------------------------------------------------------- HTML


def test_html_links_only_local_files(run, report):
    page = _page(run)
    text = (run.path / "report.html").read_text()
    assert not re.search(r"(src|href)=\"(https?:)?//", text)  # nothing external
    assert page.scripts_src == [] and page.stylesheets == []
    assert len(page.images) == len(report["figures"])
    for src in page.images + page.links:
        if src.startswith("#"):
            assert f'id="{src[1:]}"' in text, src
        else:
            assert (run.path / src).is_file(), src
    for rel in ("manifest.json", "predictions.csv", "posterior/linear.nc", "tables/table1.md"):
        assert rel in page.links


def test_report_is_rebuilt_without_sampling(run, report):
    shutil.rmtree(run.path / "figures")
    (run.path / "report.html").unlink()
    again = build_report(run.path)
    assert again["figures"] == report["figures"]
    assert (run.path / "report.html").is_file()
    assert not list(run.path.glob(".report-*"))


def test_convergence_figures_drawn_early_are_moved_in_not_redrawn(run, report, tmp_path,
                                                                 monkeypatch):  # fmt: skip
    """``lbmm run`` draws each mixer's trace and rank plots as soon as it is fitted; the
    report takes those files and draws the same figures as without them."""
    import lbmm.report.figures as figmod
    from lbmm.report.figures import convergence_figures

    early = tmp_path / "early"
    drawn = convergence_figures(run.posterior("linear"), "linear", "GBMM+L", early)
    assert [f.file for f in drawn] == ["trace_linear.png", "rank_linear.png"]
    sums = {f.file: (early / f.file).read_bytes() for f in drawn}
    real = figmod.trace_figure
    redrawn = []
    monkeypatch.setattr(
        figmod,
        "trace_figure",
        lambda s, title, path: redrawn.append(path.name) or real(s, title, path),
    )
    again = build_report(run.path, early_figures=early)
    assert again["figures"] == report["figures"]
    assert redrawn == [f"trace_{LOCAL_KEY}.png"]  # only the mixer with nothing drawn early
    for name, data in sums.items():
        assert (run.path / "figures" / name).read_bytes() == data
    assert list(early.iterdir()) == []


def test_mixer_figures_drawn_early_are_moved_in_if_their_chains_match(run, report, tmp_path,
                                                                      monkeypatch):  # fmt: skip
    """``lbmm run`` draws finished mixers' own figures (chains, weight maps) and the raw
    models' residuals while the last fits run; the report moves them in, and redraws a chains
    figure drawn for other isotopic chains than it would choose."""
    import lbmm.report.figures as figmod
    from lbmm.report.figures import choose_chains, mixer_figures, models_residuals_figure

    pred, weights = run.predictions(), run.weights()
    chains = choose_chains(pred, run.study.report.chains)
    early = tmp_path / "early"
    ds_models = list(run.manifest["dataset"]["models"])
    label = run.metrics()["mixers"][LOCAL_KEY]["label"]
    got = mixer_figures(LOCAL_KEY, label, pred[pred["mixer"] == LOCAL_KEY],
                        weights[weights["mixer"] == LOCAL_KEY], ds_models, chains, "S2n",
                        early)  # fmt: skip
    assert got == [f"chains_{LOCAL_KEY}.png", f"weights_{LOCAL_KEY}.png"]
    other = [z for z in sorted(set(pred["Z"])) if z not in chains][:1]  # not the report's
    mixer_figures("linear", "GBMM+L", pred[pred["mixer"] == "linear"], None, ds_models,
                  other, "S2n", early)  # fmt: skip
    models_residuals_figure(run.dataset_frame(), ds_models, "S2n", early / "residuals_models.png")
    sums = {
        n: (early / n).read_bytes()
        for n in (f"chains_{LOCAL_KEY}.png", f"weights_{LOCAL_KEY}.png", "residuals_models.png")
    }
    calls = []
    for name in ("chains_figure", "weight_maps_figure", "residual_maps_figure"):
        real = getattr(figmod, name)

        def spy(*a, _real=real, _name=name, **k):
            calls.append((_name, Path(a[3] if _name != "residual_maps_figure" else a[2]).name))
            return _real(*a, **k)

        monkeypatch.setattr(figmod, name, spy)
    again = build_report(run.path, early_figures=early)
    assert again["figures"] == report["figures"]
    drawn = {c[1] for c in calls}
    assert drawn == {"chains_bma.png", "chains_linear.png", "residuals_mixers.png"}
    for name, data in sums.items():
        assert (run.path / "figures" / name).read_bytes() == data
    assert (early / "chains_linear.png").is_file()  # not taken: drawn for other chains
    build_report(run.path)  # the report drawing everything itself draws the same files
    for name, data in sums.items():
        assert (run.path / "figures" / name).read_bytes() == data, name


def test_report_refuses_foreign_folders(tmp_path):
    with pytest.raises(RunError, match="no manifest"):
        build_report(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_report_loads_in_a_headless_browser(run, report, tmp_path):
    """Every <img> loads: the page's own script marks <body data-images="ok"> after loading
    (or "failed" with the failing sources), and the DOM is read back with --dump-dom. A
    screenshot is written beside the run for a look."""
    exe = chromium()
    url = (run.path / "report.html").as_uri()
    dom = subprocess.run([*chromium_args(exe), "--dump-dom", url], capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert dom.returncode == 0, dom.stderr[-2000:]
    body = re.search(r"<body[^>]*>", dom.stdout)
    assert body, dom.stdout[:500]
    assert 'data-images="ok"' in body.group(0), body.group(0)
    assert dom.stdout.count("<img") == len(report["figures"])
    shot = tmp_path / "report.png"
    res = subprocess.run([*chromium_args(exe), "--window-size=1280,2400",
                          f"--screenshot={shot}", url], capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    assert shot.read_bytes()[:8] == PNG and shot.stat().st_size > 50_000


def test_browser_check_detects_a_missing_image(run, report, tmp_path):
    """The same check fails when a figure is missing (so the test above can fail)."""
    exe = chromium()
    copy = tmp_path / "copy"
    shutil.copytree(run.path, copy)
    (copy / "figures" / "ecp.png").unlink()
    dom = subprocess.run([*chromium_args(exe), "--dump-dom", (copy / "report.html").as_uri()],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    body = re.search(r"<body[^>]*>", dom.stdout).group(0)
    assert 'data-images="failed"' in body and "figures/ecp.png" in body


def test_missing_figure_warning_is_hidden_by_default(run, report):
    text = (run.path / "report.html").read_text()
    assert 'id="image-warning"' in text and "#image-warning" in text
    assert Path(report["html"]).name == "report.html"


def _hover(page: Page, z: int, n: int) -> str:
    """Move the mouse onto nucleus (Z, N) of the chart; the tooltip's text once it shows it."""
    x, y = page.evaluate(f"""(() => {{
        const r = document.querySelector('rect[data-zn="{z},{n}"]');
        r.scrollIntoView({{block: "center", inline: "center"}});
        const b = r.getBoundingClientRect();
        return [b.left + b.width / 2, b.top + b.height / 2]; }})()""")
    page.mouse_move(x, y)
    page.wait_for(f"document.getElementById('chart-tip').dataset.zn === '{z},{n}' && "
                  "!document.getElementById('chart-tip').hidden")  # fmt: skip
    return page.evaluate("document.getElementById('chart-tip').innerText")


def test_chart_tooltip_on_hover(run, report, tmp_path):
    """Hover 208Pb's square with a real mouse event: the tooltip names the nucleus and shows
    its data, every model and each mixture's mean and 95 % interval as the run's CSVs hold
    them (read here with pandas, rounded as the page shows them)."""
    ds = pd.read_csv(run.path / "dataset.csv").set_index(["Z", "N"])
    pred = pd.read_csv(run.path / "predictions.csv")
    z, n = 82, 126
    assert (z, n) in ds.index
    with Page((run.path / "report.html").as_uri()) as page:
        page.wait_for("document.getElementById('chart-svg')?.dataset.ready === 'yes'")
        assert page.evaluate("document.getElementById('chart-tip').hidden") is True
        text = _hover(page, z, n)
        page.screenshot(tmp_path / "chart.png")
    assert text.startswith("208Pb") and f"Z = {z}, N = {n}" in text
    assert f"data: {ds.loc[(z, n), 'y']:.3f} MeV" in text
    for m in MODELS:
        assert f"{m} {ds.loc[(z, n), m]:.3f}" in text
    here = pred[(pred["Z"] == z) & (pred["N"] == n)]
    assert len(here) == len(run.manifest["mixers"])
    for _, row in here.iterrows():
        label = run.manifest["mixers"][row["mixer"]]["label"]
        # the page rounds the full-precision value, the CSV holds a rounded one: the two
        # may differ by one unit in the third decimal
        m = re.search(rf"{re.escape(label)}: (\S+) \[(\S+), (\S+)\]", text)
        assert m, (label, text)
        shown = [float(g) for g in m.groups()]
        assert shown == pytest.approx([row["mean"], row["lo95"], row["hi95"]], abs=0.0011)
    # the local mixer's weights, as weights.csv holds them
    w = pd.read_csv(run.path / "weights.csv")
    w = w[(w["mixer"] == LOCAL_KEY) & (w["Z"] == z) & (w["N"] == n)].iloc[0]
    with Page((run.path / "report.html").as_uri()) as page:
        page.wait_for("document.getElementById('chart-svg')?.dataset.ready === 'yes'")
        idx = [
            m["key"]
            for m in json.loads(page.evaluate("document.getElementById('chart-data').textContent"))[
                "mixers"
            ]
        ].index(LOCAL_KEY)
        page.evaluate(f"""(() => {{ const s = document.getElementById('chart-mixer');
            s.value = '{idx}'; s.dispatchEvent(new Event('change')); return true; }})()""")
        text = _hover(page, z, n)
    assert "weights (" in text
    for m in MODELS:
        assert f"{m} {w[f'mean_{m}']:.2f}" in text


def test_chart_data_aligns_rows_by_nucleus_and_escapes_the_script():
    from lbmm.report.chart import chart_data, chart_html

    ds = pd.DataFrame({
        "Z": [8, 8, 10], "N": [10, 12, 12], "nucleus": ["18O", "20O", "22Ne"],
        "y": [12.1, np.nan, 10.0], "A1": [1.0, 2.0, 3.0],
        "in_train": [True, False, False], "in_test": [False, False, True],
    })  # fmt: skip
    # predictions in another order, one nucleus missing
    pred = pd.DataFrame({
        "mixer": ["m", "m"], "Z": [10, 8], "N": [12, 10], "mean": [9.5, 12.0],
        "lo95": [9.0, 11.0], "hi95": [10.0, 13.0], "p_exist": [1.0, 0.5],
    })  # fmt: skip
    d = chart_data(ds, pred, None, {"m": "</script>M"}, ["A1"], "S2n")
    assert d["mixers"][0]["mean"] == [12.0, None, 9.5]
    assert d["mixers"][0]["p_exist"] == [0.5, None, 1.0]
    assert d["y"] == [12.1, None, 10.0] and d["split"] == ["train", "", "test"]
    assert d["F"] == [[1.0, 2.0, 3.0]] and d["mixers"][0]["weights"] is None
    page = chart_html(d)
    payload = page.split('id="chart-data">', 1)[1].split("</script>", 1)[0]
    assert json.loads(payload)["mixers"][0]["label"] == "</script>M"
