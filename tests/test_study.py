"""Study files: built-in studies, TOML round trip, validation errors that name the key, and
datasets built from a study (recipe, own tables, explicit splits, model subsets)."""

from __future__ import annotations

import tomllib

import numpy as np
import pytest

from lbmm.data import DataError, load_dataset
from lbmm.run import build_dataset
from lbmm.study import (
    BUILTIN_STUDIES,
    Study,
    StudyError,
    builtin_studies,
    builtin_study_text,
    load_study,
    parse_prior,
    study_from_dict,
)

LOCAL = ("glm_dirichlet", "gp_dirichlet")


def _minimal(**extra) -> dict:
    raw = {"name": "t", "mixers": [{"mixer": "bma"}]}
    raw.update(extra)
    return raw


def _error(raw: dict) -> str:
    with pytest.raises(StudyError) as info:
        study_from_dict(raw, source="t.toml")
    return str(info.value)


# ---------------------------------------------------------------------- built-in studies


def test_builtin_studies_are_listed_with_descriptions():
    studies = builtin_studies()
    assert set(studies) == set(BUILTIN_STUDIES) == {"default", "kejzlar2023", "masses"}
    assert all(isinstance(d, str) and d for d in studies.values())


def test_default_study_content():
    st = load_study("default")
    assert st.source == "builtin:default"
    assert st.data.recipe == "default"
    assert [m.mixer for m in st.mixers] == ["dirichlet", "bma", "linear", *LOCAL]
    # every mixture with the spread noise model (chosen on the validation folds)
    assert all(m.options.get("noise") == "spread" for m in st.mixers if m.mixer != "bma")
    assert st.mixer("gp_dirichlet_spread").options == {"gp": "hsgp", "noise": "spread"}
    assert st.sampling.max_samples == 4000
    assert not st.needs_corrections
    assert st.output == "runs/default"


def test_kejzlar2023_study_has_raw_and_corrected_rows():
    st = load_study("kejzlar2023")
    raw = [m.mixer for m in st.mixers if not m.corrected]
    corr = [m.mixer for m in st.mixers if m.corrected]
    assert raw == ["glm_dirichlet", "bma", "linear", "dirichlet", *LOCAL]
    # the paper's rows keep its constant σ and its names; the calibrated GLD comes first
    assert st.keys[:2] == ["glm_dirichlet_spread", "bma"]
    assert [m.label for m in st.mixers[1:6]] == ["BMA", "GBMM+L", "GBMM+D", "LBMM+GLD", "LBMM+GPD"]
    assert corr == ["bma", "linear", "dirichlet"]
    assert st.keys[-3:] == ["bma_corrected", "linear_corrected", "dirichlet_corrected"]
    assert st.mixer("dirichlet_corrected").label == "GBMM+D (corr.)"


def test_unknown_builtin_study_is_refused():
    with pytest.raises(StudyError, match="no study 'nope'"):
        load_study("nope")
    with pytest.raises(StudyError, match="no built-in study"):
        builtin_study_text("nope")


# ---------------------------------------------------------------------- round trip


def test_toml_round_trip_keeps_every_setting(tmp_path):
    raw = _minimal(
        seed=7,
        sampling={"num_chains": 2, "num_warmup": 30, "num_samples": 40},
        report={"chains": [50, 82]},
        predict={"max_draws": 500},
        mixers=[
            {"mixer": "bma"},
            {"mixer": "linear", "likelihood": "density", "priors": {"sigma": "Gamma(5, 10)"}},
            {"mixer": "dirichlet", "corrected": True, "sampling": {"num_samples": 60}},
        ],
    )
    st = study_from_dict(raw)
    path = tmp_path / "s.toml"
    path.write_text(st.to_toml())
    back = load_study(path)
    assert back.to_dict() == st.to_dict()
    assert back.keys == ["bma", "linear_density", "dirichlet_corrected"]
    assert back.predict.max_draws == 500
    assert back.mixer("dirichlet_corrected").sampling.num_samples == 60
    assert back.mixer("dirichlet_corrected").sampling.num_warmup == 30  # inherited
    assert back.mixer("linear_density").seed == 7
    assert tomllib.loads(st.to_toml())["mixers"][1]["priors"] == {"sigma": "Gamma(5, 10)"}


