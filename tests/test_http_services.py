"""A reward source and a judge that call an HTTP service the user runs (``kind: http``), against a loopback server
the test starts: batches in parallel with the scores kept in order, retries on a 5xx, a timeout, the API key read
from the environment and never written out, malformed verdicts as violations, and both inside a training loop."""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from blendrl.core.types import Sample

KEY_ENV = "BLENDRL_TEST_SERVICE_KEY"


class Service:
    """``/score``: {"scores": words per response} (null for a response with NOSCORE); ``/judge``: {"verdicts":
    passed when the response has no 'no'}, a bare true for a response with MALFORMED. The first ``fail_first``
    requests get ``status``; every request waits ``delay_s``; the bearer token must be ``key`` when it is set."""

    def __init__(self, fail_first: int = 0, status: int = 503, delay_s: float = 0.05, key: str | None = None):
        self.fail_first, self.status, self.delay_s, self.key = fail_first, status, delay_s, key
        self.calls, self.active, self.most, self.bodies = 0, 0, 0, []
        self.lock = threading.Lock()
        svc = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with svc.lock:
                    svc.calls += 1
                    svc.bodies.append(body)
                    failing = svc.calls <= svc.fail_first
                    svc.active += 1
                    svc.most = max(svc.most, svc.active)
                time.sleep(svc.delay_s)
                with svc.lock:
                    svc.active -= 1
                if svc.key is not None and self.headers.get("Authorization") != f"Bearer {svc.key}":
                    return self._send(401, {"error": "bad key"})
                if failing:
                    return self._send(svc.status, {"error": "busy"})
                responses = [s["response"] for s in body["samples"]]
                if self.path == "/score":
                    return self._send(200, {"scores": [None if "NOSCORE" in r else len(r.split())
                                                       for r in responses]})
                return self._send(200, {"verdicts": [True if "MALFORMED" in r else
                                                     {"passed": "no" not in r.split(), "reason": "said no"}
                                                     for r in responses]})

            def _send(self, status, obj):
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.server.shutdown()


def _samples(texts):
    return [Sample([{"role": "user", "content": f"q{i}"}], t, {"answer": str(i)}) for i, t in enumerate(texts)]


def test_batches_go_out_in_parallel_and_the_scores_keep_their_order():
    from blendrl.rewards.http import HTTPReward

    texts = [" ".join(["w"] * (i + 1)) for i in range(10)]
    with Service(delay_s=0.3) as svc:  # long enough that the parallel requests overlap even on a loaded machine
        scores = HTTPReward(svc.url + "/score", batch_size=2, concurrency=3).score(_samples(texts))
        assert scores.total.tolist() == [float(i + 1) for i in range(10)]
        assert svc.calls == 5 and 2 <= svc.most <= 3
        # the request carries blendrl's samples and OpenRLHF's query/prompts/labels; the parallel requests may
        # arrive in any order, so the first batch is found by its prompt
        first = next(b for b in svc.bodies if b["samples"][0]["messages"][0]["content"] == "q0")
        assert first["samples"][0]["messages"] == [{"role": "user", "content": "q0"}]
        assert sorted(b["samples"][0]["messages"][0]["content"] for b in svc.bodies) == ["q0", "q2", "q4", "q6", "q8"]
        assert first["query"] == ["q0w", "q1w w"] and first["labels"] == ["0", "1"]


def test_a_5xx_is_retried_a_4xx_fails_at_once_a_slow_service_times_out_and_null_is_unscored():
    from blendrl.rewards.base import RewardError
    from blendrl.rewards.http import HTTPReward

    with Service(fail_first=2, status=503) as svc:
        assert HTTPReward(svc.url + "/score", retries=2).score(_samples(["a b"])).total.tolist() == [2.0]
        assert svc.calls == 3
    with Service(fail_first=9, status=400) as svc:
        with pytest.raises(RewardError, match=r"answered HTTP 400"):
            HTTPReward(svc.url + "/score", retries=3).score(_samples(["a"]))
        assert svc.calls == 1
    with Service(delay_s=1.0) as svc:
        with pytest.raises(RewardError, match=r"failed 2 time\(s\), last: .*timed out"):
            HTTPReward(svc.url + "/score", retries=1, timeout_s=0.2).score(_samples(["a"]))
    with Service() as svc:
        total = HTTPReward(svc.url + "/score").score(_samples(["a b", "NOSCORE here"])).total
        assert total[0] == 2.0 and total[1].isnan()
        with pytest.raises(RewardError, match=r"expected an object with 'rewards'"):
            HTTPReward(svc.url + "/score", score_key="rewards").score(_samples(["a"]))


