"""studies: the study files, their sweep specs (full, quick, faithful), the aggregation, the titles read from what
ran, and the figure (hand-computed references)."""

import math

import pytest

import rnnscope.lab.studies as st
from rnnscope.core.errors import InputError
from rnnscope.runs.spec import expand


def test_study_files_load_and_expand():
    p = st.load_study("pascanu")
    assert set(p.methods) == {"SGD", "SGD-C", "SGD-CR"} and p.measure == "success"
    assert p.methods["SGD-CR"]["clip_norm"] == p.methods["SGD-C"]["clip_norm"] and p.methods["SGD-CR"]["regularizer_alpha"] > 0
    configs = expand(st.study_spec(p))
    assert len(configs) == 3 * 2 * 5 * 5  # methods x tasks x lengths 10..50 x 5 seeds (the issue's grid)
    assert {c["length"] for c in configs} == {10, 20, 30, 40, 50} and {c["seed"] for c in configs} == set(range(5))
    quick = expand(st.study_spec(p, quick=True))
    assert 0 < len(quick) < len(configs) and all(c["steps"] == p.quick["steps"] for c in quick)
    c = st.load_study("cells")
    assert set(c.methods) == {"Elman-tanh", "LSTM", "GRU"} and set(c.grid["task"]) == {"adding-le", "copy"}
    with pytest.raises(InputError, match="faithful"):
        st.study_spec(c, version="faithful")  # cells has no [faithful] section


def test_the_faithful_pascanu_study_is_his_codes_setup():
    """trainingRNNs/RNN.py: min_length 50, max_length 200 (exclusive), ebs 10,000, checkFreq 20, nhid 50,
    smart_tanh, lr 0.01, bs 20, cutoff 1.0, alpha 2; stop at zero errors."""
    from rnnscope.lab.train import TrainConfig
    spec = st.study_spec(st.load_study("pascanu"), version="faithful")
    assert spec.name == "study-pascanu-faithful"
    configs = expand(spec)
    assert len(configs) == 3 * 2 * 1 * 5
    for c in configs:
        run = TrainConfig.from_dict({k: v for k, v in c.items() if k not in ("study", "method")})
        assert run.length_range == (50, 199) and run.length == 199 and run.criterion == "pascanu"
        assert (run.eval_size, run.eval_every, run.hidden, run.init, run.lr, run.batch) == (10_000, 20, 50, "smart-tanh",
                                                                                          0.01, 20)


def test_run_point_merges_the_method(monkeypatch):
    import importlib
    train_module = importlib.import_module("rnnscope.lab.train")  # the package's `train` attribute is the function
    seen = {}

    def fake(config):
        seen.update(config)
        return {"status": "solved", "steps": 1, "final_loss": 0.0, "baseline_loss": 1.0}
    monkeypatch.setattr(train_module, "run_config", fake)
    cfg = {"study": "pascanu", "method": "SGD-CR", "task": "temporal-order", "length": 10, "seed": 0, "lr": 0.01}
    st.run_point(cfg)
    assert seen == {"task": "temporal-order", "length": 10, "seed": 0, "lr": 0.01, "optimizer": "sgd",
                    "clip_norm": 1.0, "regularizer_alpha": 2.0}
    with pytest.raises(InputError, match="method: expected one of"):
        st.run_point({**cfg, "method": "Adam-X"})


def _row(task, method, length, status, final_loss=0.5, baseline=1.0, steps=100, row_status="done"):
    return {"status": row_status, "config": {"task": task, "method": method, "length": length},
            "metrics": None if row_status == "failed" else
            {"status": status, "final_loss": final_loss, "baseline_loss": baseline, "steps": steps}}


def test_study_table_by_hand():
    rows = [_row("t", "A", 10, "solved", 0.1), _row("t", "A", 10, "unsolved", 0.3), _row("t", "A", 10, "diverged", None),
            _row("t", "A", 10, "x", row_status="failed"),
            _row("t", "B", 10, "solved", 0.2, steps=50), _row("t", "B", 20, "unsolved", 2.0, baseline=4.0)]
    table = {(r.method, r.length): r for r in st.study_table(rows)}
    a = table[("A", 10)]
    assert (a.runs, a.solved, a.diverged) == (4, 1, 1) and a.success_rate == 0.25  # a failed row counts as a run
    assert a.mean_loss_over_baseline == pytest.approx((0.1 + 0.3) / 2)
    assert table[("B", 20)].mean_loss_over_baseline == 0.5 and table[("B", 10)].mean_steps == 50