def test_with_overrides_applies_to_every_mixer():
    st = study_from_dict(
        _minimal(
            mixers=[
                {"mixer": "bma"},
                {"mixer": "linear", "sampling": {"num_samples": 90, "thinning": 9}},
            ]
        )
    )
    assert st.mixer("linear").sampling.thinning == 9
    new = st.with_overrides(sampling={"num_samples": 20}, seed=3, mixers=["linear"])
    assert new.keys == ["linear"]
    assert new.mixer("linear").sampling.num_samples == 20
    assert new.mixer("linear").sampling.thinning == 1  # 20 draws asked for, 20 kept
    assert new.mixer("linear").seed == 3 and new.seed == 3
    with pytest.raises(StudyError, match="no mixer 'nope'"):
        st.with_overrides(mixers=["nope"])


def test_relative_paths_are_relative_to_the_study_file(tmp_path):
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "s.toml"
    path.write_text(
        'name = "own"\n[data]\nobserved = "ame.csv"\ntrain_table = "masstable:AME2003"\n'
        '[data.tables]\nA = "a.csv"\n[[mixers]]\nmixer = "bma"\n'
    )
    st = load_study(path)
    assert st.data.observed == str(tmp_path / "sub" / "ame.csv")
    assert st.data.train_table == "masstable:AME2003"
    assert st.data.tables == {"A": str(tmp_path / "sub" / "a.csv")}


