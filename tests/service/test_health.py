"""The daemon's health report over real HTTP: a face model file that disappears while it runs is reported."""
from __future__ import annotations

import pytest

from edge.biometrics.config import FaceConfig
from edge.errors import ModelError
from edge.models import manifest_entry
from edge.service.server import DaemonThread
from tests.service.conftest import client, make_config

pytestmark = pytest.mark.timeout(240)


FACE_MODELS = FaceConfig().model_artifacts  # the shipped configuration's, with the embedder build `auto` picks here


@pytest.mark.parametrize("missing", FACE_MODELS)
def test_a_face_model_gone_while_the_daemon_runs_is_reported(tmp_path, config, missing):
    """The defect: health looked at the embedder and the short-range detector only, so a terminal whose full-range
    detector or landmark model had been removed (or replaced: the hash is checked) reported its models ok."""
    source = config.paths.models_dir
    models = tmp_path / "models"
    for name in FACE_MODELS:
        file = manifest_entry(name).file
        if not (source / file).is_file():
            pytest.skip(f"{source / file} not built (run `make models`)")
        (models / file).parent.mkdir(parents=True, exist_ok=True)
        (models / file).symlink_to(source / file)
    with DaemonThread(make_config(tmp_path, {"paths": {"models_dir": str(models)}})) as d:
        assert client(d.url, "auditor").get("/healthz").json()["models"] == {"status": "ok"}
        (models / manifest_entry(missing).file).unlink()
        health = client(d.url, "auditor").get("/healthz").json()
    assert health["models"] == {"status": "error", "code": "model.missing"}


def test_a_daemon_without_a_face_model_does_not_start(tmp_path, config):
    models = tmp_path / "models"
    models.mkdir()
    with pytest.raises(ModelError) as err:
        with DaemonThread(make_config(tmp_path, {"paths": {"models_dir": str(models)}})):
            pass
    assert err.value.code == "model.missing"
