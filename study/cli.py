"""`cmi-study` (also `python -m study`): synth, inspect, run, confirm, report, demo.

Exit codes: 0 success, 2 bad input or configuration (one line on stderr), 1 internal
error, 130 interrupted (Ctrl-C), 143 stopped by SIGTERM, 141 when the reader of stdout went away.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import signal
import sys
import threading
import time
from pathlib import Path

# Before torch loads: OpenMP threads that spin-wait collapse throughput (20× measured
# here) as soon as another process shares the cores, e.g. a second study worker.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


from cmi_model.errors import InputError
from cmi_model.reading import check_regular_file
from cmi_model.stopping import clear_stop
from study import exits
from study.options import OPTIONS, build_parser, stage_args
from study.workers.helper import Helpers


def _settings_from(args):
    from study.settings import Settings, build_settings

    if args.resolved_settings is not None:
        return Settings.model_validate_json(args.resolved_settings)
    over: dict = {}
    flags: dict[str, str] = {}
    for opt in OPTIONS:
        value = getattr(args, opt.dest, None)
        if opt.setting and args.command in opt.commands and value is not None:
            section, key = opt.setting.split(".")
            over.setdefault(section, {})[key] = value
            flags[opt.setting] = opt.flag
    return build_settings(args.preset, args.config, over, flags)


def _storage_url(args) -> str:
    from study.workers.urls import resolve_url

    return resolve_url(args.storage, args.study_name)


def _command_line(args) -> str:
    """The command as stored with the studies: this call's own arguments (main(argv) may not be
    sys.argv), with the storage URL's secrets masked (parsed, so a password with a space or in a
    query parameter is masked too) and any other URL-like text redacted."""
    from study.workers.urls import redact, safe_url

    argv = list(args.argv)
    for i, a in enumerate(argv):
        if a.startswith("--storage="):
            argv[i] = "--storage=" + safe_url(a.removeprefix("--storage="))
        elif i and argv[i - 1] == "--storage":
            argv[i] = safe_url(a)
    return redact("cmi-study " + shlex.join(argv))


SYNTH_FILES = ("train.csv", "train_demographics.csv", "test.csv", "test_demographics.csv")


def cmd_synth(args) -> None:
    from cmi_model.synthetic import generate

    out = args.out
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: is not a folder")
    if out.is_dir() and not args.force and (held := sorted(p.name for p in out.iterdir())):
        shown = ", ".join(held[:3]) + (", ..." if len(held) > 3 else "")
        raise InputError(
            f"--out {out}: the folder is not empty ({len(held)} entries: {shown}); pass --force to replace "
            f"just the files synth writes ({', '.join(SYNTH_FILES)}) and keep the rest"
        )
    t = time.perf_counter()
    summary = generate(args.out, n_subjects=args.subjects, full_size=args.full_size, seed=args.data_seed)
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


def _forwarded(args, command: str) -> list[str]:
    """`command` with the options marked `forward`, for a helper worker on the same storage."""
    argv = [command]
    for opt in OPTIONS:
        value = getattr(args, opt.dest, None)
        if not (opt.forward and command in opt.commands) or value is None or value is False:
            continue
        if value is True:  # a switch ("store_true"): the flag alone
            argv.append(opt.flag)
        else:
            argv += [opt.flag, _storage_url(args) if opt.dest == "storage" else str(value)]
    return argv


@contextlib.contextmanager
def _helpers(args, n: int):
    """The demo's helpers (started once for both of its stages), or this command's own."""
    if getattr(args, "helpers", None) is not None:
        yield args.helpers
        return
    from study.workers import gpus

    with gpus.placed(n + 1, args.gpu) as placement:
        if (line := placement.line()) is not None and not args.helper:
            print(line)
        gpus.cap_memory()
        helpers = Helpers(n, [placement.helper_env(i + 1) for i in range(n)])
        try:
            yield helpers
        finally:
            helpers.close()


def owned_arms(arms: tuple[str, ...], workers: int) -> list[tuple[str, ...]] | None:
    """Each worker's arms when there are no more workers than arms: a worker owns whole arms
    and runs their trials in order, so the same command gives the same trials. None: every
    worker shares every arm (the trials then depend on which worker finishes first)."""
    if workers > len(arms):
        return None
    return [arms[i::workers] for i in range(workers)]


def cmd_run(args) -> None:
    import torch

    from study.arm_studies import outer_fold_list
    from study.workers.urls import safe_url

    settings = _settings_from(args)
    url = _storage_url(args)
    torch.set_num_threads(args.threads)
    st = settings.study
    if st.outer_folds > 1 and args.holdout is not None:
        raise InputError(f"--holdout: not used with {st.outer_folds} outer folds: each is held out in turn")
    if args.outer_fold is not None and args.outer_fold > st.outer_folds > 1:
        raise InputError(f"--outer-fold {args.outer_fold}: the study has {st.outer_folds} outer folds")
    nested = f", {st.outer_folds} outer folds" if st.outer_folds > 1 else ""
    print(
        f"study {args.study_name}: arms {', '.join(st.arms)}, {st.n_trials} trials per arm, {st.folds} folds"
        f"{nested}, {args.workers} worker(s), storage {safe_url(url)}"
    )
    owned = owned_arms(st.arms, args.workers) if args.only_arms is None else [args.only_arms]
    with _helpers(args, args.workers - 1) as helpers:
        for k in outer_fold_list(st, args.outer_fold):
            if k is not None and args.outer_fold is None:
                print(f"-- outer fold {k} of {st.outer_folds}")
            _run_part(args, settings, url, helpers, owned, k)


def _run_part(args, settings, url: str, helpers, owned, k: int | None) -> None:
    """One outer fold's searches (k None: the study's one held-out set), this process and its helpers."""
    from study.runner import run_arms, summarize

    def spawn() -> None:  # once this process has created the studies and queued the baselines
        if args.workers > 1:
            resolved = settings.model_dump_json()  # every worker runs the same settings
            extra = [["--resolved-settings", resolved] for _ in range(args.workers - 1)]
            if owned is not None:
                extra = [
                    e + ["--only-arms", ",".join(arms)] for e, arms in zip(extra, owned[1:], strict=True)
                ]
            if k is not None:
                extra = [e + ["--outer-fold", str(k)] for e in extra]
            helpers.send(_forwarded(args, "run"), extra)

    only = owned[0] if owned is not None else None
    # Arms handed over by the `run` that made their studies are replayed with --seed.
    replay = args.only_arms is not None
    with helpers.waited():
        studies = run_arms(
            settings, url, args.study_name, args.data, _command_line(args), spawn, only, replay, k
        )
    for arm, study in studies.items():  # after the helpers: every worker's trials
        s = summarize(study)
        best = f"{s['best_value']:.4f}" if s["best_value"] is not None else "none"
        print(
            f"  {arm:12s} best CV score {best}  ({s['complete']} complete, {s['pruned']} pruned, {s['fail']} failed)"
        )


def cmd_confirm(args) -> None:
    import torch
    from optuna.trial import TrialState

    from study.confirm import confirm_parts, prepare_confirm, work_confirm

    torch.set_num_threads(args.threads)
    url = _storage_url(args)
    parts = confirm_parts(url, args.study_name, args.outer_fold)
    with _helpers(args, args.workers - 1) as helpers:
        for k, name in parts:
            if k is not None:
                print(f"-- outer fold {k}: {name}")
            confirm, objective, settings = prepare_confirm(
                url, name, args.seeds, args.data, _command_line(args), args.unfinished
            )
            if confirm.get_trials(deepcopy=False, states=(TrialState.WAITING,)):  # else: nothing to do
                extra = [[] if k is None else ["--outer-fold", str(k)] for _ in range(args.workers - 1)]
                helpers.send(_forwarded(args, "confirm"), extra)
            with helpers.waited():
                result = work_confirm(confirm, objective, settings.study)
            width = max([12, *map(len, result)])  # a frozen configuration's label is longer
            for arm, r in result.items():
                print(f"  {arm:{width}s} confirmation mean {r['mean']:.4f} over {r['n']} (seed, fold) pairs")


def cmd_report(args) -> Path:
    path, url, artifact_dir = _write_report(args)
    print(f"dashboard: {_dashboard_command(url, artifact_dir)}")
    return path


def _write_report(args) -> tuple[Path, str, Path]:
    """The report page, stored as an artifact too: (its path, the storage URL, the artifact folder)."""
    from study.report import write_report
    from study.report.artifact import check_folder, save_report_artifact
    from study.workers.storage import open_storage
    from study.workers.urls import REPORTS_DIR

    out = args.out or REPORTS_DIR / f"{args.study_name}.html"
    artifact_dir = _artifact_dir(args)
    _check_out(out, args.force)
    check_folder(artifact_dir)
    # Opened like run and confirm open it (same driver choice, one-line errors, no new database).
    url = _storage_url(args)
    storage = open_storage(url, must_exist=True)
    # A missing study raises StudyNotFoundError, an InputError: exit 2, one line.
    path = write_report(storage, args.study_name, out, command=_command_line(args), rope=args.rope)
    print(f"report: {Path(path).resolve()}")
    try:
        saved = save_report_artifact(storage, args.study_name, path, artifact_dir)
    except Exception as e:  # the report is written; a read-only storage must not lose it
        print(
            f"cmi-study {args.command}: warning: the report is not stored as an artifact: {e}",
            file=sys.stderr,
        )
        return Path(path), url, artifact_dir
    if saved is None:
        print("artifact: none yet (no confirmation study: run `confirm` first)")
    else:
        how = "replaced" if saved.replaced else "stored"
        print(f"artifact: {how} as {saved.path} (study {saved.study_name})")
    return Path(path), url, artifact_dir


def _artifact_dir(args) -> Path:
    from study.workers.urls import REPORTS_DIR

    return args.artifact_dir or REPORTS_DIR / f"{args.study_name}-artifacts"


def _dashboard_command(url: str, artifact_dir: Path) -> str:
    """The live view of the storage, with the report among the confirmation study's artifacts.
    A URL from the environment is named by its variable: the command then works as printed,
    and its password stays out of the output and of the dashboard's command line."""
    from study.workers.urls import STORAGE_ENV, origin, safe_url

    where = f'"${STORAGE_ENV}"' if origin(url) == STORAGE_ENV else shlex.quote(safe_url(url))
    return f"optuna-dashboard {where} --artifact-dir {shlex.quote(str(artifact_dir))}"