# ---------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"mixers": [{"mixer": "bma"}]}, "key 'name' is required"),
        (_minimal(name="a b"), "key 'name' must be letters"),
        (_minimal(sampling={"num_warmpu": 10}), "key 'sampling.num_warmpu' is not a known"),
        (_minimal(sampling={"num_chains": "4"}), "key 'sampling.num_chains' must be an integer"),
        (_minimal(sampling={"num_chains": 0}), "key 'sampling.num_chains' must be at least 1"),
        (_minimal(sampling={"target_accept": 1.5}), "key 'sampling.target_accept' must lie"),
        (_minimal(sampling={"chain_method": "x"}), "key 'sampling.chain_method' must be one of"),
        (_minimal(seed=-1), "key 'seed' must be at least 0"),
        (_minimal(colour="red"), "key 'colour' is not a known setting"),
        ({"name": "t"}, "key 'mixers' must be a non-empty array"),
        (_minimal(mixers=[{"mixer": "nope"}]), "key 'mixers[0].mixer' must name a mixer"),
        (_minimal(mixers=[{"likelihood": "mean"}]), "key 'mixers[0].mixer' is required"),
        (
            _minimal(mixers=[{"mixer": "bma"}, {"mixer": "linear", "likelihood": "max"}]),
            "key 'mixers[1].likelihood' must be one of",
        ),
        (
            _minimal(mixers=[{"mixer": "linear", "options": {"gp": "hsgp"}}]),
            "key 'mixers[0].options.gp' is not an option of mixer 'linear'",
        ),
        (
            _minimal(mixers=[{"mixer": "linear", "priors": {"sigma": "Gama(5, 10)"}}]),
            "key 'mixers[0].priors.sigma' is not a valid prior: unknown distribution 'Gama'",
        ),
        (
            _minimal(mixers=[{"mixer": "dirichlet", "priors": {"alpah": "HalfNormal(2)"}}]),
            "key 'mixers[0].priors.alpah' is not a prior of mixer 'dirichlet'",
        ),
        (  # the linear mixer's prior has its site's name
            _minimal(mixers=[{"mixer": "linear", "priors": {"weight": "Uniform(0, 1)"}}]),
            "key 'mixers[0].priors.weight' is not a prior of mixer 'linear'",
        ),
        (  # a noise model's priors exist only with that noise model
            _minimal(mixers=[{"mixer": "linear", "priors": {"nu": "Gamma(2, 0.1)"}}]),
            "key 'mixers[0].priors.nu' is not a prior of mixer 'linear'",
        ),
        (
            _minimal(mixers=[{"mixer": "bma", "likelihood": "density"}]),
            "key 'mixers[0].likelihood' does not apply to mixer 'bma'",
        ),
        (
            _minimal(mixers=[{"mixer": "bma", "priors": {"sigma": "Gamma(5, 10)"}}]),
            "key 'mixers[0].priors.sigma' is not a prior of mixer 'bma'",
        ),
        (
            _minimal(mixers=[{"mixer": "linear", "options": {"noise": "gaussian"}}]),
            "key 'mixers[0].options.noise' is not valid here: option noise: unknown noise",
        ),
        (
            _minimal(
                mixers=[{"mixer": "linear", "likelihood": "density", "options": {"noise": "gp"}}]
            ),
            "key 'mixers[0].options.noise' is not valid here",
        ),
        (_minimal(validation={"folds": ["neutronrich"]}), "key 'validation.folds"),
        (
            _minimal(mixers=[{"mixer": "linear", "sampling": {"num_samples": 1}}]),
            "key 'mixers[0].sampling.num_samples' must be at least 2",
        ),
        (
            _minimal(mixers=[{"mixer": "linear"}, {"mixer": "linear"}]),
            "key 'mixers' has two entries with key 'linear'",
        ),
        (_minimal(data={"recipe": "nope"}), "key 'data.recipe' must name a dataset recipe"),
        (_minimal(data={"recipe": "default", "observable": "S2p"}), "'data.observable' applies"),
        (
            _minimal(data={"recipe": "default", "tables": {"A": "a.csv"}}),
            "key 'data.recipe' and tables/observed/train_table exclude each other",
        ),
        (
            _minimal(data={"tables": {"A": "a.csv"}, "train_table": "t.csv"}),
            "key 'data.observed' is required when the data come from tables",
        ),
        (
            _minimal(data={"observed": "o.csv", "train_table": "t.csv", "tables": {"A": 3}}),
            "key 'data.tables.A' must be a path",
        ),
        (
            _minimal(
                data={
                    "observed": "o.csv",
                    "train_table": "t",
                    "tables": {"A": "a"},
                    "observable": "mass",
                }
            ),
            "key 'data.observable' must be one of",
        ),
        (_minimal(data={"splits": {"train": []}}), "key 'data.splits.train' must be a non-empty"),
        (_minimal(data={"models": ["A", "A"]}), "key 'data.models' must list distinct"),
        (_minimal(report={"chains": ["Sn"]}), "key 'report.chains' must be a list of integers"),
        (_minimal(predict={"max_draws": -1}), "key 'predict.max_draws' must be at least 0"),
        (_minimal(predict={"draws": 5}), "key 'predict.draws' is not a known setting"),
    ],
)
def test_validation_names_the_key(raw, message):
    err = _error(raw)
    assert err.startswith("study t.toml: ")
    assert message in err


def test_invalid_toml_and_missing_file_name_the_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n")
    with pytest.raises(StudyError, match=r"bad\.toml: invalid TOML"):
        load_study(bad)
    with pytest.raises(StudyError, match="no such file"):
        load_study(tmp_path / "missing.toml")


def test_parse_prior():
    d = parse_prior("Gamma(5, 10)")
    assert float(d.concentration) == 5.0 and float(d.rate) == 10.0
    assert float(parse_prior("HalfNormal(2.0)").scale) == 2.0
    for text, msg in [
        ("Gamma", "expected a distribution"),
        ("Nope(1)", "unknown distribution"),
        ("Normal(a, 1)", "must be numbers"),
        ("Normal('a', 1)", "must be numbers"),
        ("HalfNormal(-1)", "HalfNormal"),
    ]:
        with pytest.raises(ValueError, match=msg):
            parse_prior(text)


