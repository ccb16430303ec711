"""Study settings: a preset, overridden by a TOML file, overridden by command-line flags."""

import tomllib
from pathlib import Path
from typing import Literal, get_args, get_origin

from pydantic import Field, ValidationError, field_validator, model_validator

from cmi_model.config import (
    MAX_SEED,
    MODEL_PRESETS,
    DataConfig,
    LossConfig,
    ModelConfig,
    StrictModel,
    TrainConfig,
)
from cmi_model.errors import InputError
from cmi_model.reading import check_regular_file
from cmi_model.weighting import ALL_ARMS, ARMS
from study.stats import DEFAULT_ROPE

# Fold k of split seed s trains with seed s*1000 + k (study/objective.py) and the confirmation's
# split seeds are seed+1 .. seed+confirm_seeds: with at most 100 folds and 1,000 confirmation
# seeds, every derived seed stays within numpy's and Lightning's 0..2**32-1.
MAX_STUDY_SEED = 4_000_000
MAX_CONFIRM_SEEDS = 1000  # the preset's/TOML's confirm_seeds and `confirm --seeds` alike
assert (MAX_STUDY_SEED + 1000) * 1000 + 99 <= MAX_SEED


MAX_OUTER_FOLDS = 20  # each outer fold runs a whole search per arm: more is hours for nothing
MAX_SYNTHETIC_SUBJECTS = 200  # the embedded data's subjects (the real data has 81), config and flags alike
# Worker processes one command starts on one machine: each holds torch, Lightning and the fold data
# (~660 MB measured), so 64 need ~42 GB; more machines join with their own `run`.
MAX_WORKERS = 64


class SyntheticSettings(StrictModel):
    subjects: int = Field(10, ge=2, le=MAX_SYNTHETIC_SUBJECTS)  # embedded data size when no --data is given
    full_size: bool = False  # the real competition's sizes (81 subjects, ~575k rows)
    seed: int = Field(0, ge=0, le=MAX_SEED)  # 0..2**32-1


class StudySection(StrictModel):
    arms: tuple[str, ...] = ("fixed", "uncertainty")
    n_trials: int = Field(6, ge=1, le=100_000)  # per arm, across all workers; at most 100,000
    folds: int = Field(3, ge=2, le=100)  # at most 100
    seed: int = Field(0, ge=0, le=MAX_STUDY_SEED)  # subject split, fold split, sampler and initialisation
    # Share of subjects held out of the search: the confirmation validates on them only, so
    # choosing the best of many configurations cannot flatter the verdict. 0: no hold-out.
    holdout: float = Field(0.25, ge=0.0, le=0.5)  # 0, or 0.01..0.5 (more would hold out most subjects)
    # Nested evaluation: subjects are split once (by seed, stratified by gesture) into this many
    # outer folds; each is held out in turn, with searches of its own on the others, so every
    # subject is scored once by models whose selection never saw it. 1: one held-out set (holdout).
    outer_folds: int = Field(1, ge=1, le=MAX_OUTER_FOLDS)
    # Per-fold pruning of the search; the confirmation never prunes. "percentile": from the 3rd
    # trial on, stop a trial whose fold-k score is not in the top quarter of the complete trials'
    # at fold k. Measured over 5 sampler seeds, 10 trials: 44% / 50% of the fold-trainings saved
    # at 3 / 5 folds, best score within 0.01 of the unpruned run's in 5 of 5 seeds; "median" 39% /
    # 47%; "wilcoxon" 0% / 12% (benchmarks/bench_pruners.py, BENCHMARKS.md).
    pruner: Literal["percentile", "median", "wilcoxon", "none"] = "percentile"
    confirm_seeds: int = Field(2, ge=1, le=MAX_CONFIRM_SEEDS)
    # Also confirm each learned loss-level arm's weights frozen into the fixed formula (study.frozen):
    # did learning matter, or only where it ended? One more arm's confirmation per such arm.
    freeze_learned: bool = False
    # Region of practical equivalence of the verdict, in score units: differences within ±rope do
    # not matter to the user (README "The rope"). Stored with the study; changes no score.
    rope: float = Field(DEFAULT_ROPE, gt=0.0, lt=1.0)
    heartbeat_interval: int = Field(
        10, ge=1, le=10
    )  # seconds; a dead worker's trial is found within a minute
    grace_period: int = Field(30, ge=2, le=60)
    max_retry: int = Field(2, ge=0, le=10)  # re-runs of a trial whose worker died; at most 10

    @model_validator(mode="after")
    def _grace_after_heartbeat(self) -> "StudySection":
        # A grace period within one heartbeat interval would fail (and re-run) live trials.
        if self.grace_period <= self.heartbeat_interval:
            raise ValueError(
                f"grace_period ({self.grace_period}s) must be longer than heartbeat_interval "
                f"({self.heartbeat_interval}s)"
            )
        return self

    @field_validator("holdout")
    @classmethod
    def _holdout_share(cls, holdout: float) -> float:
        if 0 < holdout < 0.01:  # 1/holdout parts: a share this small holds out nobody
            raise ValueError(f"must be 0 (no hold-out) or between 0.01 and 0.5, got {holdout:g}")
        return holdout

    @field_validator("arms", mode="before")
    @classmethod
    def _all_arms(cls, arms):
        """ "all": every registered arm but the controls (cmi_model.weighting.ALL_ARMS)."""
        if isinstance(arms, (list, tuple)) and "all" in arms:
            if len(arms) != 1:
                raise ValueError(f"'all' stands alone (it already holds every arm), got {','.join(arms)!r}")
            return ALL_ARMS
        return arms

    @field_validator("arms")
    @classmethod
    def _known_arms(cls, arms: tuple[str, ...]) -> tuple[str, ...]:
        if not arms:
            raise ValueError(f"no arm given; choose one or more of {', '.join(ARMS)}")
        for a in arms:
            if not a:
                raise ValueError(f"an empty arm name in {','.join(arms)!r} (a stray comma?)")
            if a not in ARMS:
                raise ValueError(f"unknown arm {a!r}; choose from {', '.join(ARMS)}")
        if len(set(arms)) != len(arms):
            raise ValueError(f"arms must be distinct, got {arms}")
        return arms


