"""The ``lbmm`` command line.

Subcommands: ``data`` (tables, recipes, datasets), ``fit`` (one mixer), ``run`` (a whole
study into a run folder), ``report`` (rebuild a run's tables, figures and HTML page),
``predict`` (predictions from a run's stored posteriors), ``studies`` and ``study show`` /
``study check`` (built-in and own study files). Options mirror the Python keywords
(``--num-samples`` ↔ ``num_samples``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .data import RECIPES, InputError, OptionError, known_tables, load_dataset, parse_label
from .mixers import MIXERS
from .run import CACHE_ENV

__all__ = ["main"]


def _fmt(v: float) -> str:
    return "   nan" if not math.isfinite(v) else f"{v:6.3f}"


def _data_report(name: str, data_dir: str | None) -> dict:
    ds = load_dataset(name, data_dir)
    splits = [s for s in ("train", "test", "evidence") if s in ds.splits]
    return {
        "dataset": ds.name,
        "observable": ds.observable,
        "models": list(ds.models),
        "counts": ds.counts(),
        "rms": {s: ds.rms(s) for s in splits},
        "tables": {k: {"path": p.path, "sha256": p.sha256} for k, p in ds.provenance.items()},
        "notes": list(ds.notes),
        "summary": ds.summary(),
    }


def _print_data_report(rep: dict) -> None:
    print(rep["summary"])
    splits = list(rep["rms"])
    print()
    print(f"rms deviation of {rep['observable']} from the data (MeV)")
    print(f"{'model':<10}" + "".join(f"{s:>10}" for s in splits))
    for m in rep["models"]:
        print(f"{m:<10}" + "".join(f"{_fmt(rep['rms'][s][m]):>10}" for s in splits))
    print(f"{'nuclei':<10}" + "".join(f"{rep['counts'][s]:>10}" for s in splits))
    for note in rep["notes"]:
        print(f"note: {note}")


def _cmd_data(args: argparse.Namespace) -> int:
    if args.dataset is None:
        listing = {
            "recipes": {n: r.description for n, r in RECIPES.items()},
            "tables": known_tables(args.data_dir),
        }
        if args.json:
            print(json.dumps(listing, indent=2))
            return 0
        print("dataset recipes (lbmm data --dataset NAME):")
        for n, desc in listing["recipes"].items():
            print(f"  {n:<12} {desc}")
        for source, names in listing["tables"].items():
            print(f"tables from {source}:")
            print("  " + " ".join(names))
        return 0
    rep = _data_report(args.dataset, args.data_dir)
    if args.json:
        print(json.dumps(rep, indent=2))
    else:
        _print_data_report(rep)
    return 0


def _fit_report(args: argparse.Namespace) -> dict:
    # JAX is imported only for the commands that need it.
    from .inference import fit
    from .predict import summarize

    ds = load_dataset(args.dataset, args.data_dir)
    if args.corrected:
        from .corrections import correct

        ds = correct(ds, split="train")
    post = fit(
        ds,
        args.mixer,
        likelihood=args.likelihood,
        options=_parse_options(args.option),
        num_chains=args.num_chains,
        num_warmup=args.num_warmup,
        num_samples=args.num_samples,
        max_samples=args.max_samples,
        thinning=args.thinning,
        init=args.init,
        seed=args.seed,
        target_accept=args.target_accept,
        progress_bar=not args.json and not args.quiet,
    )
    rep = {
        "mixer": args.mixer,
        "likelihood": args.likelihood,
        "corrected": args.corrected,
        "options": post.settings.get("options", {}),
        "dataset": ds.name,
        **summarize(post, seed=args.seed + 1),
        "diagnostics": dict(post.diagnostics),
    }
    if args.mixer == "bma":
        rep["bma_weights"] = {
            m: dict(zip(ds.models, w, strict=True)) for m, w in post.settings["bma_weights"].items()
        }
    if args.out:
        rep["posterior"] = str(post.save(args.out))
    return rep


def _cmd_fit(args: argparse.Namespace) -> int:
    from .inference import CLOSED_FORMS

    rep = _fit_report(args)
    if args.json:
        print(json.dumps(rep, indent=2))
        return 0
    corr = ", corrected models" if rep["corrected"] else ""
    print(f"{rep['mixer']} ({rep['likelihood']} likelihood{corr}) on {rep['dataset']}")
    print("Table 1 row:  train rms  test rms  sigma")
    print(
        f"              {rep['train_rms']:9.3f} {rep['test_rms']:9.3f}  "
        f"{rep['sigma_mean']:.3f}({rep['sigma_sd']:.3f})"
    )
    print("Table 2 row (posterior-mean weights):")
    print("  " + "  ".join(f"{m} {w:.3f}" for m, w in rep["weights"].items()))
    if "bma_weights" in rep:
        for meth, ws in rep["bma_weights"].items():
            print(f"  BMA({meth}): " + "  ".join(f"{m} {w:.3f}" for m, w in ws.items()))
    d = rep["diagnostics"]
    if d.get("sampler") in CLOSED_FORMS:
        print(f"closed form; wall {rep['wall_s']:.1f} s")
    else:
        print(
            f"diagnostics: R-hat max {rep['rhat_max']:.4f}, min ESS bulk "
            f"{rep['ess_bulk_min']:.0f} / tail {rep['ess_tail_min']:.0f} (parameters, test "
            f"means, log density), divergences {rep['divergences']}, "
            f"{d['sampling']['draws_per_chain']} draws per chain, wall {rep['wall_s']:.1f} s"
            + ("" if d.get("converged") else f"  [NOT CONVERGED: {bar_text()} missed]")
        )
    t = rep.get("test", {})
    if t:
        print("test ECP: " + "  ".join(f"{k}:{v:.2f}" for k, v in rep["ecp"].items()))
        print(
            f"test calibration: mean |ECP - level| {t['ecp_mean_abs']:.3f} (max "
            f"{t['ecp_max_abs']:.3f}), PIT KS p {t['pit_ks_p']:.3f}, outside 95 % "
            f"{t['outside_95']:.2f}, CRPS {t['crps']:.3f}, mlpd {t['mlpd']:.3f}"
        )
    if "posterior" in rep:
        print(f"posterior saved to {rep['posterior']}")
    return 0


def bar_text() -> str:
    from .inference import bar_text as _bar

    return _bar()


def _parse_options(items: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings → a dict; values read as JSON where they parse, else as text."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise OptionError(f"--option {item!r}: expected KEY=VALUE, e.g. gp=exact")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _progress(quiet: bool):
    if quiet:
        return None
    t0 = time.perf_counter()

    def say(line: str) -> None:
        print(f"[{_clock(time.perf_counter() - t0)}] {line}", file=sys.stderr, flush=True)

    return say


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m:02d}:{s:02d}"


def _cmd_run(args: argparse.Namespace) -> int:
    from .run import default_jobs, run_study
    from .study import load_study

    study = load_study(args.study)
    sampling = {
        k: v
        for k, v in (
            ("num_chains", args.num_chains),
            ("num_warmup", args.num_warmup),
            ("num_samples", args.num_samples),
            ("max_samples", args.max_samples),
        )
        if v is not None
    }
    if sampling or args.seed is not None or args.mixers or args.data_dir or args.folds:
        study = study.with_overrides(
            seed=args.seed,
            sampling=sampling,
            mixers=args.mixers,
            data_dir=str(Path(args.data_dir).absolute()) if args.data_dir else None,
            folds=args.folds,
        )
    try:
        run = run_study(
            study,
            output=args.out,
            overwrite=args.overwrite,
            progress=_progress(args.quiet),
            progress_bar=not args.quiet and sys.stderr.isatty(),
            cache_dir=args.cache_dir,
            report=not args.no_report,
            reuse=args.reuse,
            jobs=default_jobs() if args.jobs is None else args.jobs,
        )
    except KeyboardInterrupt:
        print("lbmm: interrupted; no run folder was written", file=sys.stderr)
        return 130
    _print_run_tables(run)
    print(f"run folder: {run.path}")
    if not args.no_report:
        print(f"report: {run.path / 'report.html'}")
    return 0


def _print_run_tables(run) -> None:
    from .report.tables import table1, table1_display, table2, table2_display, to_markdown

    metrics = run.metrics()
    print("Table 1: rms deviations and σ (MeV)")
    print(to_markdown(table1_display(table1(metrics)), 3))
    print("Table 2: model weights")
    print(to_markdown(table2_display(table2(metrics)), 2))
    bad = [k for k, r in run.manifest["mixers"].items() if not r["converged"]]
    if bad:
        print(f"not converged ({bar_text()} missed): {', '.join(bad)}")
    div = {k: r["diagnostics"].get("divergences", 0) for k, r in run.manifest["mixers"].items()}
    div = {k: v for k, v in div.items() if v}
    if div:
        print("divergent transitions: " + ", ".join(f"{k} ({v})" for k, v in div.items()))


def _cmd_report(args: argparse.Namespace) -> int:
    from .report import build_report

    out = build_report(args.run)
    print(f"{len(out['tables'])} table files in {Path(args.run) / 'tables'}")
    print(f"{len(out['figures'])} figures in {Path(args.run) / 'figures'}")
    print(f"report: {out['html']}")
    return 0


def _parse_nucleus(text: str) -> tuple[int, int] | str:
    if "," in text:
        z, _, n = text.partition(",")
        try:
            return int(z), int(n)
        except ValueError:
            raise InputError(f"--nuclei {text!r}: expected Z,N (e.g. 50,82) or a label") from None
    return parse_label(text)


def _cmd_predict(args: argparse.Namespace) -> int:
    from .run import load_run

    run = load_run(args.run)
    nuclei = []
    for t in args.nuclei:  # in the order given, each once
        zn = _parse_nucleus(t)
        zn = parse_label(zn) if isinstance(zn, str) else zn
        if zn not in nuclei:
            nuclei.append(zn)
    df = run.predict(nuclei, args.mixers, seed=args.seed, derive=args.derive,
                     from_flow=args.from_flow)  # fmt: skip
    if args.json:
        print(df.to_json(orient="records", indent=2))
        return 0
    obs = args.derive or run.manifest["dataset"]["observable"]
    labels = {k: r["label"] for k, r in run.manifest["mixers"].items()}
    source = "the normalizing flows of " if args.from_flow else ""
    print(f"{obs} predictions (MeV) from {source}{run.path}")
    head = f"{'nucleus':<8}{'mixer':<22}{'mean':>9}{'sd':>8}{'68% interval':>20}"
    head += f"{'95% interval':>20}{'P(>0)':>7}{'observed':>10}"
    print(head)
    for r in df.itertuples(index=False):
        y_obs = "" if not math.isfinite(r.y_obs) else f"{r.y_obs:10.3f}"
        print(
            f"{r.nucleus:<8}{labels.get(r.mixer, r.mixer):<22}{r.mean:9.3f}{r.sd:8.3f}"
            f"{f'[{r.lo68:.2f}, {r.hi68:.2f}]':>20}{f'[{r.lo95:.2f}, {r.hi95:.2f}]':>20}"
            f"{r.p_exist:7.3f}{y_obs}"
        )
    return 0


def _cmd_flow(args: argparse.Namespace) -> int:
    from .run import load_run

    run = load_run(args.run)
    opts = _parse_options(args.option)
    out = run.fit_flows(args.mixers, seed=args.seed, options=opts or None,
                        progress=_progress(args.quiet))  # fmt: skip
    if args.json:
        print(json.dumps(out, indent=2))
    return 0


def _cmd_update(args: argparse.Namespace) -> int:
    from .update import update_run

    run = update_run(args.run, args.observed, output=args.out, method=args.method,
                     overwrite=args.overwrite, progress=_progress(args.quiet),
                     report=not args.no_report, cache_dir=args.cache_dir)  # fmt: skip
    up = run.manifest["update"]
    print(f"updated run: {run.path} ({up['observed']['added']} measurements added)")
    for key, rec in up["entries"].items():
        khat = f", k̂ = {rec['khat']:.2f}" if "khat" in rec else ""
        print(f"  {key:<28} {rec['method']:<6} ({rec['why']}){khat}")
    return 0


def _cmd_grid(args: argparse.Namespace) -> int:
    from .grid import run_grid

    bar = None
    on_cell = None
    if not args.quiet and sys.stderr.isatty():
        from tqdm import tqdm

        def on_cell(done: int, total: int) -> None:
            nonlocal bar
            if bar is None:
                bar = tqdm(total=total, desc="cells", unit="cell", file=sys.stderr)
            bar.total = total  # each preselection round is a grid of its own
            bar.n = done
            bar.refresh()

    if args.preselect:
        from .preselect import preselect

        try:
            pre = preselect(args.grid, output=args.out, scheduler=args.scheduler,
                            n_workers=args.workers, cache_dir=args.cache_dir,
                            resume=not args.no_resume,
                            progress=_progress(args.quiet), on_cell=on_cell)  # fmt: skip
        finally:
            if bar is not None:
                bar.close()
        print(f"chosen models: {', '.join(pre.chosen)}")
        print(f"rounds: {pre.path / 'rounds.csv'}")
        return 0
    try:
        res = run_grid(args.grid, output=args.out, scheduler=args.scheduler,
                       n_workers=args.workers, resume=not args.no_resume,
                       cache_dir=args.cache_dir, progress=_progress(args.quiet),
                       on_cell=on_cell)  # fmt: skip
    finally:
        if bar is not None:
            bar.close()
    print(f"grid folder: {res.path} ({len(res.manifest['cells'])} cells)")
    print(f"results: {res.path / 'results.csv'}")
    return 0


def _cmd_sensitivity(args: argparse.Namespace) -> int:
    from .inference.sensitivity import power_scaling, prior_scaled
    from .run import load_run
    from .study import parse_prior

    run = load_run(args.run)
    study = run.study
    keys = args.mixers or [m.key for m in study.mixers if m.mixer != "bma"]
    out = {}
    for key in keys:
        entry = study.mixer(key)
        if entry.mixer == "bma":
            raise OptionError(f"{key}: BMA is closed form with conjugate priors; nothing to scale")
        priors = {k: parse_prior(v) for k, v in entry.priors.items()} or None
        post = run.posterior(key)
        ps = power_scaling(post, priors)
        scaled = [prior_scaled(post, c, priors) for c in args.scale]
        out[key] = {"power_scaling": ps.to_dict(orient="records"), "prior_scaled": scaled}
        if args.json:
            continue
        print(f"{entry.label} ({key}): power-scaling sensitivity (> 0.05: sensitive)")
        print(ps.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        for r in scaled:
            verdict = "honest" if r["honest"] else "not honest: refit (lbmm grid, prior_scale)"
            print(f"  every prior's width x {r['c']:g}: k-hat {r['khat']:.2f}, ESS {r['ess']:.0f}, "
                  f"{verdict}")  # fmt: skip
            if r["honest"]:
                for site, m in r["mean"].items():
                    if isinstance(m, float):
                        print(f"    {site}: mean {m:.4g}, sd {r['sd'][site]:.3g}")
    if args.json:
        from ._util import jsonable

        print(json.dumps(jsonable(out), indent=2, allow_nan=False))
    return 0


def _cmd_studies(args: argparse.Namespace) -> int:
    from .study import builtin_studies

    studies = builtin_studies()
    if args.json:
        print(json.dumps(studies, indent=2))
        return 0
    print("built-in studies (lbmm run NAME; lbmm study show NAME > my.toml to start your own):")
    for name, desc in studies.items():
        print(f"  {name:<12} {desc}")
    return 0


def _cmd_study_show(args: argparse.Namespace) -> int:
    from .study import BUILTIN_STUDIES, builtin_study_text, load_study

    if args.name in BUILTIN_STUDIES and not Path(args.name).exists() and not args.resolved:
        print(builtin_study_text(args.name), end="")
        return 0
    print(load_study(args.name).to_toml(), end="")
    return 0


def _cmd_study_check(args: argparse.Namespace) -> int:
    from .study import load_study

    st = load_study(args.name)
    d = st.data
    data = f"recipe {d.recipe}" if d.recipe else f"{len(d.tables)} model tables"
    print(f"study {st.name!r} ({st.source}) is valid: {data}, seed {st.seed}, output {st.output}")
    for m in st.mixers:
        s = m.sampling
        extra = f", options {dict(m.options)}" if m.options else ""
        extra += ", corrected models" if m.corrected else ""
        print(
            f"  {m.key:<24} {m.label:<18} {m.likelihood} likelihood, "
            f"{s.num_chains} × ({s.num_warmup} + {s.num_samples}"
            f"{f', every {s.thinning}th kept' if s.thinning > 1 else ''}){extra}"
        )
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def _add_cache_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--cache-dir",
        help=f"JAX compilation cache (default ${CACHE_ENV} or ~/.cache/lbmm/jax; 'off' to disable)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``lbmm`` (exposed for documentation and tests)."""
    parser = argparse.ArgumentParser(
        prog="lbmm", description="Bayesian mixing of imperfect models."
    )
    parser.add_argument("--version", action="version", version=f"lbmm {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("data", help="list tables and recipes, or summarise a dataset")
    p.add_argument("--dataset", help="recipe name (default, kejzlar2023)")
    p.add_argument("--data-dir", help="directory of MassExplorer CSVs (kejzlar2023)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_data)

    p = sub.add_parser("fit", help="fit one mixer and print its Table 1 and Table 2 rows")
    p.add_argument("--dataset", default="default", help="recipe name (default, kejzlar2023)")
    p.add_argument("--data-dir", help="directory of MassExplorer CSVs (kejzlar2023)")
    p.add_argument("--mixer", default="dirichlet", choices=sorted(MIXERS))
    p.add_argument("--likelihood", default="mean", choices=["mean", "density"])
    p.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="mixer option (repeatable; VALUE read as JSON where it parses, e.g. gp=exact, "
        "hsgp_m=[20,30])",
    )
    p.add_argument(
        "--corrected",
        action="store_true",
        help="fit on the models corrected by a GP on their training residuals",
    )
    p.add_argument("--num-chains", type=int, default=4)
    p.add_argument("--num-warmup", type=int, default=1000)
    p.add_argument("--num-samples", type=int, default=1000)
    p.add_argument("--max-samples", type=int, help="draw budget per chain: sample on until "
                   "the convergence bars hold (default: exactly --num-samples)")  # fmt: skip
    p.add_argument("--thinning", type=int, default=1, help="keep every k-th draw")
    p.add_argument("--init", default="uniform", help="where chains start: uniform, median, map")
    p.add_argument("--target-accept", type=float, default=0.95)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="save the posterior as NetCDF here (default: not saved)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_fit)

    p = sub.add_parser(
        "run",
        help="run a whole study (default: the built-in 'default') into one run folder",
        description="Run every mixer of a study and write one run folder: manifest.json, "
        "posteriors, predictions.csv, tables, figures and report.html. The folder is built "
        "under a temporary name and renamed at the end: Ctrl-C leaves nothing behind.",
    )
    p.add_argument(
        "study",
        nargs="?",
        default="default",
        help="built-in study name (lbmm studies) or a study TOML file",
    )
    p.add_argument("--out", help="run folder (default: the study's output, runs/NAME)")
    p.add_argument("--data-dir", help="directory of the tables (overrides the study's)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    p.add_argument("--seed", type=int, help="seed of every mixer (overrides the study's)")
    p.add_argument("--num-chains", type=int, help="override for every mixer")
    p.add_argument("--num-warmup", type=int, help="override for every mixer")
    p.add_argument("--num-samples", type=int, help="override for every mixer")
    p.add_argument("--max-samples", type=int, help="draw budget per chain (every mixer)")
    p.add_argument("--mixers", nargs="+", metavar="KEY", help="run only these mixer entries")
    p.add_argument("--folds", nargs="+", metavar="KIND",
                   help="validation folds inside the training data, each scored for every "
                   "mixer (neutron_rich, proton_rich, regions, kfold)")  # fmt: skip
    p.add_argument(
        "--no-report",
        action="store_true",
        help="skip tables, figures and report.html (lbmm report makes them later)",
    )
    p.add_argument(
        "--reuse",
        metavar="RUN",
        help="take the posterior of each entry whose settings, seed, dataset and package "
        "versions match those of this earlier run instead of sampling it (the manifest says "
        "which and why)",
    )
    p.add_argument(
        "--jobs",
        type=_positive_int,
        metavar="N",
        help="mixers fitted at once, each in its own process (default 2 where there are two "
        "or more cores, else 1; the same numbers either way; the progress bar only with 1)",
    )
    _add_cache_dir(p)
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser(
        "grid",
        help="run a grid of studies (model subsets, seeds, priors, folds) on Dask",
        description="Run every cell of a grid file (a base study and axes to vary) as its own "
        "run folder under GRID/cells, on a Dask LocalCluster (one single-threaded worker "
        "process per core) or an existing scheduler; then write results.csv, manifest.json "
        "and report.html. Cells already done (same study) are skipped.",
    )
    p.add_argument("grid", help="a grid TOML file")
    p.add_argument("--out", help="grid folder (default: the grid's output, grids/NAME)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="a running Dask scheduler, tcp://HOST:PORT (default "
                   "$DASK_SCHEDULER_ADDRESS, else a new LocalCluster)")  # fmt: skip
    p.add_argument("--workers", type=int, help="LocalCluster worker processes (default: cores)")
    p.add_argument("--no-resume", action="store_true", help="run every cell again")
    p.add_argument(
        "--preselect",
        action="store_true",
        help="greedy forward selection of the models to mix, each round a grid of candidate "
        "subsets × validation folds (the grid file's [preselect] table)",
    )
    _add_cache_dir(p)
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.set_defaults(func=_cmd_grid)

    p = sub.add_parser(
        "sensitivity",
        help="prior sensitivity of a run's posteriors from their draws (no refit)",
        description="Power-scaling sensitivity (ArviZ psense) of every user-settable prior, "
        "and the posterior under priors made c times wider by Pareto-smoothed importance "
        "weights, said honest only where k-hat < 0.7 and ESS >= 400 (else refit: lbmm grid "
        "with a prior_scale axis).",
    )
    p.add_argument("run", help="a run folder written by lbmm run")
    p.add_argument("--mixers", nargs="+", metavar="KEY", help="mixer entries (default: all)")
    p.add_argument("--scale", nargs="+", type=float, default=[0.5, 2.0], metavar="C",
                   help="prior widths to try (default 0.5 2)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_sensitivity)

    p = sub.add_parser("report", help="rebuild the tables, figures and report.html of a run")
    p.add_argument("run", help="a run folder written by lbmm run")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("predict", help="predictions at some nuclei from a run's posteriors")
    p.add_argument("run", help="a run folder written by lbmm run")
    p.add_argument(
        "--nuclei",
        nargs="+",
        required=True,
        metavar="Z,N",
        help="nuclei as Z,N (e.g. 50,82) or labels (e.g. 132Sn)",
    )
    p.add_argument("--mixers", nargs="+", metavar="KEY", help="mixer entries (default: all)")
    p.add_argument("--seed", type=int, help="seed of the predictive draws")
    p.add_argument("--json", action="store_true", help="print JSON records")
    p.add_argument(
        "--derive",
        metavar="QUANTITY",
        help="for a run of binding energies (BE): predict S2n, Sn, S2p, Sp or Qa, formed "
        "draw by draw from the joint BE draws at the nuclei it needs",
    )
    p.add_argument(
        "--from-flow",
        action="store_true",
        help="predict from draws of each entry's normalizing flow (lbmm flow) instead of "
        "the stored MCMC draws",
    )
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser(
        "flow",
        help="fit a normalizing flow to each posterior of a run (flows/KEY.eqx + KEY.json)",
        description="Fit a normalizing flow (flowjax) to each stored posterior of a run, on "
        "the sampler's unconstrained scale, and write RUN/flows/KEY.eqx, its KEY.json "
        "sidecar (sites, transforms, architecture, versions, the posterior's sha256, "
        "fidelity checks against held-out draws) and KEY.data.nc (the dataset): a "
        "posterior to hand on as a distribution (lbmm.load_flow) or predict from "
        "(lbmm predict RUN --from-flow).",
    )
    p.add_argument("run", help="a run folder written by lbmm run")
    p.add_argument("--mixers", nargs="+", metavar="KEY", help="mixer entries (default: all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the fit (entry i: seed + i)")
    p.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="flow setting (repeatable), e.g. flow_layers=4 (lbmm.inference.flow.FLOW_DEFAULTS)",
    )
    p.add_argument("--json", action="store_true", help="print the fit diagnostics as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=_cmd_flow)

    p = sub.add_parser(
        "update",
        help="add new measurements to a run's training data: a complete new run folder",
        description="Add newly measured nuclei (a CSV: Z, N, the observable[, its "
        "uncertainty]) to a run's training data and write a complete new run folder whose "
        "manifest names its parent. Each posterior is updated from its stored draws where "
        "that is honest: Pareto-smoothed importance reweighting where k̂ < 0.7, else "
        "data-tempered SMC from the draws, else a refit; the manifest says which and why.",
    )
    p.add_argument("run", help="a run folder written by lbmm run")
    p.add_argument("--observed", required=True, metavar="FILE", help="measurements CSV")
    p.add_argument("--out", help="new run folder (default: RUN-updated)")
    p.add_argument("--method", default="auto", choices=["auto", "psis", "smc", "refit"])
    p.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    p.add_argument("--no-report", action="store_true", help="skip tables, figures and HTML")
    _add_cache_dir(p)
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.set_defaults(func=_cmd_update)

    p = sub.add_parser("studies", help="list the built-in studies")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_studies)

    p = sub.add_parser("study", help="show or check a study file")
    ssub = p.add_subparsers(dest="study_command", required=True)
    q = ssub.add_parser("show", help="print a study as TOML (a built-in one, to start your own)")
    q.add_argument("name", help="built-in study name or study file")
    q.add_argument(
        "--resolved",
        action="store_true",
        help="every setting explicit (default for files; built-ins print as shipped)",
    )
    q.set_defaults(func=_cmd_study_show)
    q = ssub.add_parser("check", help="validate a study file and summarise it")
    q.add_argument("name", help="built-in study name or study file")
    q.set_defaults(func=_cmd_study_check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lbmm`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except InputError as err:  # the user's input; anything else is a bug: traceback
        print(f"lbmm: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lbmm: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
