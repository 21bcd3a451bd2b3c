"""Unit tests of the client over httpx.MockTransport: every documented answer, in each of its forms."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from trendio_cli.api.answers import Outcome, classify_response, parse_retry_after
from trendio_cli.api.client import ApiClient
from trendio_cli.api.credentials import (
    Credentials,
    check_base_url,
    credentials_for,
)
from trendio_cli.api.endpoints import CREATE_COLLABORATION_LEGACY
from trendio_cli.api.signing import sign
from trendio_cli.errors import ConfigError

CREDS = Credentials("key-1", "secret-xyz-123", "token-abc-456", "cipher-1")


def run(coro):
    return asyncio.run(coro)


def answer_for(handler, mutating=True):
    async def go():
        async with ApiClient("https://api.example", CREDS, transport=httpx.MockTransport(handler)) as client:
            prepared = client.prepare_create(
                name="c", message="m", end_time=2_000_000_000, products=[("1", 1500)],
                creator_ids=["11", "12"], contact_email="x@y.example", free_sample=False,
            ) if mutating else client.prepare_check_conflicts(["11"], ["1"])
            return await client.send(prepared)

    return run(go())


def env(code, message="", data=None):
    return {"code": code, "message": message, "request_id": "r1", "data": data or {}}


def test_requests_are_signed_with_a_fresh_timestamp_and_the_token_header():
    seen = []

    def handler(request: httpx.Request):
        seen.append(request)
        return httpx.Response(200, json=env(0, data={"target_collaboration": {"id": "99"}}))

    clock = iter([1_700_000_000, 1_700_000_007])

    async def go():
        async with ApiClient("https://api.example", CREDS, transport=httpx.MockTransport(handler),
                             clock=lambda: next(clock)) as client:
            prepared = client.prepare_check_conflicts(["11"], ["1"])
            await client.send(prepared)
            await client.send(prepared)

    run(go())
    assert len(seen) == 2
    for req, ts in zip(seen, ("1700000000", "1700000007")):
        q = dict(req.url.params)
        assert q["timestamp"] == ts and q["app_key"] == "key-1" and q["shop_cipher"] == "cipher-1"
        unsigned = {k: v for k, v in q.items() if k != "sign"}
        assert q["sign"] == sign("secret-xyz-123", req.url.path, unsigned, req.content)
        assert req.headers["x-tts-access-token"] == "token-abc-456"
        assert req.headers["content-type"] == "application/json"
    assert dict(seen[0].url.params)["sign"] != dict(seen[1].url.params)["sign"]


def test_create_body_carries_every_field_the_reference_requires():
    client = ApiClient("https://api.example", CREDS)
    prepared = client.prepare_create(
        name="n", message="hello", end_time=1_800_000_000, products=[("1729384756", 1500)],
        creator_ids=["uACafQAAAABmUU2qon4R0vUYvUVS3QC6CICP2m5A2-wd77j8R9G0yg", "b_2"], contact_email="x@y.example",
        free_sample=True,
    )
    assert prepared.path == "/affiliate_seller/202508/target_collaborations" and prepared.mutating
    body = json.loads(prepared.body)
    assert body == {
        "name": "n", "message": "hello", "end_time": "1800000000",
        "products": [{"id": "1729384756", "target_commission_rate": 1500}],
        "creator_user_open_ids": ["uACafQAAAABmUU2qon4R0vUYvUVS3QC6CICP2m5A2-wd77j8R9G0yg", "b_2"],
        "seller_contact_info": {"email": "x@y.example"},
        "free_sample_rule": {"has_free_sample": True, "is_sample_approval_exempt": False},
    }
    legacy = ApiClient("https://api.example", CREDS, create_endpoint=CREATE_COLLABORATION_LEGACY).prepare_create(
        name="n", message="", end_time=1, products=[("1", 1000)], creator_ids=["6900000000000000042"],
        contact_email="x@y.example", free_sample=False, sample_approval_exempt=True,
    )
    legacy_body = json.loads(legacy.body)
    assert legacy.path == "/affiliate_seller/202405/target_collaborations"
    assert legacy_body["creator_user_ids"] == ["6900000000000000042"] and "creator_user_open_ids" not in legacy_body
    assert "message" not in legacy_body  # optional: left out rather than sent empty
    assert legacy_body["free_sample_rule"] == {"has_free_sample": False, "is_sample_approval_exempt": True}
    with pytest.raises(ValueError):
        client.prepare_create(name="n", message="m", end_time=1, products=[("1", 1000)],
                              creator_ids=[str(i) for i in range(51)], contact_email="x@y.example",
                              free_sample=False)
    with pytest.raises(ValueError, match="contact email"):
        client.prepare_create(name="n", message="m", end_time=1, products=[("1", 1000)], creator_ids=["a"],
                              contact_email="", free_sample=False)


def test_searches_and_reads_follow_the_reference():
    client = ApiClient("https://api.example", CREDS)
    by_name = client.prepare_search_collaborations(status="VALID", name="spring-abc.1", page_size=20,
                                                   page_token="b2Zm+c2V0/PTAK==")
    assert by_name.path == "/affiliate_seller/202508/target_collaborations/search"
    assert json.loads(by_name.body) == {"collaboration_status": "VALID", "search_param": {
        "keyword_type": "TARGET_COLLABORATION_NAME", "keyword": "spring-abc.1"}}
    assert by_name.query == {"page_size": "20", "page_token": "b2Zm+c2V0/PTAK=="}
    with pytest.raises(ValueError):
        client.prepare_search_collaborations(status="ACTIVE")
    assert client.prepare_get_collaboration("7365861555575916210").path == \
        "/affiliate_seller/202508/target_collaborations/7365861555575916210"
    orders = client.prepare_search_orders(create_time_ge=10, create_time_lt=20, collaboration_id="7")
    assert orders.path == "/affiliate_seller/202410/orders/search"
    assert json.loads(orders.body) == {"create_time_ge": 10, "create_time_lt": 20, "program_id": "7"}
    eligibility = client.prepare_check_eligibility(["a", "b", "a"])
    assert json.loads(eligibility.body) == {"creator_infos": [{"creator_open_id": "a"}, {"creator_open_id": "b"}]}
    with pytest.raises(ValueError):
        client.prepare_check_eligibility([str(i) for i in range(101)])
    shops = client.sign(client.prepare_authorized_shops(), timestamp=1_700_000_000)
    assert "shop_cipher" not in shops.query  # the one call that names no shop
    assert "shop_cipher" in client.sign(client.prepare_outreach_quota(), timestamp=1_700_000_000).query


def test_a_page_token_with_reserved_characters_is_signed_as_sent():
    seen = []

    def handler(request: httpx.Request):
        seen.append(request)
        return httpx.Response(200, json=env(0))

    async def go():
        async with ApiClient("https://api.example", CREDS, transport=httpx.MockTransport(handler)) as client:
            await client.send(client.prepare_search_collaborations(page_token="b2Zm+c2V0/PTAK=="))

    run(go())
    q = dict(seen[0].url.params)
    assert q["page_token"] == "b2Zm+c2V0/PTAK=="
    assert q["sign"] == sign("secret-xyz-123", seen[0].url.path, {k: v for k, v in q.items() if k != "sign"},
                             seen[0].content)


@pytest.mark.parametrize(
    "response, outcome, maybe_applied",
    [
        (httpx.Response(200, json=env(0)), Outcome.OK, False),
        (httpx.Response(200, json=env(36009002, "Too many")), Outcome.RATE_LIMITED, False),
        (httpx.Response(429, json=env(36009002), headers={"Retry-After": "2"}), Outcome.RATE_LIMITED, False),
        (httpx.Response(429, text="slow down"), Outcome.RATE_LIMITED, False),
        (httpx.Response(429, content=b""), Outcome.RATE_LIMITED, False),
        (httpx.Response(429, json=env(0)), Outcome.RATE_LIMITED, False),
        (httpx.Response(429, json=env(45101004, "quota")), Outcome.DAILY_QUOTA, False),
        (httpx.Response(200, json=env(45101004, "quota")), Outcome.DAILY_QUOTA, False),
        (httpx.Response(200, json=env(36009003, "internal")), Outcome.TRANSIENT, True),
        (httpx.Response(500, json=env(36009007, "timeout")), Outcome.TRANSIENT, True),
        (httpx.Response(502, text="<html>Bad Gateway</html>"), Outcome.TRANSIENT, True),
        (httpx.Response(503, content=b""), Outcome.TRANSIENT, True),
        (httpx.Response(503, json=env(0)), Outcome.TRANSIENT, True),
        (httpx.Response(503, json=env(99999999, "overloaded")), Outcome.TRANSIENT, True),
        (httpx.Response(200, content=b'{"code": 0, "data": {"target_coll'), Outcome.TRANSIENT, True),
        (httpx.Response(200, json=env(16024022, "dup")), Outcome.DUPLICATE, False),
        (httpx.Response(200, json=env(16024004)), Outcome.INELIGIBLE, False),
        (httpx.Response(200, json=env(16024006)), Outcome.INELIGIBLE, False),
        (httpx.Response(200, json=env(16024016)), Outcome.INELIGIBLE, False),
        (httpx.Response(200, json=env(16024018)), Outcome.INELIGIBLE, False),
        (httpx.Response(200, json=env(16024020)), Outcome.INELIGIBLE, False),
        (httpx.Response(200, json=env(16024021)), Outcome.INELIGIBLE, False),
        (httpx.Response(200, json=env(50001702)), Outcome.INELIGIBLE, False),
        (httpx.Response(200, json=env(16024019)), Outcome.OUTREACH_QUOTA, False),
        (httpx.Response(200, json=env(16024008)), Outcome.PRODUCT, False),
        (httpx.Response(200, json=env(50001703)), Outcome.SENSITIVE, False),
        (httpx.Response(200, json=env(98001004, "invalid params: end_time")), Outcome.INVALID, False),
        (httpx.Response(200, json=env(105002, "expired")), Outcome.TOKEN_EXPIRED, False),
        (httpx.Response(401, json=env(105002, "expired")), Outcome.TOKEN_EXPIRED, False),
        (httpx.Response(200, json=env(36009004, "bad timestamp")), Outcome.AUTH, False),
        (httpx.Response(200, json=env(101000)), Outcome.AUTH, False),
        (httpx.Response(200, json=env(105005)), Outcome.AUTH, False),
        (httpx.Response(200, json=env(106001)), Outcome.AUTH, False),
        (httpx.Response(200, json=env(106013)), Outcome.AUTH, False),
        (httpx.Response(200, json=env(36009033)), Outcome.AUTH, False),
        (httpx.Response(401, text="Unauthorized"), Outcome.AUTH, False),
        (httpx.Response(200, json=env(36009009)), Outcome.UNSUPPORTED, False),
        (httpx.Response(404, json=env(36009009)), Outcome.UNSUPPORTED, False),
        (httpx.Response(200, json=env(36009010)), Outcome.UNSUPPORTED, False),
        (httpx.Response(200, json=env(36009014)), Outcome.UNSUPPORTED, False),
        (httpx.Response(200, json=env(36009022)), Outcome.UNSUPPORTED, False),
        (httpx.Response(200, json=env(50001700)), Outcome.NO_ACCESS, False),
        (httpx.Response(200, json=env(50001701)), Outcome.NO_ACCESS, False),
        (httpx.Response(200, json=env(12345678, "something new")), Outcome.UNKNOWN, False),
        (httpx.Response(200, json=env("36009003")), Outcome.TRANSIENT, True),
    ],
)
def test_every_documented_answer_is_classified(response, outcome, maybe_applied):
    answer = answer_for(lambda request: response)
    assert answer.outcome is outcome
    assert answer.maybe_applied is maybe_applied


def test_unknown_codes_keep_code_and_message():
    answer = answer_for(lambda r: httpx.Response(200, json=env(12345678, "something new")))
    assert (answer.code, answer.message) == (12345678, "something new")
    assert not answer.retryable


def test_retry_after_header_is_read_in_both_forms():
    answer = answer_for(lambda r: httpx.Response(429, json=env(36009002), headers={"Retry-After": "3"}))
    assert answer.retry_after == 3.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470) == pytest.approx(10.0)
    assert parse_retry_after("soon") is None


@pytest.mark.parametrize(
    "exc, maybe_applied",
    [
        (httpx.ConnectError("refused"), False),
        (httpx.ConnectTimeout("slow connect"), False),
        (httpx.ReadTimeout("slow read"), True),
        (httpx.RemoteProtocolError("peer closed connection"), True),
        (httpx.ReadError("reset by peer"), True),
    ],
)
def test_transport_failures_are_transient_and_say_whether_the_create_may_have_happened(exc, maybe_applied):
    def handler(request):
        raise exc

    answer = answer_for(handler)
    assert answer.outcome is Outcome.TRANSIENT
    assert answer.maybe_applied is maybe_applied
    assert answer_for(handler, mutating=False).maybe_applied is False


def test_conflicts_are_reported_per_pair_even_on_success_in_every_naming():
    data = {
        "target_collaboration": {"id": "7"},
        "target_collaboration_conflicts": [
            {"creator_user_id": "11", "product_id": "1"},
            {"creator_user_open_id": "12", "product_id": "1"},
        ],
    }
    answer = answer_for(lambda r: httpx.Response(200, json=env(0, data=data)))
    assert answer.ok
    assert answer.collaboration_id() == "7"
    assert answer.conflicts() == [("11", "1"), ("12", "1")]
    check = classify_response(200, {}, json.dumps(env(0, data={
        "has_conflict": True, "conflict_items": [{"creator_open_id": "11", "product_id": "1",
                                                  "existing_collaboration_id": "5"}]})).encode(), mutating=False)
    assert check.conflicts() == [("11", "1")]


def test_error_data_naming_creators_is_found_wherever_it_is():
    answer = answer_for(lambda r: httpx.Response(200, json=env(16024021, data={
        "errors": [{"detail": {"creator_user_id": "12"}}]})))
    assert answer.named_ids({"11", "12"}) == {"12"}
    listed = answer_for(lambda r: httpx.Response(200, json=env(16024020, data={"creator_ids": "a_1,b-2"})))
    assert listed.named_ids({"a_1", "b-2", "c"}) == {"a_1", "b-2"}
    in_message = answer_for(lambda r: httpx.Response(200, json=env(
        16024016, "creator uACafQAAAABmUU2qon4R0vUY is already linked with a shop account")))
    assert in_message.named_ids({"uACafQAAAABmUU2qon4R0vUY", "other"}) == {"uACafQAAAABmUU2qon4R0vUY"}


def test_credentials_brand_specific_wins_and_secrets_stay_out_of_repr():
    environ = {
        "TRENDIO_APP_KEY": "generic-key", "TRENDIO_APP_SECRET": "generic-secret",
        "TRENDIO_ACCESS_TOKEN": "generic-token", "TRENDIO_SHOP_CIPHER": "generic-cipher",
        "TRENDIO_GLOW_LAB_ACCESS_TOKEN": "glow-token",
    }
    c = credentials_for("glow-lab", environ)
    assert c.access_token == "glow-token" and c.app_key == "generic-key"
    assert "glow-token" not in repr(c) and "generic-secret" not in repr(c) and "generic-secret" not in str(c)
    with pytest.raises(ConfigError, match="TRENDIO_APP_SECRET"):
        credentials_for("x", {"TRENDIO_APP_KEY": "k", "TRENDIO_ACCESS_TOKEN": "t", "TRENDIO_SHOP_CIPHER": "c"})
    assert credentials_for("x", {}, allow_sandbox_defaults=True).app_key == "sandbox-app-key"


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000", "http://localhost:1", "http://[::1]:9",
                                 "https://open-api.tiktokglobalshop.com"])
def test_loopback_http_and_any_https_are_allowed(url):
    assert check_base_url(url) == url


@pytest.mark.parametrize("url", ["http://open-api.tiktokglobalshop.com", "http://10.0.0.5:80", "ftp://x", "nohost"])
def test_plain_http_elsewhere_is_refused(url):
    with pytest.raises(ConfigError):
        check_base_url(url)
