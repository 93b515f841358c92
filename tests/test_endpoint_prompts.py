"""Prompts of exact token counts calibrated on a real server (``transformers serve``, tests/serving.py, whose
tokenizer counts every word one token and adds nothing): the server's own ``usage`` says each prompt is as long as
asked; calibration takes a bounded number of probes; a server that reports no usage is a one-line error."""

from __future__ import annotations

import random

import pytest

from profiler.errors import UserError
from profiler.measure.endpoint.address import parse_endpoint
from profiler.measure.endpoint.client import EndpointClient
from profiler.measure.endpoint.prompts import CANDIDATE_LISTS, PromptShape, calibrate
from tests.fault_proxy import proxied
from tests.serving import SERVED_MAX_POSITIONS, served_model


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with served_model(tmp_path_factory.mktemp("served")) as running:
        yield running


@pytest.fixture(scope="module")
def proxy(served):
    with proxied(served.url.removesuffix("/v1")) as running:
        yield running


@pytest.fixture(scope="module")
def client(served):
    with EndpointClient(parse_endpoint(served.url, served.model, None)) as running:
        yield running


@pytest.mark.slow
def test_prompts_have_the_token_counts_asked_by_the_servers_count(client):
    shape = calibrate(client)
    assert shape == PromptShape(words=CANDIDATE_LISTS[0], overhead_tokens=0)  # every word one token, nothing added
    rng = random.Random(3)
    for n_tokens in (1, 2, 17, 100, SERVED_MAX_POSITIONS - 8):
        prompt = shape.prompt(n_tokens, rng)
        assert len(prompt.split()) == n_tokens
        assert client.complete(prompt, 1).prompt_tokens == n_tokens


@pytest.mark.slow
def test_calibration_takes_a_bounded_number_of_probes(proxy, served):
    """Through the proxy, which counts requests: two for the forcing probe, then one a word of the first list,
    the list twice over and one random check."""
    proxy.plan([])
    with EndpointClient(parse_endpoint(f"{proxy.url}/v1", served.model, None)) as client:
        calibrate(client)
    assert proxy.seen()["requests"] == 2 + len(CANDIDATE_LISTS[0]) + 2


@pytest.mark.slow
def test_a_server_that_reports_no_usage_is_one_line_error(proxy, served):
    with EndpointClient(parse_endpoint(f"{proxy.url}/v1", served.model, None)) as client:
        assert client.forcing == "generation_config"
        proxy.plan(["nousage"])
        with pytest.raises(UserError, match="no usage") as raised:
            calibrate(client)
    assert "\n" not in str(raised.value)


def test_prompts_start_with_random_words():
    shape = PromptShape(words=("a", "b", "c", "d"), overhead_tokens=1)
    rng = random.Random(0)
    prompts = [shape.prompt(9, rng) for _ in range(40)]
    assert all(len(prompt.split()) == 8 for prompt in prompts)
    assert {prompt.split()[0] for prompt in prompts} == set(shape.words)
    assert len(set(prompts)) == len(prompts)


def test_a_prompt_shorter_than_the_overhead_is_user_error():
    with pytest.raises(UserError, match="least is 3"):
        PromptShape(words=("a",), overhead_tokens=2).prompt(2, random.Random(0))