def test_plot_study_lines(tmp_path):
    rows = [_row("t", m, L, "solved" if (i + L) % 3 else "unsolved") for i, m in enumerate("AB") for L in (10, 20, 30)]
    table = st.study_table(rows)
    fig = st.plot_study(table, tmp_path / "s.png")
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
    line = next(ln for ln in fig.axes[0].lines if ln.get_gid() == "t:A")
    assert list(line.get_xdata()) == [10, 20, 30]
    assert list(line.get_ydata()) == [r.success_rate for r in table if r.method == "A"]
    fig = st.plot_study(table, measure="baseline")
    assert any(ln.get_label() == "memoryless baseline" for ln in fig.axes[0].lines)


def test_bad_study(tmp_path):
    with pytest.raises(InputError, match="study: expected one of pascanu, cells, modern"):
        st.load_study("nope")
    bad = tmp_path / "s.toml"
    bad.write_text('name = "x"\n[methods.A]\nlr = 1\n[grid]\nmethod = [1]\n[fixed]\n')
    with pytest.raises(InputError, match="expected no 'method'"):
        st.load_study(str(bad))
    bad.write_text("name = = 1")
    with pytest.raises(InputError, match="valid TOML"):
        st.load_study(str(bad))
    assert math.isnan(st.study_table([_row("t", "A", 10, "x", row_status="failed")])[0].mean_steps)


def test_snapshot_profiles_average_the_longest_length(tmp_path):
    def row(method, length, seed, prof):
        return {"status": "done", "config": {"task": "t", "method": method, "length": length, "seed": seed},
                "metrics": {"history": [{"profile": [0.0]}, {"profile": prof}]}}
    rows = [row("A", 10, 0, [0.0, 1.0]), row("A", 20, 0, [-4.0, -2.0, 0.0]), row("A", 20, 1, [-2.0, None, 0.0]),
            row("B", 20, 0, [-1.0, -1.0, -1.0]), {"status": "failed", "config": {"task": "t"}, "metrics": None}]
    sn = st.snapshot_profiles(rows)
    assert sn["t"]["length"] == 20
    assert sn["t"]["methods"]["A"] == [-3.0, -2.0, 0.0]  # the mean over seeds, a null (-inf) skipped
    assert sn["t"]["methods"]["B"] == [-1.0, -1.0, -1.0]
    fig = st.plot_snapshots(sn, tmp_path / "f.png")
    assert {ln.get_gid() for ln in fig.axes[0].lines} == {"t:A", "t:B"}


def test_run_point_keeps_the_last_profile_only(monkeypatch):
    import importlib
    train_module = importlib.import_module("rnnscope.lab.train")
    hist = [{"step": 10, "loss": 1.0, "profile": [0.0, 1.0]}, {"step": 20, "loss": 0.5, "profile": [2.0, 3.0]}]
    monkeypatch.setattr(train_module, "run_config", lambda config: {"status": "unsolved", "history": hist})
    m = st.run_point({"study": "pascanu", "method": "SGD", "task": "temporal-order", "length": 10, "seed": 0})
    assert m["history"] == [{"step": 10, "loss": 1.0}, {"step": 20, "loss": 0.5, "profile": [2.0, 3.0]}]


def test_study_table_keeps_length_ranges_and_criteria_apart():
    def row(lr, crit):
        cfg = {"task": "t", "method": "A", "length": 199, **({"length_range": lr} if lr else {})}
        return {"status": "done", "config": cfg, "metrics": {"status": "solved", "final_loss": 0.1, "baseline_loss": 1.0,
                                                            "steps": 10, **({"criterion": {"name": crit}} if crit else {})}}
    rows = [row([50, 199], "pascanu"), row([50, 199], "pascanu"), row(None, None), row(None, "lenient")]
    table = st.study_table(rows)
    assert [(r.length_label, r.runs, r.criterion, r.length_range) for r in table] == [
        ("199", 2, "lenient", None), ("50..199", 2, "pascanu", (50, 199))]  # no criterion recorded: lenient
    assert table[1].to_dict()["length_range"] == [50, 199] and table[1].to_dict()["criterion"] == "pascanu"
    fig = st.plot_study(table)
    assert fig.axes[0].get_ylabel() == "success rate (lenient: < 1% wrong; pascanu: 0 wrong of 10,000)"
    assert "MAX of U{MIN..MAX}" in fig.axes[0].get_xlabel()