class Settings(StrictModel):
    preset: str
    model_preset: str = "tiny"
    study: StudySection = StudySection()
    synthetic: SyntheticSettings = SyntheticSettings()
    model: ModelConfig = MODEL_PRESETS["tiny"]
    loss: LossConfig = LossConfig()
    data: DataConfig = DataConfig()
    train: TrainConfig = TrainConfig()


# Each preset sets model size, data size, epochs and folds together.
PRESETS: dict[str, dict] = {
    "tiny": {  # seconds: for tests
        "model_preset": "tiny",
        # 2 confirm seeds: the least that splits the verdict's variance into seeds and subjects
        "study": {"n_trials": 2, "folds": 2, "confirm_seeds": 2, "holdout": 0.34},
        "synthetic": {"subjects": 6},
        "data": {"max_len": 48, "batch_size": 64},
        "train": {"max_epochs": 1, "patience": 1, "warmup_epochs": 0.0},
    },
    "demo": {  # the README demo: under three minutes on a 2-core CPU
        "model_preset": "tiny",
        # 2 outer folds of 9 subjects: each is held out in turn, so the verdict rests on all 18.
        # 4 trials per arm and outer fold, all complete (no pruning: a pruned trial is not one the
        # figures can use); 2 inner folds of the 9 pool subjects, each training on 4-5 of them.
        "study": {
            "n_trials": 4,
            "folds": 2,
            "confirm_seeds": 2,
            "outer_folds": 2,
            "pruner": "none",
            "freeze_learned": True,  # the report's frozen-uncertainty rows: 8 more trainings
        },
        "synthetic": {"subjects": 18},
        "data": {"max_len": 64, "batch_size": 64},
        "train": {"max_epochs": 4, "patience": 3, "warmup_epochs": 0.5},
    },
    "full": {  # the public experiment's model on the full data: hours, a GPU helps
        "model_preset": "public",
        # 3 outer folds: every one of the 81 subjects is held out once (27 at a time), each pool of
        # 54 still gives 5 inner folds of ~11; 40 trials per arm and outer fold (3x one search).
        "study": {"n_trials": 40, "folds": 5, "confirm_seeds": 3, "outer_folds": 3, "freeze_learned": True},
        "synthetic": {"full_size": True},
        "data": {"max_len": 128, "batch_size": 64},
        "train": {"max_epochs": 40, "patience": 8, "warmup_epochs": 2.0},
    },
}