def test_study_is_a_value():
    st = study_from_dict(_minimal())
    assert isinstance(st, Study)
    with pytest.raises(AttributeError):
        st.name = "other"  # type: ignore[misc]
    with pytest.raises(KeyError, match="no mixer 'x'"):
        st.mixer("x")


# ---------------------------------------------------------------------- datasets


def test_recipe_with_model_subset_and_explicit_splits(tmp_path):
    csv = tmp_path / "test.csv"
    csv.write_text("Z,N\n50,82\n82,126\n")
    st = study_from_dict(
        _minimal(
            data={
                "recipe": "default",
                "models": ["WS32010", "DUZU"],
                "splits": {"evidence": ["132Sn", "208Pb", "48Ca"], "test": str(csv)},
            }
        )
    )
    ds = build_dataset(st)
    assert ds.models == ("WS32010", "DUZU")
    assert [ds.labels[i] for i in ds.split_indices("evidence")] == ["48Ca", "132Sn", "208Pb"]
    assert [ds.labels[i] for i in ds.split_indices("test")] == ["132Sn", "208Pb"]
    full = load_dataset("default")
    assert ds.counts()["train"] == full.counts()["train"]
    np.testing.assert_array_equal(ds.F[:, 0], full.F[:, full.models.index("WS32010")])


def test_explicit_split_errors_name_the_problem(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("A,B\n1,2\n")
    st = study_from_dict(_minimal(data={"splits": {"test": str(bad)}}))
    with pytest.raises(DataError, match="expected columns Z and N"):
        build_dataset(st)
    st = study_from_dict(_minimal(data={"splits": {"test": ["4He"]}}))
    with pytest.raises(DataError, match="nucleus 4He"):
        build_dataset(st)
    st = study_from_dict(_minimal(data={"models": ["DUZU", "NOPE"]}))
    with pytest.raises(DataError, match="unknown model 'NOPE'"):
        build_dataset(st)


def test_own_tables_build_the_same_splits_as_the_recipe():
    """The default recipe rebuilt from its tables, given as a study of own tables."""
    from lbmm.data import DEFAULT_MODELS

    st = study_from_dict(
        _minimal(
            data={
                "observed": "masstable:AME2012",
                "train_table": "masstable:AME2003",
                "tables": {m: f"masstable:{m}" for m in DEFAULT_MODELS},
                "z_range": [8, 100],
                "evidence": ["148Er", "242Cf", "64Cr", "116Ru", "160Nd", "232Ra", "186Hf"],
            }
        )
    )
    ds = build_dataset(st)
    ref = load_dataset("default")
    assert ds.counts() == ref.counts()
    np.testing.assert_array_equal(ds.split_indices("test"), ref.split_indices("test"))
    np.testing.assert_allclose(ds.F, ref.F, rtol=0, atol=0)


def test_priors_of_the_noise_model_and_of_sites_are_accepted():
    t_noise = {"mixer": "dirichlet", "options": {"noise": "student_t"},
               "priors": {"nu": "Gamma(2, 0.1)"}}  # fmt: skip
    st = study_from_dict(_minimal(mixers=[
        {"mixer": "linear", "priors": {"weights": "Uniform(0, 1)"}}, t_noise,
    ]))  # fmt: skip
    assert dict(st.mixers[1].priors) == {"nu": "Gamma(2, 0.1)"}


def test_noise_models_name_their_entries_and_the_papers_keep_their_names():
    st = study_from_dict(_minimal(mixers=[
        {"mixer": "dirichlet"},
        {"mixer": "dirichlet", "options": {"noise": "constant"}, "key": "paper"},
        {"mixer": "gp_dirichlet", "options": {"noise": "spread"}},
        {"mixer": "linear", "options": {"noise": "student_t"}, "corrected": True},
    ]))  # fmt: skip
    assert [m.key for m in st.mixers] == [
        "dirichlet",
        "paper",
        "gp_dirichlet_spread",
        "linear_student_t_corrected",
    ]
    assert [m.label for m in st.mixers] == [
        "GBMM+D",
        "GBMM+D",
        "LBMM+GPD (spread)",
        "GBMM+L (student_t) (corr.)",
    ]