def test_study_title_says_what_ran():
    study = st.load_study("pascanu")
    rows = [{"config": {"study": "pascanu", "task": task, "method": m, "length": L, "seed": seed, "steps": 1500,
                        "eval_size": 1000}, "metrics": {}}
            for m in ("SGD", "SGD-CR") for task in ("temporal-order",) for L in (10, 30) for seed in (0, 1)]
    assert st.study_title(study, rows, "quick") == (
        "study pascanu (quick): SGD, SGD-CR on temporal-order at L = 10, 30; 2 seeds, 1,500 updates; "
        "success: lenient: error rate < 1% of 1,000 fresh sequences")
    faithful = [{"config": {"study": "pascanu", "task": "adding-pascanu", "method": "SGD-C", "length": 199,
                            "length_range": [50, 199], "seed": 0, "steps": 100000, "criterion": "pascanu",
                            "eval_size": 10000}, "metrics": {"criterion": {"name": "pascanu"}}}]
    assert st.study_title(study, faithful, "faithful") == (
        "study pascanu (faithful): SGD-C on adding-pascanu at L = 50..199; 1 seed, 100,000 updates; "
        "success: pascanu: zero errors in 10,000 fresh sequences")
    # a method's own settings count (run_point merges them): a method that sets the criterion
    custom = st.Study("x", "", "success", {"P": {"criterion": "pascanu"}}, {}, {}, {})
    rows = [{"config": {"task": "copy", "method": "P", "length": 5, "seed": 3, "steps": 7}, "metrics": {}}]
    assert st.study_title(custom, rows).endswith("1 seed, 7 updates; success: pascanu: zero errors in 10,000 fresh sequences")


def test_the_modern_study_is_the_issues_grid_and_every_config_builds():
    """modern: Elman-tanh, LSTM, GRU, LRU (ring init), minGRU, sLSTM, a flossed Elman on adding-le, copy at
    L = 50, 100, 200 and the char-LM, 2 seeds, one budget for all; every config is a valid TrainConfig whose model
    builds (the LRU's |lambda| on its ring, computed from the built parameters)."""
    import torch

    from rnnscope.lab.networks import build_model
    from rnnscope.lab.tasks import get_task
    from rnnscope.lab.train import TrainConfig
    m = st.load_study("modern")
    assert list(m.methods) == ["Elman-tanh", "LSTM", "GRU", "LRU", "minGRU", "sLSTM", "Elman-flossed"]
    configs = expand(st.study_spec(m))
    assert len(configs) == 7 * 3 * 3 * 2
    assert {c["task"] for c in configs} == {"adding-le", "copy", "charlm"} and {c["length"] for c in configs} == {50, 100, 200}
    assert len({(c["steps"], c["batch"], c["hidden"], c["lr"], c["optimizer"]) for c in configs}) == 1  # one budget
    for method, settings in m.methods.items():
        c = next(c for c in configs if c["method"] == method)
        run = TrainConfig.from_dict({**{k: v for k, v in c.items() if k not in ("study", "method")}, **settings})
        task = get_task(run.task)
        rnn = build_model(run, task.input_size, task.output_size).rnn
        if method == "LRU":
            lam = torch.exp(-torch.exp(rnn.nu_log.detach().double()))
            assert bool(((lam >= 0.9) & (lam <= 0.999)).all())
        if method == "Elman-flossed":
            assert run.flossing() is not None and run.flossing_k == 16
    quick = expand(st.study_spec(m, quick=True))
    assert len(quick) == 7 and {c["task"] for c in quick} == {"adding-le"}


def _what_the_title_names(title: str) -> tuple[set, set, int]:
    """The tasks, lengths and seed count a study title names ("... on T1, T2 at L = 10, 20; 2 seeds, ...")."""
    import re
    m = re.search(r" on (.+) at L = (.+?); (\d+) seeds?, ", title)
    assert m, title
    return set(m.group(1).split(", ")), set(m.group(2).split(", ")), int(m.group(3))


@pytest.mark.parametrize("name,version", [("pascanu", "quick"), ("cells", "quick"), ("modern", "quick"),
                                          ("pascanu", "full"), ("pascanu", "faithful")])
