"""Secrets come from the environment and reach no file of a run; loading a checkpoint never executes code."""
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
import torch

from blendrl.judges import JUDGES
from blendrl.training.cgpo.run import run_cgpo
from blendrl.training.checkpoint import UnsafeCheckpointError, find_checkpoint, load_trainer_state
from tests.tiny import tiny_cgpo_config

SECRET = "sk-test-5ecret-do-not-log-9b1c"


class FakeOpenAI(BaseHTTPRequestHandler):
    """An OpenAI-compatible chat endpoint on loopback that answers every judge prompt with top log-probs."""

    seen_auth: list = []

    def do_POST(self):  # noqa: N802 - http.server's name
        length = int(self.headers.get("Content-Length", 0))
        json.loads(self.rfile.read(length))
        FakeOpenAI.seen_auth.append(self.headers.get("Authorization"))
        body = json.dumps({"choices": [{"logprobs": {"content": [{"top_logprobs": [
            {"token": "Yes", "logprob": -0.2}, {"token": "No", "logprob": -1.8}]}]}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_server():
    server = HTTPServer(("127.0.0.1", 0), FakeOpenAI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    FakeOpenAI.seen_auth = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_an_api_key_reaches_the_server_and_no_file_of_the_run(tiny_dir, tmp_path, monkeypatch, fake_server):
    monkeypatch.setenv("BLENDRL_TEST_JUDGE_KEY", SECRET)
    out = tmp_path / "run"
    cfg = tiny_cgpo_config(tiny_dir, out, **{"train.iterations": 2, "logging.save_every": 1})
    cfg.tasks = [cfg.tasks[0]]
    from blendrl.config.cgpo_schema import JudgeConfig

    cfg.tasks[0].judges.append(JudgeConfig(kind="openai", name="remote", options={
        "base_url": fake_server, "api_key_env": "BLENDRL_TEST_JUDGE_KEY"}))
    run_cgpo(cfg)
    assert FakeOpenAI.seen_auth and set(FakeOpenAI.seen_auth) == {f"Bearer {SECRET}"}
    files = [p for p in out.rglob("*") if p.is_file()]
    assert any(p.name == "config.yaml" for p in files) and any(p.name == "samples.jsonl" for p in files)
    leaked = [str(p) for p in files if SECRET.encode() in p.read_bytes()]
    assert leaked == []


def test_a_literal_api_key_in_the_config_is_refused():
    with pytest.raises(ValueError, match="api_key_env"):
        JUDGES["openai"](api_key="sk-123")
    with pytest.raises(ValueError, match="NOT_SET_ANYWHERE.*not set"):
        JUDGES["openai"](api_key_env="NOT_SET_ANYWHERE")


class Exploit:
    """A pickle that runs code when loaded without ``weights_only``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pwned"))


def test_resume_refuses_a_checkpoint_that_would_run_code(tiny_dir, tmp_path):
    cfg = tiny_cgpo_config(tiny_dir, tmp_path / "run", **{"train.iterations": 1, "logging.save_every": 1})
    cfg.tasks = [cfg.tasks[0]]
    run_cgpo(cfg)
    ckpt = find_checkpoint(tmp_path / "run")
    state, _ = load_trainer_state(ckpt)  # blendrl's own checkpoint loads under weights_only=True
    marker = tmp_path / "marker.txt"
    state["extra"] = Exploit(marker)
    torch.save(state, ckpt / "trainer_state.pt")
    with pytest.raises(UnsafeCheckpointError, match="trainer_state.pt: refusing to load"):
        run_cgpo(cfg, resume=str(tmp_path / "run"))
    assert not marker.exists()