def test_the_api_key_comes_from_the_environment_and_never_from_the_config(monkeypatch, tmp_path, tiny_dir):
    from blendrl.config import ConfigError
    from blendrl.rewards.base import RewardError
    from blendrl.rewards.http import HTTPReward
    from blendrl.training.names import check_names
    from tests.tiny import tiny_config

    monkeypatch.setenv(KEY_ENV, "s3cret-token")
    with Service(key="s3cret-token") as svc:
        reward = HTTPReward(svc.url + "/score", api_key_env=KEY_ENV)
        assert reward.score(_samples(["a b c"])).total.tolist() == [3.0]
        assert "s3cret" not in repr(vars(reward)) + repr(vars(reward.service)) + repr(vars(reward.service.client))
        with pytest.raises(RewardError, match="HTTP 401"):
            HTTPReward(svc.url + "/score").score(_samples(["a"]))
    with pytest.raises(ConfigError, match=r"rewards\[0\]\.options\.api_key: put the API key in an environment"):
        check_names(tiny_config(tiny_dir, tmp_path, **{"rewards": "[{kind: http, options: {url: 'http://x', "
                                                                   "api_key: abc}}]"}))
    with pytest.raises(ConfigError, match=r"rewards\[0\]\.options\.batchsize: .* has no such option"):
        check_names(tiny_config(tiny_dir, tmp_path, **{"rewards": "[{kind: http, options: {url: 'http://x', "
                                                                   "batchsize: 4}}]"}))
    with pytest.raises(ConfigError, match=r"rewards\[0\]\.options\.url: .*needs the service's http"):
        check_names(tiny_config(tiny_dir, tmp_path, **{"rewards": "[{kind: http}]"}))
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(ValueError, match=f"api_key_env names {KEY_ENV}, which is not set"):
        HTTPReward("http://127.0.0.1:9/score", api_key_env=KEY_ENV)


def test_the_judge_fails_closed_on_a_malformed_verdict():
    from blendrl.judges import JUDGES, MixtureOfJudges

    with Service() as svc:
        judge = JUDGES["http"](name="svc", url=svc.url + "/judge", batch_size=2)
        got = MixtureOfJudges([judge]).evaluate(_samples(["yes fine", "no way", "MALFORMED but harmless"]))
        assert got.passed.tolist() == [True, False, False]
        assert "malformed verdict" in got.reasons[2][0] and got.stats["svc/malformed"] == 1.0


def test_an_http_reward_and_an_http_judge_run_inside_a_training_loop(tiny_dir, tmp_path):
    """PPO-Lagrangian whose reward and cost both come from the service: the reward is the word count, the cost
    whether the judge failed the response."""
    from blendrl.training.run import run
    from tests.tiny import tiny_config

    with Service(delay_s=0.0) as svc:
        res = run(tiny_config(tiny_dir, tmp_path, **{
            "algorithm.name": "ppo-lagrangian", "train.iterations": 2, "data.eval_prompts": "null",
            "rewards": f"[{{kind: http, name: words, options: {{url: '{svc.url}/score', concurrency: 2}}}}]",
            "costs": f"[{{kind: judge_violations, options: {{judges: [{{kind: http, name: svc, "
                     f"options: {{url: '{svc.url}/judge'}}}}]}}}}]"}))
        assert res["trainer"].iteration == 2
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    m = [x for x in lines if "reward/mean" in x][-1]
    assert m["reward/mean"] > 0 and "cost/judge_violations/svc" in m
