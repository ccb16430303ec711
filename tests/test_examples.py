"""The multi-machine recipes in examples/ run as written: the Slurm array script's body for three
array tasks and the Kubernetes Indexed Job's container script for two indexes, as separate
processes against the test PostgreSQL server, with the URL only in a secret."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy
import yaml
from helpers.postgres import scratch_database
from helpers.workers import check_exact_totals, command_lines, load, states

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
N_TRIALS = 3


def _env(tmp_path: Path, **more: str) -> dict[str, str]:
    """The environment of a batch job on a node: the project's `cmi-study` on PATH, none of the
    test's own CMI_ variables (storage, cache), quiet progress bars."""
    env = {k: v for k, v in os.environ.items() if k not in ("CMI_STORAGE", "CMI_CACHE_DIR")}
    path = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return (
        env | {"PATH": path, "TQDM_DISABLE": "1", "PYTHONWARNINGS": "ignore", "TMPDIR": str(tmp_path)} | more
    )


def _run_all(commands: list[tuple[list[str], dict]], cwd: Path, password: str) -> list[str]:
    """Start every command at once; wait for all, watching their command lines and their children's."""
    procs = [
        subprocess.Popen(c, cwd=cwd, env=e, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for c, e in commands
    ]
    leaked = []
    while any(p.poll() is None for p in procs):
        leaked += [line for line in command_lines([p.pid for p in procs]) if password in line]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    for p, out in zip(procs, outputs, strict=True):
        assert p.returncode == 0, out.replace(password, "***")
        assert password not in out
    assert leaked == []
    return outputs


def _check_study(url: str, name: str, report: Path, outer_folds: int = 1) -> None:
    """Exact budgets in every (arm, outer fold) search and every confirmation pair done once."""
    parts = [name] if outer_folds == 1 else [f"{name}-outer{k}" for k in range(1, outer_folds + 1)]
    for part in parts:
        check_exact_totals(url, part, N_TRIALS)
        confirm = load(url, f"{part}-confirm")
        assert states(confirm)["COMPLETE"] == 2 * 2  # 2 arms × the tiny preset's 2 seeds, each once
        assert states(confirm)["RUNNING"] == states(confirm)["WAITING"] == 0
    assert report.is_file() and "<html" in report.read_text()[:2000].lower()


@pytest.mark.slow
@pytest.mark.parametrize("outer_folds", [1, 2])
def test_the_slurm_array_script_runs_three_tasks_on_one_study(postgres_url, tmp_path, outer_folds):
    password = sqlalchemy.engine.make_url(postgres_url).password
    with scratch_database(postgres_url) as url:
        secret = tmp_path / "storage-url"
        secret.write_text(url + "\n")
        secret.chmod(0o600)
        report = tmp_path / "out" / "slurm.html"
        common = {
            "STORAGE_FILE": str(secret),
            "STUDY": "slurm",
            "RUN_OPTIONS": f"--preset tiny --n-trials {N_TRIALS} --outer-folds {outer_folds}",
            "REPORT": str(report),
            "SLURM_ARRAY_JOB_ID": "4242",
        }
        script = str(EXAMPLES / "slurm_array.sh")
        jobs = [(["bash", script], _env(tmp_path, **common, SLURM_ARRAY_TASK_ID=str(i))) for i in range(3)]
        _run_all(jobs, tmp_path, password)
        _check_study(url, "slurm", report, outer_folds)
    # Each task prepared its folds in a cache of its own on the node's local disk.
    assert sorted(p.name for p in tmp_path.glob("cmi-cache-*")) == [f"cmi-cache-4242-{i}" for i in range(3)]


def _manifest() -> tuple[dict, dict]:
    docs = {d["kind"]: d for d in yaml.safe_load_all((EXAMPLES / "k8s_indexed_job.yaml").read_text())}
    return docs["Job"], docs["PersistentVolumeClaim"]


def test_the_kubernetes_job_takes_the_url_from_a_secret():
    job, claim = _manifest()
    assert job["spec"]["completionMode"] == "Indexed"
    container = job["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["CMI_STORAGE"]["valueFrom"]["secretKeyRef"] == {"name": "cmi-storage", "key": "url"}
    assert "postgresql://" not in " ".join(container["command"] + container["args"])
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    assert volumes["reports"]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]


@pytest.mark.slow
def test_the_kubernetes_job_script_runs_two_indexes_on_one_study(postgres_url, tmp_path):
    """The container's own script, with the manifest's environment (the Secret's URL, this
    test's preset) and its mount paths under tmp_path."""
    password = sqlalchemy.engine.make_url(postgres_url).password
    job, _ = _manifest()
    container = job["spec"]["template"]["spec"]["containers"][0]
    mounts = {m["mountPath"]: tmp_path / m["name"] for m in container["volumeMounts"]}
    script = container["args"][0]
    for mount, folder in mounts.items():
        folder.mkdir()
        script = script.replace(f"{mount}/", f"{folder}/")
    values = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    with scratch_database(postgres_url) as url:
        values |= {"CMI_STORAGE": url, "RUN_OPTIONS": f"--preset tiny --n-trials {N_TRIALS}", "STUDY": "k8s"}
        jobs = []
        for index in range(2):
            env = values | {
                "CMI_CACHE_DIR": str(tmp_path / f"cache-{index}"),
                "JOB_COMPLETION_INDEX": str(index),
            }
            jobs.append((container["command"] + [script], _env(tmp_path, **env)))
        _run_all(jobs, tmp_path, password)
        _check_study(url, "k8s", tmp_path / "reports" / "k8s.html")
        assert any((tmp_path / "reports" / "k8s-artifacts").iterdir())  # the report, for optuna-dashboard
