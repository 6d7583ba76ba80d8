"""The ``openai`` judge against a local OpenAI-compatible stub: concurrent requests, retries on 5xx and timeouts,
verdicts in the samples' order, a 4xx raised at once."""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from blendrl.core.types import Sample
from blendrl.judges import JUDGES


class Stub:
    def __init__(self, fail_first: int = 0, status: int = 503, delay_s: float = 0.05):
        self.fail_first, self.status, self.delay_s = fail_first, status, delay_s
        self.calls, self.active, self.most = 0, 0, 0
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with stub.lock:
                    stub.calls += 1
                    failing = stub.calls <= stub.fail_first
                    stub.active += 1
                    stub.most = max(stub.most, stub.active)
                time.sleep(stub.delay_s)
                with stub.lock:
                    stub.active -= 1
                if failing:
                    self.send_response(stub.status)
                    self.end_headers()
                    return
                text = body["messages"][0]["content"]
                yes = -0.1 if "GOOD" in text else -3.0
                top = [{"token": "Yes", "logprob": yes}, {"token": "No", "logprob": -1.0}]
                out = {"choices": [{"logprobs": {"content": [{"top_logprobs": top}]}}]}
                data = json.dumps(out).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


def _samples(n):
    return [Sample([{"role": "user", "content": f"q{i}"}], "GOOD answer" if i % 2 == 0 else "bad answer")
            for i in range(n)]


def test_requests_run_concurrently_and_verdicts_keep_their_order():
    stub = Stub()
    judge = JUDGES["openai"](name="j", base_url=stub.url, concurrency=4, defense="none")
    verdicts = judge.judge(_samples(8))
    assert [v.passed for v in verdicts] == [True, False] * 4
    assert stub.most >= 2 and stub.most <= 4  # several in flight, never more than asked
    stub.server.shutdown()


def test_a_5xx_is_retried_and_a_4xx_raises():
    stub = Stub(fail_first=2, status=503)
    judge = JUDGES["openai"](name="j", base_url=stub.url, concurrency=1, retries=2, defense="none")
    assert [v.passed for v in judge.judge(_samples(1))] == [True] and stub.calls == 3
    stub.server.shutdown()
    bad = Stub(fail_first=5, status=400)
    judge = JUDGES["openai"](name="j", base_url=bad.url, concurrency=1, retries=3)
    with pytest.raises(Exception, match="400"):
        judge.judge(_samples(1))
    assert bad.calls == 1
    bad.server.shutdown()


def test_a_slow_server_times_out_after_the_retries():
    stub = Stub(delay_s=1.0)
    judge = JUDGES["openai"](name="j", base_url=stub.url, concurrency=1, retries=1, timeout_s=0.2)
    with pytest.raises(Exception, match="timed out"):
        judge.judge(_samples(1))
    assert stub.calls == 2
    stub.server.shutdown()


def test_the_counterfactual_defense_removes_a_lift_that_ignores_the_request():
    """The stub says Yes to any text with GOOD in it, whatever the request: exactly the lift the default defense
    measures in its probe requests and takes off, so nothing passes; one request per sample, plus one per sentence
    and probe, plus the probes' controls once."""
    from blendrl.judges.counterfactual import PROBES

    stub = Stub(delay_s=0.0)
    judge = JUDGES["openai"](name="j", base_url=stub.url, concurrency=4)
    assert judge.defense == "counterfactual"
    assert not any(v.passed for v in judge.judge(_samples(4)))
    assert stub.calls == 4 + 4 * len(PROBES) + len(PROBES)
    stub.server.shutdown()
