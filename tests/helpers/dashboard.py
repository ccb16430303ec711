"""optuna-dashboard as its users see it: its own WSGI app, called in-process (no server, no port)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from wsgiref.util import setup_testing_defaults


class Dashboard:
    """optuna_dashboard.wsgi on a storage and an artifact folder, as `optuna-dashboard STORAGE
    --artifact-dir FOLDER` serves them; get() answers what the browser's requests get."""

    def __init__(self, storage, artifact_dir: Path | None = None):
        import optuna_dashboard
        from optuna.artifacts import FileSystemArtifactStore

        store = FileSystemArtifactStore(artifact_dir) if artifact_dir is not None else None
        self.app = optuna_dashboard.wsgi(storage, artifact_store=store)

    def get(self, path: str) -> tuple[int, dict[str, str], bytes]:
        environ: dict = {"PATH_INFO": path, "REQUEST_METHOD": "GET", "wsgi.input": io.BytesIO()}
        setup_testing_defaults(environ)
        answer: dict = {}

        def start_response(status: str, headers: list, exc_info=None):
            answer["status"], answer["headers"] = int(status.split()[0]), dict(headers)

        body = b"".join(self.app(environ, start_response))
        return answer["status"], answer["headers"], body

    def json(self, path: str) -> dict:
        status, _, body = self.get(path)
        assert status == 200, (path, status, body[:300])
        return json.loads(body)

    def study(self, name: str) -> dict:
        """The study's detail, as its page loads it: trials with their notes, artifacts, metric names."""
        summaries = self.json("/api/studies")["study_summaries"]
        ids = {s["study_name"]: s["study_id"] for s in summaries}
        assert name in ids, sorted(ids)
        return self.json(f"/api/studies/{ids[name]}") | {"study_id": ids[name]}

    def notes(self, name: str) -> dict[int, str]:
        """Each trial's note as the dashboard shows it, by trial number."""
        return {t["number"]: t["note"]["body"] for t in self.study(name)["trials"]}
