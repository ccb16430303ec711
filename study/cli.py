"""`cmi-study` (also `python -m study`): synth, inspect, run, confirm, report, demo.

Exit codes: 0 success, 2 bad input or configuration (one line on stderr), 1 internal
error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

# Before torch loads: OpenMP threads that spin-wait collapse throughput (20× measured
# here) as soon as another process shares the cores, e.g. a second study worker.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from pydantic import ValidationError

from cmi_model.errors import InputError, Interrupted


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, like every other bad input
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a valid {kind.__name__}") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
        return value

    return parse


def _storage_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--storage", help="SQLAlchemy URL (default: sqlite:///reports/NAME.db)")
    p.add_argument("--study-name", default="cmi", help="studies are NAME-ARM and NAME-confirm (default: cmi)")


def _study_args(p: argparse.ArgumentParser) -> None:
    _storage_args(p)
    p.add_argument(
        "--data", help="folder with train.csv + train_demographics.csv (default: embedded synthetic data)"
    )
    p.add_argument(
        "--preset",
        default="demo",
        choices=["tiny", "demo", "full"],
        help="sizes, epochs, folds (default: demo)",
    )
    p.add_argument(
        "--config",
        type=Path,
        help="TOML file overriding the preset ([study], [model], [loss], [data], [train], [synthetic])",
    )
    p.add_argument(
        "--arms", help="comma-separated arms among fixed,uncertainty,direct (default: fixed,uncertainty)"
    )
    p.add_argument("--n-trials", type=_positive(int), help="total trials per arm across all workers")
    p.add_argument("--folds", type=_positive(int), help="subject-grouped CV folds")
    p.add_argument("--epochs", type=_positive(int), help="maximum epochs per fold")
    p.add_argument("--seed", type=int, help="fold split, sampler and initialisation seed")
    p.add_argument(
        "--pruner", choices=["wilcoxon", "median", "none"], help="per-fold pruning (default: wilcoxon)"
    )
    p.add_argument("--subjects", type=_positive(int), help="subjects of the embedded synthetic data")
    p.add_argument(
        "--workers", type=_positive(int), default=1, help="worker processes on this machine (default 1)"
    )
    p.add_argument(
        "--threads", type=_positive(int), default=1, help="torch CPU threads per worker (default 1)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="cmi-study", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("synth", help="write the embedded synthetic data set as Kaggle-schema CSVs")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--subjects", type=_positive(int), default=12)
    p.add_argument("--full-size", action="store_true", help="the real sizes: 81 subjects, ~575k rows")
    p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("inspect", help="validate a data folder and summarise it")
    p.add_argument("--data", required=True, type=Path)
    p.add_argument("--json", action="store_true", help="print the summary as JSON")

    p = sub.add_parser("run", help="tune every arm with the same budget (run it on many workers at once)")
    _study_args(p)

    p = sub.add_parser("confirm", help="re-train each arm's best configuration on fresh fold splits")
    _storage_args(p)
    p.add_argument("--threads", type=_positive(int), default=1, help="torch CPU threads (default 1)")
    p.add_argument("--data", help="the same --data the run used (default: embedded synthetic data)")
    p.add_argument(
        "--seeds", type=_positive(int), default=None, help="fresh split seeds (default: the preset's)"
    )

    p = sub.add_parser("report", help="write the HTML comparison report")
    _storage_args(p)
    p.add_argument("--out", type=Path, help="HTML file (default: reports/NAME.html)")

    p = sub.add_parser("demo", help="the whole pipeline on the embedded data: run → confirm → report")
    _storage_args(p)
    p.add_argument("--preset", default="demo", choices=["tiny", "demo", "full"])
    p.add_argument("--out", type=Path, help="HTML file (default: reports/NAME.html)")
    p.add_argument(
        "--workers", type=_positive(int), default=min(2, os.cpu_count() or 1), help="worker processes"
    )
    return parser


def _settings_from(args):
    from study.settings import build_settings

    over: dict = {"study": {}, "train": {}, "synthetic": {}}
    if getattr(args, "arms", None):
        over["study"]["arms"] = tuple(a.strip() for a in args.arms.split(",") if a.strip())
    for flag, key in (("n_trials", "n_trials"), ("folds", "folds"), ("seed", "seed"), ("pruner", "pruner")):
        if getattr(args, flag, None) is not None:
            over["study"][key] = getattr(args, flag)
    if getattr(args, "epochs", None) is not None:
        over["train"]["max_epochs"] = args.epochs
    if getattr(args, "subjects", None) is not None:
        over["synthetic"]["subjects"] = args.subjects
    return build_settings(args.preset, getattr(args, "config", None), over)


def _storage_url(args) -> str:
    from study.storage import default_url

    return args.storage or default_url(args.study_name)


def _command_line(args) -> str:
    """The command as stored with the studies: this call's own arguments (main(argv) may not be
    sys.argv), with any storage password masked."""
    from study.storage import redact

    return redact("cmi-study " + shlex.join(args.argv))


def cmd_synth(args) -> None:
    from cmi_model.synthetic import generate

    t = time.perf_counter()
    summary = generate(args.out, n_subjects=args.subjects, full_size=args.full_size, seed=args.seed)
    print(json.dumps(summary, indent=2, default=str))
    print(f"wrote {args.out} in {time.perf_counter() - t:.1f}s")


def cmd_inspect(args) -> None:
    from cmi_model.data import describe, load_dir

    desc = describe(load_dir(args.data))
    if args.json:
        print(json.dumps(desc, indent=2))
        return
    ln = desc["length"]
    print(f"data: {args.data}")
    print(f"  rows {desc['n_rows']:,}  sequences {desc['n_sequences']:,}  subjects {desc['n_subjects']}")
    print(f"  sequence length: min {ln['min']}, median {ln['median']}, mean {ln['mean']}, max {ln['max']}")
    print(
        f"  IMU-only sequences: {desc['imu_only_share']:.1%}   NaN rotation: {desc['nan_rotation_share']:.1%}"
    )
    print("  sequences per gesture:")
    for g, n in sorted(desc["gesture_counts"].items(), key=lambda kv: -kv[1]):
        print(f"    {n:6d}  {g}")
    print(f"  fingerprint {desc['fingerprint']}")


def cmd_run(args) -> None:
    import torch

    from study.runner import run_arms
    from study.storage import safe_url

    settings = _settings_from(args)
    url = _storage_url(args)
    torch.set_num_threads(args.threads)
    st = settings.study
    print(
        f"study {args.study_name}: arms {', '.join(st.arms)}, {st.n_trials} trials per arm, {st.folds} folds, "
        f"{args.workers} worker(s), storage {safe_url(url)}"
    )
    helpers: list[subprocess.Popen] = []

    def spawn() -> None:  # once this process has created the studies and queued the baselines
        helpers.extend(_spawn_workers(args, url) if args.workers > 1 else [])

    try:
        summary = run_arms(settings, url, args.study_name, args.data, _command_line(args), on_ready=spawn)
    finally:
        codes = [p.wait() for p in helpers]
    if any(codes):
        raise RuntimeError(f"{sum(c != 0 for c in codes)} helper worker(s) failed (exit codes {codes})")
    for arm, s in summary.items():
        best = f"{s['best_value']:.4f}" if s["best_value"] is not None else "none"
        print(
            f"  {arm:12s} best CV score {best}  ({s['complete']} complete, {s['pruned']} pruned, {s['fail']} failed)"
        )


def _spawn_workers(args, url: str) -> list[subprocess.Popen]:
    """workers - 1 more processes of this same run on the same storage; this process is the last."""
    argv = [sys.executable, "-m", "study", "run", "--storage", url, "--study-name", args.study_name]
    argv += ["--preset", args.preset, "--threads", str(args.threads)]
    for flag in ("data", "config", "arms", "n_trials", "folds", "epochs", "seed", "pruner", "subjects"):
        if getattr(args, flag, None) is not None:
            argv += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    env = os.environ | {
        "TQDM_DISABLE": "1"
    }  # one progress bar: this process's, which counts every worker's trials
    return [subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL) for _ in range(args.workers - 1)]


def cmd_confirm(args) -> None:
    import torch

    from study.runner import run_confirm

    url = _storage_url(args)
    torch.set_num_threads(args.threads)
    seeds = args.seeds or _stored_confirm_seeds(url, args.study_name)
    result = run_confirm(url, args.study_name, seeds, args.data, _command_line(args))
    for arm, r in result.items():
        print(f"  {arm:12s} confirmation mean {r['mean']:.4f} over {r['n']} (seed, fold) pairs")


def _stored_confirm_seeds(url: str, name: str) -> int:
    """Default --seeds: the preset recorded with the study."""
    import optuna

    from study.settings import Settings
    from study.storage import open_storage

    storage = open_storage(url, must_exist=True)  # confirm reads a run: never a new database
    for s in optuna.get_all_study_summaries(storage):
        if s.study_name.startswith(f"{name}-") and "settings" in s.user_attrs:
            return Settings(**s.user_attrs["settings"]).study.confirm_seeds
    raise InputError(
        f"storage has no study named {name}-<arm>: run `cmi-study run --study-name {name}` first"
    )


def cmd_report(args) -> Path:
    from study.report import write_report
    from study.storage import REPORTS_DIR, open_storage

    out = args.out or REPORTS_DIR / f"{args.study_name}.html"
    # Opened like run and confirm open it (same driver choice, one-line errors, no new database).
    storage = open_storage(_storage_url(args), must_exist=True)
    # A missing study raises StudyNotFoundError, an InputError: exit 2, one line.
    path = write_report(storage, args.study_name, out, command=_command_line(args))
    print(f"report: {Path(path).resolve()}")
    return Path(path)


def cmd_demo(args) -> None:
    from study.storage import safe_url

    start = time.perf_counter()
    args.data, args.config, args.arms, args.seeds, args.threads = None, None, None, None, 1
    for flag in ("n_trials", "folds", "epochs", "seed", "pruner", "subjects"):
        setattr(args, flag, None)
    print("== 1/3 search: every arm, same budget, same folds")
    cmd_run(args)
    print("== 2/3 confirm: best configuration of each arm on fresh fold splits")
    cmd_confirm(args)
    print("== 3/3 report")
    report = cmd_report(args)
    url = _storage_url(args)
    print(f"\ndone in {time.perf_counter() - start:.0f}s")
    print(f"report:    {report.resolve()}")
    print(f"database:  {safe_url(url)}")
    print(f"dashboard: optuna-dashboard {shlex.quote(safe_url(url))}")


COMMANDS = {
    "synth": cmd_synth,
    "inspect": cmd_inspect,
    "run": cmd_run,
    "confirm": cmd_confirm,
    "report": cmd_report,
    "demo": cmd_demo,
}


def _raise_interrupted(signum, frame):
    raise Interrupted()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # stored with the studies (masked)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # our own progress bars and messages say it
    # Ctrl-C as Interrupted, not KeyboardInterrupt: Lightning would turn the latter into exit code 1
    # and leave the trial RUNNING (see cmi_model.errors.Interrupted and objective.run_folds).
    on_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, _raise_interrupted) if on_main_thread else None
    try:
        COMMANDS[args.command](args)
    except InputError as e:
        print(f"cmi-study {args.command}: error: {e}", file=sys.stderr)
        return 2
    except ValidationError as e:
        err = e.errors()[0]
        print(
            f"cmi-study {args.command}: error: {'.'.join(map(str, err['loc']))}: {err['msg']}",
            file=sys.stderr,
        )
        return 2
    except (KeyboardInterrupt, Interrupted):
        print(
            f"\ncmi-study {args.command}: interrupted; finished trials are kept in the storage",
            file=sys.stderr,
        )
        return 130
    finally:
        if previous is not None:  # an in-process caller (tests, notebooks) gets its handler back
            signal.signal(signal.SIGINT, previous)
    return 0


if __name__ == "__main__":
    sys.exit(main())