def _check_out(out: Path, force: bool) -> None:
    """The report may replace an earlier report, never a folder or a file somebody else wrote."""
    from study.report import is_report

    if out.is_dir():
        raise InputError(f"--out {out}: is a directory; give the HTML file's path")
    # Never a device, FIFO or socket, --force or not: /dev/null would be replaced by a file, and
    # /dev/stdout (a pipe to ourselves) would block.
    check_regular_file(out, "--out ")
    if out.exists() and not force and not is_report(out):
        raise InputError(f"--out {out}: exists and is not a cmi-study report; pass --force to overwrite it")


def cmd_demo(args) -> None:
    from study.report.artifact import check_folder
    from study.workers.urls import REPORTS_DIR, safe_url

    # The report's outputs are refused now, not after minutes of training.
    _check_out(args.out or REPORTS_DIR / f"{args.study_name}.html", args.force)
    check_folder(_artifact_dir(args))
    start = time.perf_counter()
    # Each stage with its own options, as its own command line would give them (options.stage_args).
    run, confirm, report = (stage_args(args, command) for command in ("run", "confirm", "report"))
    for stage in (run, confirm, report):
        stage.argv, stage.helper = args.argv, args.helper  # stored with the studies: the demo's command
    with _helpers(args, args.workers - 1) as helpers:  # one start-up for both stages
        run.helpers = confirm.helpers = helpers
        print("== 1/3 search: every arm, same budget, same folds")
        cmd_run(run)
        print("== 2/3 confirm: best configuration of each arm, validated on held-out subjects")
        cmd_confirm(confirm)
    print("== 3/3 report")
    report, url, _ = _write_report(report)
    print(f"\ndone in {time.perf_counter() - start:.0f}s")
    print(f"report:    {report.resolve()}")
    print(f"database:  {safe_url(url)}")
    print(f"dashboard: {_dashboard_command(url, _artifact_dir(args))}")


