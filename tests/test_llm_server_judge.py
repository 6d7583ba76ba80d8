"""The OpenAI-compatible LLM judge against a real local server: llama.cpp's server (llama-cpp-python) on the
embedded SmolLM2 GGUF, started by the test. Opt-in (slow): ``bash scripts/install_llama_server.sh`` builds
llama-cpp-python (~6 min on 2 cores), then
``BLENDRL_SLOW=1 .venv/bin/python -m pytest tests/test_llm_server_judge.py``.
"""
import importlib.util
import math
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from blendrl.judges.llm import OpenAIJudge, render
from blendrl.rewards import Sample

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python is not installed (bash scripts/install_llama_server.sh)")
    from blendrl.models.loading import _embedded_gguf

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path_factory.mktemp("llama_server") / "server.log"  # a file: a full stderr pipe would block it
    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(_embedded_gguf(
        "smollm2-135m-instruct")), "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "1024",
        "--model_alias", "smollm2", "--logits_all", "true"], stdout=subprocess.DEVNULL, stderr=log.open("wb"))
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(url + "/v1/models", timeout=2)
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail("llama.cpp server exited: " + log.read_text(errors="replace")[-2000:])
                time.sleep(0.5)
        else:
            pytest.fail("llama.cpp server did not answer within 120 s: " + log.read_text(errors="replace")[-2000:])
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.parametrize("api", ["completions", "chat"])
def test_openai_judge_reads_logprobs_from_a_real_server(server, api):
    judge = OpenAIJudge("srv", base_url=server, model="smollm2", api=api, defense="none",
                        template="Question: {prompt}\nProposed answer: {response}\nIs the proposed answer correct? "
                                 "Answer Yes or No.\nAnswer:")
    samples = [Sample([{"role": "user", "content": "What is 2 + 2?"}], r, {}) for r in ["4", "The capital of France"]]
    verdicts = judge.judge(samples)
    for sample, v in zip(samples, verdicts):
        top = judge.top_logprobs(render(judge.template, sample, judge.defense))  # the prompt the judge sent
        lp_yes, lp_no = judge._lp(top, "Yes"), judge._lp(top, "No")
        assert max(lp_yes, lp_no) > -math.inf, f"neither Yes nor No in the server's top-20: {sorted(top)}"
        assert v.passed == (lp_yes >= lp_no)
