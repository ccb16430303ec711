"""A new weighting scheme is one new file: a throwaway `dualproj` arm (TorchJD's DualProj, Lopez-Paz
& Ranzato 2017), written into a copy of the packages, is an arm of the study, a value of
`LossConfig.auto_weighting` and a search space from that file alone, trains in a study, and a study
made by the code before it (tests/fixtures/old_study.db, made by tests/fixtures/make_old_study.py)
is still confirmed and reported."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
OLD_STUDY = Path(__file__).with_name("fixtures") / "old_study.db"

DUALPROJ = '''"""DualProj (Lopez-Paz & Ranzato 2017): a throwaway arm of tests/test_new_arm.py."""

from torchjd import aggregation as agg

from cmi_model.weighting._jacobian import GradientLevel


class DualProjWeighting(GradientLevel):
    """Lopez-Paz & Ranzato (2017), "Gradient Episodic Memory for Continual Learning": the mean
    gradient projected onto the dual cone of the terms' gradients (TorchJD `DualProj`)."""

    arm = "dualproj"
    label = "DualProj (dual cone projection)"
    paper = "Lopez-Paz & Ranzato 2017"
    color = "#000000"
    position = 1000

    def __init__(self, cfg):
        super().__init__(cfg, agg.DualProj())
'''


@pytest.fixture(scope="module")
def with_dualproj(tmp_path_factory) -> dict[str, str]:
    """The environment of a process that runs the packages with one file added: dualproj.py."""
    src = tmp_path_factory.mktemp("src")
    for package in ("cmi_model", "study"):
        shutil.copytree(REPO / package, src / package, ignore=shutil.ignore_patterns("__pycache__"))
    (src / "cmi_model" / "weighting" / "dualproj.py").write_text(DUALPROJ)
    return os.environ | {"PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")])}


def _src(env: dict[str, str]) -> Path:
    """The copy of the packages: also the working folder, since `python -c` and `-m` put the working
    folder ahead of PYTHONPATH (from the repository's root, its own packages would load)."""
    return Path(env["PYTHONPATH"].split(os.pathsep)[0])


def _python(env: dict[str, str], code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=_src(env), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _study(env: dict[str, str], cwd: Path, *argv: str) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-m", "study", *argv], env=env, cwd=cwd, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_one_file_makes_an_arm_its_config_value_and_its_search_space(with_dualproj):
    out = _python(
        with_dualproj,
        """
import json
import pytorch_lightning as pl
import torch
import cmi_model.weighting as w
from cmi_model.config import MODEL_PRESETS, LossConfig, TrainConfig
from cmi_model.dataset import example_batch
from cmi_model.module import CMILitModule
from cmi_model.network import CMINetwork
from study import space
cfg = LossConfig(auto_weighting="dualproj")
m = CMILitModule(CMINetwork(MODEL_PRESETS["tiny"]), cfg, TrainConfig(warmup_epochs=0))
trainer = pl.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False)
trainer.fit(m, torch.utils.data.DataLoader([example_batch(8, 16, seed=i) for i in range(2)], batch_size=None))
print(json.dumps({
    "file": w.SCHEMES["dualproj"].__module__, "arms": list(w.ARMS), "all": list(w.ALL_ARMS),
    "family": w.SCHEMES["dualproj"].family, "space": space.describe("dualproj"),
    "baseline": space.BASELINE["dualproj"], "weights": m.weight_history,
}))
""",
    )
    got = json.loads(out.strip().splitlines()[-1])
    assert got["file"] == "cmi_model.weighting.dualproj"
    assert got["arms"][-1] == "dualproj" and got["all"][-1] == "dualproj" and len(got["arms"]) >= 16
    assert got["family"] == "gradient-level"
    assert set(got["space"]) == {"lr", "weight_decay", "dropout"} and got["baseline"] == {}
    # One epoch trained with the aggregator's weights (not the 1s its forward starts from).
    (epoch,) = got["weights"]
    assert set(epoch) == {"multiclass", "binary", "nine_class", "kl"} and any(
        v != 1.0 for v in epoch.values()
    )
    helped = " ".join(_study(with_dualproj, _src(with_dualproj), "run", "--help").stdout.split())  # unwrapped
    assert "dualproj = DualProj (dual cone projection) (Lopez-Paz & Ranzato 2017)" in helped


@pytest.mark.slow
def test_the_new_arm_trains_and_a_study_made_before_it_is_confirmed_and_reported(with_dualproj, tmp_path):
    db = tmp_path / "old.db"
    shutil.copy(OLD_STUDY, db)
    common = ["--storage", f"sqlite:///{db}", "--study-name", "old"]
    # A pair queued the way the code of that day queued it (the arm a fixed parameter, no arm
    # attribute), not yet taken: it trains, as the arm it was queued for.
    _python(
        with_dualproj,
        f"""
import optuna
from study import records
url = "sqlite:///{db}"
best = records.best_trial(optuna.load_study(study_name="old-fixed", storage=url).trials)
attrs = records.trial_attrs(source_trial=best.number, params=best.params, forced=False)
optuna.load_study(study_name="old-confirm", storage=url).enqueue_trial({{"arm": "fixed", "seed": 2}}, user_attrs=attrs)
""",
    )
    # The old study's confirmation pairs carry their arm as a categorical over the arms of their day;
    # with an arm more, suggesting it again would raise "CategoricalDistribution does not support
    # dynamic value space" (and the code of that day failed every new pair so, exiting 0). A second
    # seed trains a new pair of each arm: the one queued above and one queued now.
    _study(with_dualproj, tmp_path, "confirm", "--seeds", "2", *common)
    report = tmp_path / "old.html"
    _study(with_dualproj, tmp_path, "report", *common, "--out", str(report))
    page = report.read_text()
    assert "learned uncertainty weights" in page and "dualproj" not in page  # only the arms it searched
    check = _python(
        with_dualproj,
        f"""
import optuna
from study import records
trials = optuna.load_study(study_name="old-confirm", storage="sqlite:///{db}").trials
print(sorted((records.read_trial(t).arm, t.params["seed"]) for t in trials if t.state.name == "COMPLETE"))
print(len(trials))
""",
    )
    done, n = check.strip().splitlines()
    assert (
        done == "[('fixed', 1), ('fixed', 2), ('uncertainty', 1), ('uncertainty', 2)]" and n == "4"
    )  # none twice
    # The new arm runs in a study of its own beside the old ones.
    new = ["--storage", f"sqlite:///{db}", "--study-name", "new", "--workers", "1"]
    _study(with_dualproj, tmp_path, "run", "--preset", "tiny", "--arms", "dualproj", "--n-trials", "1", *new)