def test_a_studys_title_names_exactly_what_its_configs_ran(name, version):
    """The title of a study's figure and table names the tasks, lengths and number of seeds of the configs that
    ran (the version's sweep expanded here), nothing of the full grid it did not run."""
    study = st.load_study(name)
    configs = expand(st.study_spec(study, version=version))
    rows = [{"status": "done", "config": c, "metrics": {}} for c in configs]
    tasks, lengths, seeds = _what_the_title_names(st.study_title(study, rows, version))
    assert tasks == {c["task"] for c in configs}
    assert lengths == {f"{c['length_range'][0]}..{c['length_range'][1]}" if c.get("length_range") else str(c["length"])
                       for c in configs}
    assert seeds == len({c["seed"] for c in configs})
    if (name, version) == ("pascanu", "quick"):  # the issue's case: temporal order only, L = 10-30, 2 seeds
        assert (tasks, seeds) == (set(study.quick["task"]), len(study.quick["seed"])) and "adding-pascanu" not in tasks


def test_a_quick_versions_title_differs_from_the_full_grid(tmp_path):
    """A study file of our own, quick and full: each title names its own configs' tasks, lengths and seeds."""
    f = tmp_path / "own.toml"
    f.write_text('name = "own"\n[methods.A]\nlr = 0.1\n[methods.B]\nlr = 0.2\n'
                 '[grid]\ntask = ["copy", "adding-le", "temporal-order"]\nlength = [7, 9, 11, 13]\nseed = [4, 5, 6]\n'
                 '[fixed]\nsteps = 3\n[quick]\ntask = ["adding-le"]\nlength = [9]\nseed = [5]\n')
    study = st.load_study(str(f))
    for version in ("quick", "full"):
        configs = expand(st.study_spec(study, version=version))
        title = st.study_title(study, [{"config": c, "metrics": {}} for c in configs], version)
        assert _what_the_title_names(title) == ({c["task"] for c in configs}, {str(c["length"]) for c in configs},
                                                len({c["seed"] for c in configs}))


def test_coinciding_series_are_all_drawn_and_said_to_coincide():
    """SGD and SGD-C with the same success rates at every length: both lines are drawn, each with its own marker
    and line style, the first thicker and underneath, and the legend says SGD-C equals SGD."""
    rows = ([_row("t", m, L, "unsolved") for m in ("SGD", "SGD-C") for L in (10, 20, 30)]
            + [_row("t", "SGD-CR", L, "solved" if L < 30 else "unsolved") for L in (10, 20, 30)])
    fig = st.plot_study(st.study_table(rows), title="x")
    ax = fig.axes[0]
    lines = {ln.get_gid(): ln for ln in ax.lines if ln.get_gid()}
    a, b, c = lines["t:SGD"], lines["t:SGD-C"], lines["t:SGD-CR"]
    assert list(a.get_xdata()) == list(b.get_xdata()) == [10, 20, 30]
    assert list(a.get_ydata()) == list(b.get_ydata()) == [0.0, 0.0, 0.0]  # the same points, both present
    assert len({ln.get_marker() for ln in (a, b, c)}) == 3 and len({ln.get_linestyle() for ln in (a, b, c)}) == 3
    assert a.get_linewidth() > b.get_linewidth() and a.get_zorder() < b.get_zorder()  # SGD shows around SGD-C
    assert a.get_markersize() > b.get_markersize() and b.get_markerfacecolor() == "none"  # hollow, nested
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["SGD", "SGD-C (= SGD)", "SGD-CR"]
    sn = st.plot_snapshots({"t": {"length": 3, "methods": {"A": [0.0, -1.0, -2.0], "B": [0.0, -1.0, -2.0]}}})
    assert [t.get_text() for t in sn.axes[0].get_legend().get_texts()] == ["A", "B (= A)"]


@pytest.mark.parametrize("name", ["pascanu", "modern"])
def test_the_title_fits_the_figure(name, tmp_path):
    """The wrapped suptitle lies inside the figure (the issue: cut at both edges), for a one-panel quick study
    and a three-panel full one."""
    study = st.load_study(name)
    version = "quick" if name == "pascanu" else "full"
    rows = [{"status": "done", "config": c, "metrics": {"status": "unsolved", "final_loss": 0.5, "baseline_loss": 1.0,
                                                         "steps": 1}} for c in expand(st.study_spec(study, version=version))]
    title = st.study_title(study, rows, version)
    fig = st.plot_study(st.study_table(rows), tmp_path / "s.png", measure=study.measure, title=title)
    renderer = fig.canvas.get_renderer()
    box, page = fig._suptitle.get_window_extent(renderer), fig.bbox
    assert page.x0 <= box.x0 and box.x1 <= page.x1 and page.y0 <= box.y0 and box.y1 <= page.y1, (box, page)
    assert fig.get_suptitle().replace("\n", " ") == title