SECTIONS = ("study", "synthetic", "model", "loss", "data", "train")  # the TOML tables


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _one_line(e: ValidationError, where: str, flags: dict[str, str]) -> str:
    err = e.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "settings"
    msg = err["msg"].removeprefix("Value error, ")
    more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
    if loc in flags:  # the value came from a command-line flag: name it as the user typed it
        where = flags[loc]
    return f"{where}: {loc}: {msg}{more}"


def _scalar_types(annotation) -> set[type]:
    """The scalar types a field's annotation admits (a Literal's values' types; containers' items)."""
    if get_origin(annotation) is Literal:
        return {type(v) for v in get_args(annotation)}
    args = get_args(annotation)
    if args:
        return set().union(*(_scalar_types(a) for a in args if a is not Ellipsis))
    return {annotation} if isinstance(annotation, type) else set()


def _check_toml_types(table: dict, section: str, config_file) -> None:
    """TOML values are typed: a boolean or a string where a number belongs is a mistake, which
    pydantic's lax mode would read as a number (`max_epochs = true` → 1, `"4"` → 4)."""
    model = Settings.model_fields[section].annotation
    for key, value in table.items():
        field = model.model_fields.get(key)
        if field is None or isinstance(value, dict):
            continue  # unknown keys and nested tables: the settings' own validation names them
        items = value if isinstance(value, list) else [value]
        types = _scalar_types(field.annotation)
        for item in items:
            if isinstance(item, bool) and bool not in types:
                raise InputError(
                    f"{config_file}: {section}.{key}: {str(item).lower()} is a boolean, not a number"
                )
            if isinstance(item, str) and str not in types:
                raise InputError(f"{config_file}: {section}.{key}: {item!r} is a string, not a number")


def build_settings(
    preset: str = "demo",
    config_file: Path | None = None,
    overrides: dict | None = None,
    flags: dict[str, str] | None = None,
) -> Settings:
    """preset < TOML file < command-line overrides; any impossible value is an InputError.

    flags: "section.field" → the command-line flag that set it, for the error line."""
    if preset not in PRESETS:
        raise InputError(f"--preset: unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    raw = _merge({"preset": preset}, PRESETS[preset])
    if config_file is not None:
        check_regular_file(Path(config_file), "--config ")
        try:
            loaded = tomllib.loads(Path(config_file).read_text())
        except RecursionError:  # tomllib parses nested tables recursively
            raise InputError(f"{config_file}: not valid TOML: nested too deeply") from None
        except FileNotFoundError:
            raise InputError(f"{config_file}: config file not found") from None
        except tomllib.TOMLDecodeError as e:
            raise InputError(f"{config_file}: not valid TOML: {e}") from None
        except (OSError, UnicodeDecodeError) as e:  # a folder, no permission, not text: still bad input
            raise InputError(f"{config_file}: cannot read the config file: {e}") from None
        for section in SECTIONS:
            # `study = 3` would replace the whole section (or crash the model merge below).
            if not isinstance(loaded.get(section, {}), dict):
                raise InputError(
                    f"{config_file}: {section} must be a [{section}] table, got {loaded[section]!r}"
                )
            _check_toml_types(loaded.get(section, {}), section, config_file)
        raw = _merge(raw, loaded)
    raw = _merge(raw, overrides or {})
    model_preset = raw.get("model_preset", "tiny")
    if not isinstance(model_preset, str) or model_preset not in MODEL_PRESETS:
        raise InputError(f"model_preset: unknown {model_preset!r}; choose from {', '.join(MODEL_PRESETS)}")
    raw["model"] = MODEL_PRESETS[model_preset].model_dump() | raw.get("model", {})
    try:
        return Settings(**raw)
    except ValidationError as e:
        raise InputError(_one_line(e, str(config_file) if config_file else "options", flags or {})) from None
