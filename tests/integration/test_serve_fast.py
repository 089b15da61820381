"""The studio's fast path through its HTTP API (FastAPI's test client, the real VGG19
to relu3_1, a tiny untrained decoder file from tests/fastkit.py, 32-40 px): a fast-only
job, a fast-then-refine job (the fast result as a frame event before the first step,
the optimization starting from it), and the page's reason when there is no decoder."""

from __future__ import annotations

import base64
import io
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

with warnings.catch_warnings():  # starlette's note on httpx's successor (a UserWarning)
    warnings.filterwarnings("ignore", message=".*httpx")
    from fastapi.testclient import TestClient  # noqa: E402

import nst.serve.jobs as serve_jobs  # noqa: E402
from fastkit import tiny_decoder  # noqa: E402
from nst.serve.app import create_app  # noqa: E402

from .test_serve_api import EventReader, of, post_job, wait_for  # noqa: E402

# JPEG at quality 85 of a small picture: a few 8-bit levels on average, never a different picture.
JPEG_MEAN_LEVELS = 6 / 255


@pytest.fixture
def decoder(tmp_path: Path) -> Path:
    return tiny_decoder(tmp_path / "decoder.safetensors", width=4)


@pytest.fixture
def client(tmp_path: Path, decoder: Path) -> Iterator[TestClient]:
    with TestClient(create_app(tmp_path / "library", device="cpu", decoder=decoder)) as test_client:
        yield test_client


def _image(client: TestClient, run_id: str) -> Image.Image:
    response = client.get(f"/api/runs/{run_id}/image")
    assert response.status_code == 200
    return Image.open(io.BytesIO(response.content)).convert("RGB")


def _array(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float32) / 255


def test_info_offers_fast_with_a_decoder(client: TestClient) -> None:
    fast = client.get("/api/info").json()["fast"]
    assert fast["available"] is True and fast["reason"] is None
    assert "steps" in fast["refused"] and "size" not in fast["refused"]


def test_a_fast_only_job_finishes_with_the_fast_image_and_its_record(client: TestClient) -> None:
    run = post_job(client, {"method": "fast", "strength": 0.5, "size": 40})
    done = wait_for(client, run["id"], ("finished", "failed"))
    assert done["status"] == "finished", done["error"]
    record = done["record"]
    assert record["config"]["method"] == "fast" and record["config"]["strength"] == 0.5
    assert record["steps"] == 0
    # tubingen is 4:3 landscape: 40 px on the longest side, the content's aspect.
    assert _image(client, run["id"]).size == (40, 30)


def test_fast_then_refine_shows_the_fast_result_before_the_first_step(client: TestClient) -> None:
    fast_only = post_job(client, {"method": "fast", "size": 32})
    assert wait_for(client, fast_only["id"], ("finished", "failed"))["status"] == "finished"
    reader = EventReader(client, lambda events: any(
        k == "job" and d.get("status") in ("finished", "failed") and d["id"] != fast_only["id"]
        for k, d in events)).started()
    # Adam with a learning rate far under a level: the refined picture stays where it started.
    run = post_job(client, {"init": "fast", "size": 32, "steps": 3, "seed": 1, "optimizer": "adam",
                            "learning_rate": 1e-6})
    events = [(k, d) for k, d in reader.join(60) if d.get("id") == run["id"]]
    kinds = [k for k, _ in events if k in ("frame", "step")]
    assert kinds[0] == "frame" and "step" in kinds, kinds
    (preview,) = of(events, "frame")
    assert preview["source"] == "fast"
    data = preview["image"]
    assert data.startswith("data:image/jpeg;base64,")
    shown = Image.open(io.BytesIO(base64.b64decode(data.split(",", 1)[1]))).convert("RGB")
    # The preview is the fast result: the fast-only run's picture, to JPEG's rounding.
    expected = _image(client, fast_only["id"])
    assert shown.size == expected.size == (32, 24)
    assert np.abs(_array(shown) - _array(expected)).mean() < JPEG_MEAN_LEVELS
    done = wait_for(client, run["id"], ("finished", "failed"))
    assert done["status"] == "finished", done["error"]
    config = done["record"]["config"]
    assert config["method"] == "gatys" and config["init"] == "fast" and done["record"]["steps"] == 3
    # The optimization started from the fast result (a content start would end at the photo).
    refined = _array(_image(client, run["id"]))
    assert np.abs(refined - _array(expected)).mean() < 1 / 255


def test_without_a_decoder_fast_is_unavailable_and_refused_in_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # As if the shipped decoder were missing (a broken install): the page says why fast is off.
    monkeypatch.setattr(serve_jobs, "shipped_decoder_path", lambda: tmp_path / "missing.safetensors")
    with TestClient(create_app(tmp_path / "library", device="cpu")) as client:
        fast = client.get("/api/info").json()["fast"]
        assert fast["available"] is False and "--decoder" in fast["reason"] and "\n" not in fast["reason"]
        for options in ({"method": "fast"}, {"init": "fast"}):
            response = client.post("/api/jobs", json={"task": "transfer", "content": "sample:tubingen",
                                                      "styles": ["sample:starry_night"], "options": options})
            assert response.status_code == 400
            message = response.json()["error"]
            assert "not available" in message and "--decoder" in message and "\n" not in message
        assert client.get("/api/runs").json() == []


def test_a_page_cannot_name_a_decoder_file(client: TestClient, decoder: Path) -> None:
    response = client.post("/api/jobs", json={"task": "transfer", "content": "sample:tubingen",
                                              "styles": ["sample:starry_night"],
                                              "options": {"method": "fast", "decoder": str(decoder)}})
    assert response.status_code == 400 and "nst serve --decoder" in response.json()["error"]


def test_a_missing_decoder_file_is_one_line_before_the_library_is_made(tmp_path: Path) -> None:
    from nst.errors import NstError  # noqa: PLC0415

    with pytest.raises(NstError, match="decoder file not found"):
        create_app(tmp_path / "library", device="cpu", decoder=tmp_path / "missing.safetensors")
    assert not (tmp_path / "library").exists()