COMMANDS = {
    "synth": cmd_synth,
    "inspect": cmd_inspect,
    "run": cmd_run,
    "confirm": cmd_confirm,
    "report": cmd_report,
    "demo": cmd_demo,
}


def _storage_named(args) -> str:
    """ "storage URL" (password masked) for a line about a storage that failed under a command."""
    from study.workers.urls import safe_url

    try:
        return f"storage {safe_url(_storage_url(args))}"
    except Exception:  # noqa: BLE001 — a line about another failure: the plain word will do
        return "storage"


def main(argv: list[str] | None = None, *, helper: bool = False) -> int:
    """The command line's exit code. helper: run by a helper worker (study/workers/helper.py), which
    leaves the "interrupted" line to the driver: Ctrl-C reaches every worker, one line says it."""
    exits.reopen_closed_streams()
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # bad options (exit 2, one line) or --help (0): a return for in-process callers
        return int(e.code or 0)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # stored with the studies (masked)
    args.helper = helper
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # our own progress bars and messages say it
    # Ctrl-C and SIGTERM as Interrupted, not KeyboardInterrupt: Lightning would turn the latter into
    # exit code 1 and leave the trial RUNNING (see cmi_model.errors.Interrupted and objective.run_folds).
    on_main_thread = threading.current_thread() is threading.main_thread()
    clear_stop()
    previous = (
        {s: signal.signal(s, exits.on_stop_signal) for s in exits.STOP_SIGNALS} if on_main_thread else {}
    )
    thread_hook = threading.excepthook
    threading.excepthook = exits.quiet_stops(thread_hook, args.command)
    warnings_handler = exits.warning_lines(args.command)
    try:
        COMMANDS[args.command](args)
        sys.stdout.flush()  # here, not at exit: a reader gone away is then caught below
    except BaseException as e:  # noqa: BLE001 — each way a command fails is one line and an exit code
        code = exits.exit_code(e, args.command, lambda: _storage_named(args), say_stopped=not helper)
        if code is None:
            raise
        return code
    finally:
        for s, handler in previous.items():  # an in-process caller (tests, notebooks) gets its handlers back
            signal.signal(s, handler)
        threading.excepthook = thread_hook
        logging.getLogger("study").removeHandler(warnings_handler)
        logging.getLogger("study").propagate = True
    return 0


if __name__ == "__main__":
    sys.exit(main())
