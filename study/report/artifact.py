"""The HTML report as an Optuna artifact of the confirmation study ``NAME-confirm``, so that
``optuna-dashboard STORAGE --artifact-dir FOLDER`` serves the report beside the studies.

The artifact folder is an Optuna ``FileSystemArtifactStore``: one file per artifact, named by its
id. A study keeps one report artifact: the first ``report`` uploads it
(``optuna.artifacts.upload_artifact``) and remembers its id on the study; every later ``report``
replaces that artifact's bytes under the same id (written beside and renamed over), so re-running
never piles up copies and the dashboard's link stays valid. Nothing is deleted, in the folder or
the storage.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import optuna
from optuna.artifacts import FileSystemArtifactStore, upload_artifact

from cmi_model.atomic import write_atomically
from cmi_model.errors import InputError
from study import records

# The study system attribute holding the id of the report artifact this tool uploaded (a
# dashboard user may upload artifacts of their own to the same study: those are never touched).
REPORT_ARTIFACT_ATTR = "cmi-study:report_artifact"
# optuna.artifacts' key of a study artifact's metadata (optuna/artifacts/_upload.py).
_META_PREFIX = "artifacts:"
_ID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
# What an artifact folder holds: artifacts (named by their uuid) and, after a kill, a partial write of ours.
_ARTIFACT_FILE = re.compile(rf"{_ID}|\.{_ID}(\.[0-9a-f]{{8}})?\.partial")  # cmi_model.atomic's names


@dataclass(frozen=True)
class SavedArtifact:
    study_name: str  # the confirmation study it belongs to
    artifact_id: str
    path: Path  # the artifact's file in the folder
    replaced: bool  # an earlier report's artifact was replaced (False: uploaded now)


class ReplacingStore(FileSystemArtifactStore):
    """A FileSystemArtifactStore (what ``optuna-dashboard --artifact-dir`` reads) whose writes are
    atomic: the dashboard, reading while a report replaces its artifact, sees the old file or the
    new one, and a full disk or a kill leaves the old one, never half a new one."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder)
        self.folder = folder

    def write(self, artifact_id: str, content_body: BinaryIO) -> None:
        if not re.fullmatch(_ID, artifact_id):  # ids are upload_artifact's uuids: never a path
            raise ValueError(f"not an artifact id: {artifact_id!r}")

        def copy(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                shutil.copyfileobj(content_body, f)

        write_atomically(self.folder / artifact_id, copy)


def check_folder(folder: Path) -> None:
    """Refuse, before anything is written, a folder that is no artifact folder: a file, or a folder
    holding anything but artifacts (the tool writes only where an artifact store lives)."""
    if folder.exists() and not folder.is_dir():
        raise InputError(f"--artifact-dir {folder}: is not a folder")
    if folder.is_dir():
        foreign = sorted(
            p.name for p in folder.iterdir() if not (_ARTIFACT_FILE.fullmatch(p.name) and p.is_file())
        )
        if foreign:
            shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
            raise InputError(
                f"--artifact-dir {folder}: holds {len(foreign)} entries that are not Optuna artifacts "
                f"({shown}); give a new or empty folder, or the one optuna-dashboard --artifact-dir serves"
            )


def _listed(system_attrs: dict) -> set[str]:
    """The ids of the study's artifacts that the dashboard lists. Read here rather than through
    optuna.artifacts.get_all_artifact_meta, which fails on the null metadata that deleting an
    artifact in optuna-dashboard leaves behind."""
    ids = set()
    for key, value in system_attrs.items():
        meta = json.loads(value) if key.startswith(_META_PREFIX) and isinstance(value, str) else None
        if isinstance(meta, dict) and isinstance(meta.get("artifact_id"), str):
            ids.add(meta["artifact_id"])
    return ids


def save_report_artifact(
    storage: optuna.storages.BaseStorage, study_name: str, html: Path, folder: Path
) -> SavedArtifact | None:
    """Store the report file ``html`` as the artifact of ``study_name``'s confirmation study in
    ``folder``, replacing the one an earlier report stored (of a nested run: the first outer fold's
    confirmation study); None if there is no confirmation study."""
    existing = set(optuna.get_all_study_names(storage))
    base = records.base_name(study_name, existing)
    parts = [base, *(records.outer_name(base, k) for k in records.outer_folds_in(base, existing))]
    confirm_name = next(
        (n for n in (records.study_name(p, records.CONFIRM) for p in parts) if n in existing), None
    )
    if confirm_name is None:
        return None
    check_folder(folder)
    folder.mkdir(parents=True, exist_ok=True)
    store = ReplacingStore(folder)
    study_id = storage.get_study_id_from_name(confirm_name)
    attrs = storage.get_study_system_attrs(study_id)
    mine = attrs.get(REPORT_ARTIFACT_ATTR)
    if isinstance(mine, str) and mine in _listed(attrs):
        with open(html, "rb") as f:
            store.write(mine, f)
        return SavedArtifact(confirm_name, mine, folder / mine, replaced=True)
    study = optuna.load_study(study_name=confirm_name, storage=storage)
    artifact_id = upload_artifact(
        artifact_store=store, file_path=str(html), study_or_trial=study, mimetype="text/html"
    )
    storage.set_study_system_attr(study_id, REPORT_ARTIFACT_ATTR, artifact_id)
    return SavedArtifact(confirm_name, artifact_id, folder / artifact_id, replaced=False)
