"""The sandbox over real HTTP, with plain httpx and the documented signing: each endpoint, each rule, each
documented answer form, as the official reference describes them (not as trendio's client uses them)."""

from __future__ import annotations

import csv
import json
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import fields
from datetime import timedelta
from typing import Any

import httpx
import pytest

from helpers import apply_overrides, run_cli
from trendio_cli.api.credentials import Credentials, credentials_for, sandbox_accepted_credentials
from trendio_cli.api.signing import sign
from trendio_cli.sandbox import app, state
from trendio_cli.sandbox.marketplace import index_of_open_id, legacy_id, open_id, write_creators_file
from trendio_cli.sandbox.server import SandboxServer
from trendio_cli.sandbox.state import INELIGIBLE_CODES, SandboxSettings

APP, SECRET, TOKEN, CIPHER = "sandbox-app-key", "sandbox-app-secret", "sandbox-access-token", "sandbox-shop-cipher"
CREATE = "/affiliate_seller/202508/target_collaborations"
LEGACY_CREATE = "/affiliate_seller/202405/target_collaborations"
SEARCH = "/affiliate_seller/202508/target_collaborations/search"
ORDERS = "/affiliate_seller/202410/orders/search"
MARKET = "/affiliate_seller/202508/marketplace_creators/search"
SHOPS = "/authorization/202309/shops"
CONFLICTS = "/affiliate_seller/202605/target_collaborations/conflicts/check"
QUOTA = "/affiliate_seller/202607/creator_outreach/quota"
ELIGIBILITY = "/affiliate_seller/202610/creator_outreach/eligibility/check"
REFRESH = "/api/v2/token/refresh"
PRODUCT = "1729384756"
CREATORS = [open_id(i) for i in range(400)]


class Shop:
    """A hand-written caller of the platform: signs each request as the developer guide says."""

    def __init__(self, url: str, *, app_key: str = APP, secret: str = SECRET, token: str = TOKEN,
                 cipher: str = CIPHER) -> None:
        self.url, self.app_key, self.secret, self.token, self.cipher = url, app_key, secret, token, cipher
        self.http = httpx.Client(base_url=url, timeout=30)

    def call(self, method: str, path: str, body: Any = None, *, query: dict[str, str] | None = None,
             cipher: bool | str = True, secret: str | None = None, timestamp: float | None = None,
             token: str | None = None, signed: bool = True, content_type: str = "application/json",
             raw: bytes | None = None) -> httpx.Response:
        q = {"app_key": self.app_key, "timestamp": str(int(timestamp if timestamp is not None else time.time()))}
        if cipher:
            q["shop_cipher"] = self.cipher if cipher is True else cipher
        q.update(query or {})
        content = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
        if signed:
            q["sign"] = sign(secret or self.secret, path, q, content)
        headers = {"x-tts-access-token": token or self.token, "content-type": content_type}
        return self.http.request(method, path, params=q, content=content, headers=headers)

    def answer(self, method: str, path: str, body: Any = None, **kw: Any) -> dict[str, Any]:
        r = self.call(method, path, body, **kw)
        doc = r.json()
        assert set(doc) == {"code", "message", "request_id", "data"}, doc
        doc["http_status"] = r.status_code
        return doc

    def ok(self, method: str, path: str, body: Any = None, **kw: Any) -> dict[str, Any]:
        doc = self.answer(method, path, body, **kw)
        assert doc["code"] == 0, doc
        return doc["data"]

    def create(self, creators: list[str], offer: tuple[tuple[str, int], ...] = ((PRODUCT, 1500),),
               legacy: bool = False, **overrides: Any) -> dict[str, Any]:
        return self.answer("POST", LEGACY_CREATE if legacy else CREATE, create_body(creators, offer, legacy,
                                                                                   **overrides))

    def search(self, status: str = "VALID", page_size: int = 20, **body: Any) -> dict[str, Any]:
        return self.ok("POST", SEARCH, {"collaboration_status": status, **body}, query={"page_size": str(page_size)})

    def detail(self, cid: str) -> dict[str, Any]:
        return self.answer("GET", f"/affiliate_seller/202508/target_collaborations/{cid}")

    def refresh(self, refresh_token: str, **overrides: str) -> dict[str, Any]:
        q = {"app_key": self.app_key, "app_secret": self.secret, "refresh_token": refresh_token,
             "grant_type": "refresh_token", **overrides}
        return self.http.get(REFRESH, params=q).json()


def create_body(creators: list[str], offer: tuple[tuple[str, int], ...] = ((PRODUCT, 1500),),
                legacy: bool = False, **overrides: Any) -> dict[str, Any]:
    """A create body with every required field; `offer` is (product id, commission) pairs, overrides replace
    (or, as None, remove) top-level fields."""
    body: dict[str, Any] = {
        "name": overrides.pop("name", f"campaign-{time.time_ns()}"),
        "message": "We would love to work with you.",
        "end_time": str(int(time.time()) + 30 * 86400),
        "products": [{"id": p, "target_commission_rate": r} for p, r in offer],
        "creator_user_ids" if legacy else "creator_user_open_ids": creators,
        "seller_contact_info": {"email": "partners@brand.example"},
        "free_sample_rule": {"has_free_sample": True, "is_sample_approval_exempt": False},
    }
    return apply_overrides(body, overrides)


@pytest.fixture
def sb():
    with SandboxServer(SandboxSettings()) as server:
        yield server


@pytest.fixture
def shop(sb):
    return Shop(sb.url)


def advance_past(sb: SandboxServer, days: float) -> None:
    """Move the simulated clock, keeping the token alive (tests of outcomes, not of expiry)."""
    sb.configure(token_lifetime_s=0)
    sb.advance(days=days)


# --- transport and identity ------------------------------------------------------------------------------------
def test_a_signed_call_gets_the_envelope_and_the_authorized_shops(shop):
    doc = shop.answer("GET", SHOPS, cipher=False)
    assert doc["code"] == 0 and doc["message"] and len(doc["request_id"]) >= 20
    [one] = doc["data"]["shops"]
    assert set(one) == {"id", "name", "region", "seller_type", "cipher", "code"}
    assert one["cipher"] == CIPHER and one["seller_type"] in ("LOCAL", "CROSS_BORDER")


def test_one_token_for_several_shops_lists_them_all_and_each_cipher_works():
    creds = [Credentials(APP, SECRET, "token-x", "cipher-us"), Credentials(APP, SECRET, "token-x", "cipher-mx")]
    with SandboxServer(SandboxSettings(), credentials=creds) as server:
        shop = Shop(server.url, token="token-x", cipher="cipher-mx")
        assert {s["cipher"] for s in shop.ok("GET", SHOPS, cipher=False)["shops"]} == {"cipher-us", "cipher-mx"}
        assert shop.create(CREATORS[:1])["code"] == 0
        assert shop.answer("POST", SEARCH, {"collaboration_status": "VALID"}, cipher="cipher-us")["code"] == 0
        assert sorted(k.split("/")[0] for k in server.stats()["quota_used"]) == ["cipher-mx", "cipher-us"]


def test_signature_and_timestamp_window(sb, shop):
    assert shop.answer("GET", SHOPS, cipher=False, secret="not-the-secret")["code"] == 106001
    assert shop.answer("GET", SHOPS, cipher=False, signed=False)["code"] == 36009004
    now = time.time()
    assert shop.answer("GET", SHOPS, cipher=False, timestamp=now - 280)["code"] == 0
    assert shop.answer("GET", SHOPS, cipher=False, timestamp=now + 20)["code"] == 0
    stale = shop.answer("GET", SHOPS, cipher=False, timestamp=now - 330)
    assert stale["code"] == 36009004 and "timestamp" in stale["message"].lower()
    assert shop.answer("GET", SHOPS, cipher=False, timestamp=now + 60)["code"] == 36009004
    sb.configure(clock_skew_s=600)  # the platform's clock runs ahead: a correct local clock looks stale
    assert shop.answer("GET", SHOPS, cipher=False)["code"] == 36009004
    assert shop.answer("GET", SHOPS, cipher=False, timestamp=time.time() + 600)["code"] == 0


def test_the_body_is_part_of_the_signature(shop):
    body = create_body(CREATORS[:1])
    q = {"app_key": APP, "timestamp": str(int(time.time())), "shop_cipher": CIPHER}
    q["sign"] = sign(SECRET, CREATE, q, json.dumps(body).encode())
    tampered = json.dumps({**body, "name": "other"}).encode()
    r = shop.http.post(CREATE, params=q, content=tampered,
                       headers={"x-tts-access-token": TOKEN, "content-type": "application/json"})
    assert r.json()["code"] == 106001


def test_app_key_token_and_shop_cipher(sb, shop):
    assert Shop(sb.url, app_key="nope").answer("GET", SHOPS, cipher=False)["code"] == 36009004
    bad_token = shop.answer("GET", SHOPS, cipher=False, token="TTP_not-a-token")
    assert bad_token["code"] == 36009004 and "access-token" in bad_token["message"]
    assert shop.answer("POST", SEARCH, {"collaboration_status": "VALID"}, cipher=False)["code"] == 106013
    assert shop.answer("POST", SEARCH, {"collaboration_status": "VALID"}, cipher="someone-else")["code"] == 101000
    unexpected = shop.answer("GET", SHOPS)  # the shops call takes no shop_cipher
    assert unexpected["code"] == 36009004 and "shop_cipher" in unexpected["message"]
    sb.configure(reject_unexpected_cipher=False)
    assert shop.answer("GET", SHOPS)["code"] == 0
    sb.configure(auth_http_status=401)  # the same refusals, as HTTP 401s
    assert shop.answer("POST", SEARCH, {"collaboration_status": "VALID"}, cipher="x")["http_status"] == 401
    assert shop.answer("GET", SHOPS, cipher=False, secret="bad")["http_status"] == 401
    assert shop.answer("GET", SHOPS, cipher=False)["http_status"] == 200


def test_missing_scope_and_ip_allow_list(sb, shop):
    sb.configure(granted_scopes=["seller.affiliate_collaboration.write", "seller.affiliate_collaboration.read"])
    assert shop.answer("POST", MARKET, {}, query={"page_size": "12"})["code"] == 105005
    assert shop.search()["total_count"] == 0
    sb.configure(ip_allowlist=["10.1.2.3"])
    assert shop.answer("POST", SEARCH, {"collaboration_status": "VALID"})["code"] == 36009033


def test_unknown_paths_methods_and_bodies(sb, shop):
    unknown = shop.call("POST", "/affiliate_seller/202409/target_collaborations/search", {})
    assert unknown.status_code == 404 and unknown.json()["code"] == 36009009
    wrong = shop.call("DELETE", SEARCH, {})
    assert wrong.status_code == 405 and wrong.json()["code"] == 36009010
    assert shop.answer("POST", SEARCH, raw=b"{not json")["code"] == 36009022
    assert shop.answer("POST", SEARCH, [1, 2])["code"] == 36009022
    assert shop.answer("POST", SEARCH, {"collaboration_status": "VALID"}, content_type="text/plain")["code"] == 36009022
    assert sb.stats()["by_code"]["36009009"] == 1
    huge = shop.call("POST", SEARCH, raw=b" " * (2 << 20))
    assert huge.status_code == 413 and huge.json()["code"] == 36009022


# --- create ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("change, field", [
    ({"name": None}, "name"),
    ({"name": "  "}, "name"),
    ({"name": "x" * 101}, "name"),
    ({"end_time": None}, "end_time"),
    ({"end_time": 1999999999}, "end_time"),  # a number, not the documented string
    ({"end_time": "1700000000"}, "end_time"),  # in the past
    ({"end_time": "soon"}, "end_time"),
    ({"products": []}, "products"),
    ({"products": [{"id": str(i), "target_commission_rate": 1500} for i in range(101)]}, "products"),
    ({"products": [{"id": PRODUCT, "target_commission_rate": 999}]}, "target_commission_rate"),
    ({"products": [{"id": PRODUCT, "target_commission_rate": 8001}]}, "target_commission_rate"),
    ({"products": [{"id": PRODUCT, "target_commission_rate": 15.5}]}, "target_commission_rate"),
    ({"products": [{"id": PRODUCT, "target_commission_rate": "1500"}]}, "target_commission_rate"),
    ({"products": [{"target_commission_rate": 1500}]}, "products[0].id"),
    ({"products": [{"id": PRODUCT, "target_commission_rate": 1500}] * 2}, "twice"),
    ({"creator_user_open_ids": []}, "creator_user_open_ids"),
    ({"creator_user_open_ids": CREATORS[:51]}, "creator_user_open_ids"),
    ({"creator_user_open_ids": [CREATORS[0], CREATORS[0]]}, "creator_user_open_ids"),
    ({"seller_contact_info": None}, "seller_contact_info.email"),
    ({"seller_contact_info": {"email": "not-an-email"}}, "seller_contact_info.email"),
    ({"free_sample_rule": None}, "free_sample_rule.has_free_sample"),
    ({"free_sample_rule": {"has_free_sample": True}}, "free_sample_rule.is_sample_approval_exempt"),
    ({"free_sample_rule": {"has_free_sample": "yes", "is_sample_approval_exempt": False}},
     "free_sample_rule.has_free_sample"),
])
def test_every_required_create_field_is_checked_and_nothing_is_created(sb, shop, change, field):
    body = create_body(CREATORS[:2], **change)
    doc = shop.answer("POST", CREATE, body)
    assert doc["code"] == 98001004 and field in doc["message"], doc
    stats = sb.stats()
    assert stats["invited_pairs"] == 0 and stats["collaborations"] == 0 and stats["creates_created_nothing"] == 1


def test_the_commission_bounds_are_inclusive(shop):
    assert shop.create(CREATORS[:1], offer=(("1", 1000), ("2", 8000)))["code"] == 0


def test_a_create_then_its_detail_and_its_search_result(sb, shop):
    doc = shop.create(CREATORS[:3], offer=((PRODUCT, 1500), ("1729384757", 2000)), name="spring-b1")
    assert doc["code"] == 0 and doc["data"]["target_collaboration_conflicts"] == []
    cid = doc["data"]["target_collaboration"]["id"]
    assert cid.isdigit()
    detail = shop.detail(cid)["data"]["target_collaboration"]
    assert detail["name"] == "spring-b1" and detail["seller_contact_info"] == {"email": "partners@brand.example"}
    assert detail["creator_invited_count"] == 3 and detail["product_count"] == 2
    assert [p["id"] for p in detail["products"]] == [PRODUCT, "1729384757"]
    assert detail["products"][1]["commission"]["rate"] == 2000
    assert {p["status"] for p in detail["products"]} == {"LIVE"}
    assert [c["creator_open_id"] for c in detail["creators"]] == CREATORS[:3]
    for c in detail["creators"]:
        assert c["showcase_product_count"] == 0 and c["content_product_count"] == 0
        assert c["collaboration_status"] == "NORMAL" and c["username"]
    [found] = shop.search()["target_collaborations"]
    assert found["id"] == cid and found["creator_inivited_count"] == 3  # the API's own spelling
    assert found["showcase_creator_count"] == 0 and found["content_creator_count"] == 0 and found["product_count"] == 2
    assert "creators" not in found and "products" not in found  # counts only
    assert sb.invited_pairs()[0]["creator_id"] == CREATORS[0]
    assert shop.detail("7300000000999999999")["code"] == 50001700


@pytest.mark.parametrize("code", [0, 16024022])
def test_a_create_that_lists_conflicts_creates_nothing_for_anyone(sb, shop, code):
    sb.configure(conflict_code=code)
    first = shop.create(CREATORS[:2])
    assert first["code"] == 0
    second = shop.create(CREATORS[1:4])  # creator 1 is already invited to the product, 2 and 3 are new
    assert second["code"] == code
    assert second["data"]["target_collaboration_conflicts"] == [
        {"creator_user_open_id": CREATORS[1], "product_id": PRODUCT}]
    phantom = second["data"]["target_collaboration"]["id"]
    assert shop.detail(phantom)["code"] == 50001700  # the id it carries was never created
    stats = sb.stats()
    assert stats["invited_pairs"] == 2 and stats["collaborations"] == 1 and stats["duplicate_attempts"] == 1
    assert stats["creates_created_nothing"] == 1 and stats["conflict_answers"] == 1
    assert {p["creator_id"] for p in sb.invited_pairs()} == set(CREATORS[:2])
    # the rest, sent again without the conflicting creator, is created: once
    assert shop.create([CREATORS[2], CREATORS[3]])["code"] == 0
    assert sb.stats()["invited_pairs"] == 4 and sb.stats()["pairs_sent_more_than_once"] == 1
    sb.configure(conflict_id="none")
    again = shop.create(CREATORS[:1])
    assert "target_collaboration" not in again["data"] and again["data"]["target_collaboration_conflicts"]


def test_a_pair_stays_taken_after_its_collaboration_ends(sb, shop):
    assert shop.create(CREATORS[:1], end_time=str(int(time.time()) + 2 * 86400))["code"] == 0
    advance_past(sb, 3)
    assert shop.search("COMPLETED")["total_count"] == 1
    assert shop.create(CREATORS[:1])["data"]["target_collaboration_conflicts"]


def test_the_legacy_route_takes_plain_ids_of_the_same_creators_and_shares_the_pairs(sb, shop):
    legacy = [legacy_id(i) for i in range(3)]
    assert shop.answer("POST", LEGACY_CREATE, create_body(CREATORS[:1]))["code"] == 98001004  # wrong field
    doc = shop.create(legacy, legacy=True)
    assert doc["code"] == 0
    pairs = sb.invited_pairs()
    assert {(p["creator_id"], p["creator_user_id"]) for p in pairs} == {(CREATORS[i], legacy[i]) for i in range(3)}
    detail = shop.detail(doc["data"]["target_collaboration"]["id"])["data"]["target_collaboration"]
    assert [c["creator_open_id"] for c in detail["creators"]] == CREATORS[:3]
    clash = shop.create([CREATORS[2], CREATORS[3]])
    assert clash["data"]["target_collaboration_conflicts"] == [{"creator_user_open_id": CREATORS[2],
                                                                "product_id": PRODUCT}]
    back = shop.create([legacy_id(3), legacy[0]], legacy=True)
    assert back["data"]["target_collaboration_conflicts"] == [{"creator_user_id": legacy[0], "product_id": PRODUCT}]
    sb.configure(legacy_conflict_ids="both")
    both = shop.create([legacy[1]], legacy=True)["data"]["target_collaboration_conflicts"]
    assert both == [{"creator_user_open_id": CREATORS[1], "creator_user_id": legacy[1], "product_id": PRODUCT}]
    assert sb.stats()["by_endpoint_version"]["create_collaboration/202405"] == 4
    assert sb.stats()["invited_pairs"] == 3


@pytest.mark.parametrize("code", INELIGIBLE_CODES)
def test_each_ineligible_code_creates_nothing_and_names_the_creators(sb, shop, code):
    sb.configure(ineligible_creators={CREATORS[1]: code, CREATORS[3]: code})
    doc = shop.create(CREATORS[:5])
    assert doc["code"] == code and doc["data"] == {"invalid_open_id_list": [CREATORS[1], CREATORS[3]]}
    assert sb.stats()["invited_pairs"] == 0 and sb.stats()["ineligible_refusals"] == 1
    assert shop.create([CREATORS[0], CREATORS[2], CREATORS[4]])["code"] == 0  # without them it goes through


def test_ineligible_answers_named_in_every_shape_or_unnamed(sb, shop):
    sb.configure(ineligible_creators={CREATORS[1]: 16024021, CREATORS[2]: 16024018})
    first = shop.create(CREATORS[:3])
    assert first["code"] == 16024021 and first["data"]["invalid_open_id_list"] == [CREATORS[1]]
    sb.configure(ineligible_name_scope="all")
    assert shop.create(CREATORS[:3])["data"]["invalid_open_id_list"] == CREATORS[1:3]
    sb.configure(ineligible_named_shape="creator_ids")
    assert shop.create(CREATORS[:3])["data"] == {"creator_user_open_ids": CREATORS[1:3]}
    sb.configure(ineligible_named_shape="message")
    doc = shop.create(CREATORS[:3])
    assert doc["data"] == {} and CREATORS[1] in doc["message"] and CREATORS[2] in doc["message"]
    sb.configure(ineligible_mode="unnamed")
    doc = shop.create(CREATORS[:3])
    assert doc["code"] == 16024021 and doc["data"] == {} and CREATORS[1] not in doc["message"]
    assert sb.stats()["invited_pairs"] == 0


def test_ineligibility_by_permille_and_by_the_follower_limit_is_stable(sb, shop):
    sb.configure(ineligible_permille=200)
    refused = set()
    for batch in (CREATORS[i:i + 50] for i in range(0, 200, 50)):
        while True:
            doc = shop.create(batch)
            if doc["code"] == 0:
                break
            assert doc["code"] in INELIGIBLE_CODES
            named = doc["data"]["invalid_open_id_list"]
            refused |= set(named)
            batch = [c for c in batch if c not in named]
    assert 20 <= len(refused) <= 70  # about 200 per thousand of 200
    assert refused == {c for c in CREATORS[:200] if sb.state.market.is_ineligible(c, 200)}
    sb.configure(ineligible_permille=0, max_follower_count=1_000)
    big = next(c for c in CREATORS[200:] if sb.state.market.get(c).followers > 1_000)
    assert shop.create([big])["code"] == 16024021


def test_products_not_the_shops_unavailable_products_and_sensitive_words(sb, shop):
    sb.configure(products=[PRODUCT, "42"])
    foreign = shop.create(CREATORS[:1], offer=((PRODUCT, 1500), ("999", 1500)))
    assert foreign["code"] == 16024008 and foreign["data"] == {"invalid_product_id_list": ["999"]}
    sb.configure(unavailable_products=["42"])
    unavailable = shop.create(CREATORS[:1], offer=(("42", 1500),))
    assert unavailable["code"] == 50001702 and unavailable["data"] == {"invalid_product_id_list": ["42"]}
    sb.configure(sensitive_words=["free money"])
    words = shop.create(CREATORS[:1], message="Earn FREE MONEY with us")
    assert words["code"] == 50001703
    assert sb.stats()["invited_pairs"] == 0 and sb.stats()["creates_created_nothing"] == 3


def test_ids_the_sandbox_never_issued_are_refused_or_accepted(sb, shop):
    stranger = "uACafQAAAAB" + "x" * 43
    doc = shop.create([CREATORS[0], stranger])
    assert doc["code"] == 50001702 and doc["data"] == {"invalid_open_id_list": [stranger]}
    sb.configure(unknown_creators="accept")
    assert shop.create([CREATORS[0], stranger])["code"] == 0
    assert shop.create([stranger])["data"]["target_collaboration_conflicts"]


def _to_next_week(sb: SandboxServer) -> None:
    """Move the clock just past the next outreach week turn (Sunday 12:00 UTC-8), so a test has a week."""
    now = sb.state.now()
    start = sb.state.outreach_week_start(now) + timedelta(days=7)
    sb.advance(seconds=start.timestamp() - now + 60)


def test_weekly_outreach_counts_new_creators_once_and_frees_connected_ones(sb, shop):
    sb.configure(weekly_outreach=60, token_lifetime_s=0)
    _to_next_week(sb)
    picks = sorted(CREATORS[:300], key=lambda c: -sb.state.market.propensity(c))[:60]
    assert shop.create(picks[:50])["code"] == 0
    assert shop.create(picks[:50], offer=(("2", 1500),))["code"] == 0  # the same creators count once
    assert shop.create(picks[50:60])["code"] == 0
    full = shop.create([CREATORS[300]])
    assert full["code"] == 16024019 and sb.stats()["invited_pairs"] == 110
    sb.advance(days=5)  # the same week: some of them showcased, and connected creators are free
    collabs = shop.search()["target_collaborations"]
    showcased = []
    for c in collabs:
        showcased += [x["creator_open_id"] for x in shop.detail(c["id"])["data"]["target_collaboration"]["creators"]
                      if x["showcase_product_count"] > 0]
    assert showcased
    assert shop.create(sorted(set(showcased))[:50], offer=(("3", 1500),))["code"] == 0
    assert shop.create([CREATORS[301]])["code"] == 16024019
    quota = shop.ok("GET", QUOTA)["data"]
    assert quota["quota_sum"] == "60" and quota["quota_use"] == "60"
    _to_next_week(sb)  # a new week: a new quota
    assert shop.create([CREATORS[301]])["code"] == 0
    assert shop.ok("GET", QUOTA)["data"]["quota_use"] == "1"


def test_outreach_bands_by_creator_level_spend_bonus_first(sb, shop):
    levels = {c: sb.state.market.get(c).level for c in CREATORS[:200]}
    low = [c for c in CREATORS[:200] if levels[c] <= 3][:6]
    high = [c for c in CREATORS[:200] if levels[c] >= 4][:3]
    sb.configure(outreach_bands=[{"creator_levels": [1, 2, 3], "period": 3, "bonus": 2},
                                 {"creator_levels": [4, 5, 6, 7], "period": 2, "bonus": 0}])
    _to_next_week(sb)
    assert shop.create(low[:4])["code"] == 0
    bands = shop.ok("GET", QUOTA)["data"]["quota_details"]
    assert bands[0] == {"creator_levels": [1, 2, 3], "quota_period_sum": 3, "quota_period_use": 2,
                        "quota_bonus_sum": 2, "quota_bonus_use": 2}
    assert shop.create(low[4:6])["code"] == 16024019  # one left in the band, two asked
    assert shop.create(high[:2])["code"] == 0  # another band has its own quota
    check = shop.ok("POST", ELIGIBILITY, {"creator_infos": [{"creator_open_id": c} for c in low[4:6] + high[2:3]]})
    results = {r["creator_open_id"]: r for r in check["creator_eligibility_results"]}
    assert results[low[4]]["is_creator_level_quota_available"] is True  # one slot left
    assert results[high[2]]["is_creator_level_quota_available"] is False
    assert check["is_batch_quota_consumable"] is False and levels[high[2]] in check["ineligible_creator_levels"]


def test_sized_per_shop_and_unlimited(sb):
    sb.configure(weekly_outreach=1, weekly_outreach_by_shop={CIPHER: 2})
    shop = Shop(sb.url)
    _to_next_week(sb)
    assert shop.create(CREATORS[:2])["code"] == 0
    assert shop.create(CREATORS[2:3])["code"] == 16024019
    sb.configure(outreach_unlimited=True)
    assert shop.create(CREATORS[2:5])["code"] == 0
    assert shop.ok("GET", QUOTA)["data"]["unlimited"] is True


# --- search ------------------------------------------------------------------------------------------------------
def test_search_requires_a_status_and_pages_with_a_stable_token(sb, shop):
    assert shop.answer("POST", SEARCH, {})["code"] == 98001004
    assert shop.answer("POST", SEARCH, {"collaboration_status": "LIVE"})["code"] == 98001004
    assert shop.answer("POST", SEARCH, {"collaboration_status": "VALID"}, query={"page_size": "10"})["code"] == 98001004
    for i in range(45):
        assert shop.create([CREATORS[i]], name=f"batch-{i:02d}")["code"] == 0
    first = shop.search(page_size=20)
    assert first["total_count"] == 45 and len(first["target_collaborations"]) == 20
    assert first["target_collaborations"][0]["name"] == "batch-44"  # newest first
    shop.create([CREATORS[99]], name="late")  # created while paging: not in this listing
    seen = [c["id"] for c in first["target_collaborations"]]
    token = first["next_page_token"]
    while token:
        page = shop.ok("POST", SEARCH, {"collaboration_status": "VALID"}, query={"page_size": "20",
                                                                                  "page_token": token})
        seen += [c["id"] for c in page["target_collaborations"]]
        token = page["next_page_token"]
    assert len(seen) == len(set(seen)) == 45
    other = shop.answer("POST", SEARCH, {"collaboration_status": "ONGOING"},
                        query={"page_size": "20", "page_token": first["next_page_token"]})
    assert other["code"] == 98001004  # a token belongs to its search


def test_search_by_status_name_product_creator_and_acceptance(sb, shop):
    now = int(time.time())
    shop.create(CREATORS[:1], name="spring-glow-b1", end_time=str(now + 30 * 86400))
    shop.create(CREATORS[1:2], name="spring-glow-b2", end_time=str(now + 3 * 86400),
                offer=(("555", 1500),))
    shop.create(CREATORS[2:3], name="autumn-b1", end_time=str(now + 40 * 86400),
                free_sample_rule={"has_free_sample": False, "is_sample_approval_exempt": False})
    names = {s: sorted(c["name"] for c in shop.search(s)["target_collaborations"])
             for s in ("ONGOING", "EXPIRING", "VALID", "COMPLETED", "CANCELING")}
    assert names == {"ONGOING": ["autumn-b1", "spring-glow-b1"], "EXPIRING": ["spring-glow-b2"],
                     "VALID": ["autumn-b1", "spring-glow-b1", "spring-glow-b2"], "COMPLETED": [], "CANCELING": []}

    def named(**body: Any) -> list[str]:
        return sorted(c["name"] for c in shop.search(**body)["target_collaborations"])

    assert named(search_param={"keyword_type": "TARGET_COLLABORATION_NAME", "keyword": "GLOW"}) == [
        "spring-glow-b1", "spring-glow-b2"]
    assert named(search_param={"keyword_type": "PRODUCT_ID", "keyword": "555"}) == ["spring-glow-b2"]
    assert named(creator_user_open_id=CREATORS[2]) == ["autumn-b1"]
    assert named(free_sample_setting="WITH_FREE_SAMPLE") == ["spring-glow-b1", "spring-glow-b2"]
    assert shop.answer("POST", SEARCH, {"collaboration_status": "VALID", "search_param": {"keyword": "x"}})[
        "code"] == 98001004
    assert named(creator_accept_status="ACCEPT") == []
    advance_past(sb, 4)
    assert sorted(c["name"] for c in shop.search("COMPLETED")["target_collaborations"]) == ["spring-glow-b2"]


# --- showcase, content and orders over simulated time ---------------------------------------------------------
@pytest.fixture
def campaign(sb, shop):
    """200 creators invited to two products in four creates, then 25 simulated days."""
    ids = []
    for i in range(4):
        doc = shop.create(CREATORS[i * 50:(i + 1) * 50], offer=((PRODUCT, 1500), ("1729384757", 2000)),
                          name=f"sim-{i}")
        ids.append(doc["data"]["target_collaboration"]["id"])
    advance_past(sb, 25)
    return ids


def test_creators_showcase_and_post_content_and_never_decline(sb, shop, campaign):
    showcased, content, invited = set(), set(), 0
    for cid in campaign:
        detail = shop.detail(cid)["data"]["target_collaboration"]
        found = shop.search(search_param={"keyword_type": "TARGET_COLLABORATION_ID", "keyword": cid})
        [summary] = found["target_collaborations"]
        for c in detail["creators"]:
            invited += 1
            assert set(c) >= {"creator_open_id", "username", "showcase_product_count", "content_product_count",
                              "collaboration_status"}
            assert c["collaboration_status"] == "NORMAL"  # nobody declines
            assert 0 <= c["content_product_count"] <= c["showcase_product_count"] <= 2
            if c["showcase_product_count"]:
                showcased.add(c["creator_open_id"])
            if c["content_product_count"]:
                content.add(c["creator_open_id"])
        assert summary["showcase_creator_count"] == sum(1 for c in detail["creators"] if c["showcase_product_count"])
        assert summary["content_creator_count"] == sum(1 for c in detail["creators"] if c["content_product_count"])
    assert invited == 200 and 15 <= len(showcased) <= 120 and 0 < len(content) < len(showcased)
    # the hidden propensity is what decides: the likelier half showcases clearly more often
    ranked = sorted(CREATORS[:200], key=sb.state.market.propensity)
    assert len(showcased & set(ranked[100:])) > 1.5 * len(showcased & set(ranked[:100]))
    accepting = shop.search(creator_accept_status="ACCEPT")["target_collaborations"]
    assert {c["id"] for c in accepting} == {c for c in campaign
                                            if shop.detail(c)["data"]["target_collaboration"]["showcase_creator_count"]}


def test_affiliate_orders_follow_as_the_spec_names_them(sb, shop, campaign):
    data = shop.ok("POST", ORDERS, {}, query={"page_size": "100"})
    assert data["total_count"] > 0 and len(data["orders"]) == min(100, data["total_count"])
    times = [o["create_time"] for o in data["orders"]]
    assert times == sorted(times, reverse=True)
    order = data["orders"][0]
    assert set(order) >= {"id", "create_time", "status", "skus"}
    assert order["status"] in ("PROCESSING", "COMPLETED", "CANCELLED", "FROZEN", "DEDUCTED")
    sku = order["skus"][0]
    assert set(sku) >= {"target_collaboration_id", "creator_username", "product_id", "price", "quantity",
                        "content_type", "commission_rate", "estimated_commission_base", "estimated_paid_commission",
                        "actual_commission_base", "actual_paid_commission", "refunded_quantity", "returned_quantity"}
    assert sku["target_collaboration_id"] in campaign and sku["product_id"] in (PRODUCT, "1729384757")
    assert sku["content_type"] in ("SHOP", "VIDEO", "LIVE") and set(sku["price"]) == {"amount", "currency"}
    estimated = float(sku["price"]["amount"]) * sku["quantity"]
    assert float(sku["estimated_commission_base"]["amount"]) == pytest.approx(estimated, abs=0.01)
    # every order's creator showcased that collaboration's products
    showcasing = {}
    for cid in campaign:
        detail = shop.detail(cid)["data"]["target_collaboration"]
        showcasing[cid] = {c["username"] for c in detail["creators"] if c["showcase_product_count"]}
    everything, token = [], ""
    while True:
        page = shop.ok("POST", ORDERS, {}, query={"page_size": "50", **({"page_token": token} if token else {})})
        everything += page["orders"]
        token = page["next_page_token"]
        if not token:
            break
    assert len(everything) == data["total_count"] == len({o["id"] for o in everything})
    for o in everything:
        for s in o["skus"]:
            assert s["creator_username"] in showcasing[s["target_collaboration_id"]]
    one = campaign[0]
    mine = shop.ok("POST", ORDERS, {"program_id": one}, query={"page_size": "100"})
    assert mine["total_count"] == sum(1 for o in everything if o["skus"][0]["target_collaboration_id"] == one)
    middle = sorted(o["create_time"] for o in everything)[len(everything) // 2]
    early = shop.ok("POST", ORDERS, {"create_time_lt": middle}, query={"page_size": "100"})
    assert early["total_count"] == sum(1 for o in everything if o["create_time"] < middle)
    # orders change later: deliveries complete, some are refunded or were cancelled
    sb.advance(days=20)
    later = {o["id"]: o for o in shop.ok("POST", ORDERS, {"create_time_lt": middle}, query={"page_size": "100"})[
        "orders"]}
    statuses = Counter(o["status"] for o in later.values())
    assert statuses["COMPLETED"] > 0 and set(statuses) <= {"COMPLETED", "CANCELLED", "DEDUCTED"}
    changed = [o for o in early["orders"] if later[o["id"]]["status"] != o["status"]]
    assert changed
    refunded = [s for o in later.values() for s in o["skus"] if s["refunded_quantity"]]
    for s in refunded:
        actual = float(s["price"]["amount"]) * (s["quantity"] - s["refunded_quantity"])
        assert float(s["actual_commission_base"]["amount"]) == pytest.approx(actual, abs=0.01)
    assert sb.stats()["orders"] >= len(everything)
    sb.configure(orders_sort="asc")
    oldest = shop.ok("POST", ORDERS, {}, query={"page_size": "100"})["orders"]
    assert [o["create_time"] for o in oldest] == sorted(o["create_time"] for o in oldest)
    assert oldest[0]["create_time"] == min(o["create_time"] for o in everything)


def test_orders_search_checks_its_parameters(shop):
    assert shop.answer("POST", ORDERS, {})["code"] == 98001004  # page_size is required
    assert shop.answer("POST", ORDERS, {}, query={"page_size": "0"})["code"] == 98001004
    assert shop.answer("POST", ORDERS, {}, query={"page_size": "101"})["code"] == 98001004
    assert shop.answer("POST", ORDERS, {"create_time_ge": "yesterday"}, query={"page_size": "10"})["code"] == 98001004
    assert shop.answer("POST", ORDERS, {}, query={"page_size": "10", "page_token": "nonsense"})["code"] == 98001004
    assert shop.ok("POST", ORDERS, {}, query={"page_size": "1"}) == {"orders": [], "next_page_token": "",
                                                                     "total_count": 0}


def test_the_truth_is_exposed_to_tests_and_benchmarks(sb):
    market = sb.state.market
    c = CREATORS[5]
    p = market.propensity(c)
    assert 0 < p < 1 and market.propensity(legacy_id(5)) == p
    assert market.propensity(c, commission_rate=3000) > p  # more commission, more showcases
    assert 0 < market.expected_gmv(c, days=7) < market.expected_gmv(c, days=28)
    truth = httpx.get(f"{sb.url}/_sandbox/creators/{c}").json()
    assert truth["showcase_chance"] == pytest.approx(p) and truth["creator_user_id"] == legacy_id(5)
    assert httpx.get(f"{sb.url}/_sandbox/creators/nobody").status_code == 404


# --- marketplace -------------------------------------------------------------------------------------------------
def test_marketplace_search_pages_with_its_search_key(shop):
    assert shop.answer("POST", MARKET, {})["code"] == 98001004  # page_size is required
    assert shop.answer("POST", MARKET, {}, query={"page_size": "10"})["code"] == 98001004
    first = shop.ok("POST", MARKET, {}, query={"page_size": "12"})
    assert len(first["creators"]) == 12 and first["search_key"] and first["next_page_token"]
    c = first["creators"][0]
    assert set(c) >= {"creator_open_id", "username", "nickname", "follower_count", "category_ids",
                      "avg_ec_video_view_count", "avg_ec_live_uv", "units_sold_range", "top_follower_demographics"}
    assert ("gmv" in c) != ("gmv_range" in c)
    assert index_of_open_id(c["creator_open_id"]) is not None
    token = first["next_page_token"]
    second = shop.ok("POST", MARKET, {"search_key": first["search_key"]}, query={"page_size": "12",
                                                                                   "page_token": token})
    again = shop.ok("POST", MARKET, {"search_key": first["search_key"]}, query={"page_size": "12",
                                                                                  "page_token": token})
    assert second["creators"] == again["creators"]
    assert not {x["creator_open_id"] for x in second["creators"]} & {x["creator_open_id"] for x in first["creators"]}
    anew = shop.ok("POST", MARKET, {}, query={"page_size": "12", "page_token": token})
    assert [x["creator_open_id"] for x in anew["creators"]] != [x["creator_open_id"] for x in second["creators"]]
    assert anew["search_key"] != first["search_key"]


def test_marketplace_filters(shop):
    body = {"follower_demographics": {"count_range": {"count_ge": 10_000, "count_le": 50_000}},
            "gmv_ranges": ["GMV_RANGE_100_1000", "GMV_RANGE_1000_10000"],
            "units_sold_ranges": ["UNITS_SOLD_RANGE_10_100", "UNITS_SOLD_RANGE_100_1000"]}
    found = shop.ok("POST", MARKET, body, query={"page_size": "20"})["creators"]
    assert len(found) == 20
    for c in found:
        assert 10_000 <= c["follower_count"] <= 50_000
        if "gmv" in c:
            assert 100 <= float(c["gmv"]["amount"]) <= 10_000
        assert 10 <= c["units_sold_range"]["minimum_amount"] <= 1000
    keyword = found[0]["username"]
    by_name = shop.ok("POST", MARKET, {"keyword": keyword}, query={"page_size": "12"})["creators"]
    assert [c["username"] for c in by_name] == [keyword]
    for bad in ({"gmv_ranges": ["GMV_RANGE_ALL"]}, {"follower_demographics": {"count_range": {"count_ge": -1}}}):
        assert shop.answer("POST", MARKET, bad, query={"page_size": "12"})["code"] == 98001004


def test_creator_performance_by_open_id(shop):
    perf = shop.ok("GET", f"/affiliate_seller/202508/marketplace_creators/{CREATORS[7]}")["creator"]
    assert set(perf) >= {"username", "follower_count", "category_ids", "brand_collaboration_count",
                         "ec_video_engagement_rate", "category_gmv_distribution", "content_gmv_distribution"}
    assert ("gmv" in perf) != ("gmv_range" in perf)
    assert shop.answer("GET", "/affiliate_seller/202508/marketplace_creators/uACafQAAAABnobody")["code"] == 16901008
    assert shop.answer("GET", f"/affiliate_seller/202508/marketplace_creators/{legacy_id(7)}")["code"] == 98001004


# --- tokens ------------------------------------------------------------------------------------------------------
def test_an_access_token_expires_after_seven_simulated_days_and_a_refresh_rotates_both(sb, shop):
    sb.advance(days=6.9)
    assert shop.answer("GET", SHOPS, cipher=False)["code"] == 0
    sb.advance(days=0.2)
    assert shop.answer("GET", SHOPS, cipher=False)["code"] == 105002
    doc = shop.refresh("sandbox-refresh-token")
    assert doc["code"] == 0
    data = doc["data"]
    assert set(data) >= {"access_token", "access_token_expire_in", "refresh_token", "refresh_token_expire_in"}
    assert data["access_token_expire_in"] > sb.state.now() + 6 * 86400
    assert data["refresh_token"] != "sandbox-refresh-token"
    fresh = Shop(sb.url, token=data["access_token"])
    assert [s["cipher"] for s in fresh.ok("GET", SHOPS, cipher=False)["shops"]] == [CIPHER]  # the cipher stays
    assert fresh.create(CREATORS[:1])["code"] == 0
    assert shop.refresh("sandbox-refresh-token")["code"] == 36004005  # used up: rotation
    second = shop.refresh(data["refresh_token"])
    assert second["code"] == 0 and second["data"]["access_token"] != data["access_token"]
    stats = sb.stats()
    assert stats["refreshes"] == 2 and stats["refresh_failures"] == 1 and stats["token_expired"] == 1


def test_refresh_refusals(sb, shop):
    assert shop.refresh("sandbox-refresh-token", app_secret="wrong")["code"] == 36009004
    assert shop.refresh("sandbox-refresh-token", grant_type="authorized_code")["code"] == 98001004
    assert shop.refresh("TTP_never-issued")["code"] == 36004005
    sb.configure(refresh_token_lifetime_s=3600)
    sb.advance(seconds=7200)
    assert shop.refresh("sandbox-refresh-token")["code"] == 36004001
    assert sb.stats()["refreshes"] == 0 and sb.stats()["refresh_failures"] == 4


def test_expiry_after_n_requests_revocation_and_a_grace_for_a_reused_refresh_token(sb, shop):
    sb.configure(token_expires_after=2)
    assert [shop.answer("GET", SHOPS, cipher=False)["code"] for _ in range(3)] == [0, 0, 105002]
    sb.configure(refresh_grace_s=30, revoke_on_refresh=True)
    first = shop.refresh("sandbox-refresh-token")["data"]
    again = shop.refresh("sandbox-refresh-token")["data"]  # a second process, within the grace: the same pair
    assert again == first
    new = Shop(sb.url, token=first["access_token"])
    assert new.answer("GET", SHOPS, cipher=False)["code"] == 0
    newer = shop.refresh(first["refresh_token"])["data"]
    assert new.answer("GET", SHOPS, cipher=False)["code"] == 105002  # revoked by the refresh
    assert Shop(sb.url, token=newer["access_token"]).answer("GET", SHOPS, cipher=False)["code"] == 0


def test_expire_tokens_admin_route(sb, shop):
    assert httpx.post(f"{sb.url}/_sandbox/expire_tokens").json()["expired"] >= 1
    assert shop.answer("GET", SHOPS, cipher=False)["code"] == 105002
    assert shop.refresh("sandbox-refresh-token")["code"] == 0


def test_the_accepted_credentials_carry_refresh_tokens():
    env = {"TRENDIO_GLOW_APP_KEY": "k", "TRENDIO_GLOW_APP_SECRET": "s", "TRENDIO_GLOW_ACCESS_TOKEN": "t",
           "TRENDIO_GLOW_SHOP_CIPHER": "c", "TRENDIO_GLOW_REFRESH_TOKEN": "r-glow"}
    found = sandbox_accepted_credentials(env)
    assert found[0].refresh_token == "sandbox-refresh-token"
    glow = next(c for c in found if c.app_key == "k")
    assert glow.refresh_token == "r-glow" and "r-glow" not in repr(glow) and "r-glow" in glow.secrets
    assert credentials_for("glow", env).refresh_token == "r-glow"
    assert credentials_for("other", {**env, "TRENDIO_REFRESH_TOKEN": "r-all"}, allow_sandbox_defaults=True
                           ).refresh_token == "r-all"
    assert credentials_for(None, {}, allow_sandbox_defaults=True).refresh_token == "sandbox-refresh-token"
    with SandboxServer(SandboxSettings(), credentials=found) as server:
        shop = Shop(server.url, app_key="k", secret="s", token="t", cipher="c")
        assert shop.refresh("r-glow")["code"] == 0


# --- the 2026 endpoints and their absence ---------------------------------------------------------------------------
def test_conflicts_check(sb, shop):
    doc = shop.create(CREATORS[:2], offer=((PRODUCT, 1500), ("2", 1500)))
    cid = doc["data"]["target_collaboration"]["id"]
    data = shop.ok("POST", CONFLICTS, {"creator_open_id_list": [CREATORS[1], CREATORS[5]],
                                       "product_id_list": ["2", "3"]})
    assert data == {"has_conflict": True, "conflict_items": [
        {"creator_open_id": CREATORS[1], "product_id": "2", "existing_collaboration_id": cid}]}
    assert shop.ok("POST", CONFLICTS, {"creator_open_id_list": [CREATORS[5]], "product_id_list": ["2"]}) == {
        "has_conflict": False, "conflict_items": []}
    assert shop.answer("POST", CONFLICTS, {"creator_open_id_list": [], "product_id_list": ["2"]})["code"] == 98001004


def test_outreach_quota_nested_as_the_generated_model_or_flat(sb, shop):
    nested = shop.ok("GET", QUOTA)
    quota = nested["data"]
    assert set(quota) >= {"unlimited", "gmv_tier", "quota_sum", "quota_use", "start_time", "end_time",
                          "reached_max_follower_cnt", "new_connect_count", "quota_details"}
    assert int(quota["end_time"]) - int(quota["start_time"]) == 7 * 86400
    assert quota["quota_sum"] == "5000" and quota["quota_details"][0]["quota_period_sum"] == 5000
    sb.configure(outreach_quota_nested=False)
    assert shop.ok("GET", QUOTA)["quota_sum"] == "5000"


def test_outreach_eligibility_check(sb, shop):
    sb.configure(ineligible_creators={CREATORS[3]: 16024018}, max_follower_count=20_000)
    assert shop.answer("POST", ELIGIBILITY, {"creator_infos": []})["code"] == 98001004
    too_many = {"creator_infos": [{"creator_open_id": c} for c in CREATORS[:101]]}
    assert shop.answer("POST", ELIGIBILITY, too_many)["code"] == 98001004
    twice = {"creator_infos": [{"creator_open_id": CREATORS[0]}] * 2}
    assert shop.answer("POST", ELIGIBILITY, twice)["code"] == 98001004
    shop.create([c for c in CREATORS[:3] if sb.state.market.get(c).followers <= 20_000])
    data = shop.ok("POST", ELIGIBILITY, {"creator_infos": [{"creator_open_id": c} for c in CREATORS[:100]]})
    results = data["creator_eligibility_results"]
    assert [r["creator_open_id"] for r in results] == CREATORS[:100]
    for r, c in zip(results, CREATORS[:100]):
        truth = sb.state.market.get(c)
        assert set(r) == {"creator_open_id", "creator_level", "is_blocked", "is_connected",
                          "is_creator_follower_count_threshold_met", "is_creator_level_quota_available", "is_paired"}
        assert r["creator_level"] == truth.level
        assert r["is_creator_follower_count_threshold_met"] == (truth.followers <= 20_000)
    assert results[3]["is_blocked"] is True and results[4]["is_blocked"] is False
    assert [r["is_paired"] for r in results[:3]] == [sb.state.market.get(c).followers <= 20_000
                                                     for c in CREATORS[:3]]
    assert data["is_batch_quota_consumable"] is True and data["ineligible_creator_levels"] == []


@pytest.mark.parametrize("answer, code", [("path", 36009009), ("version", 36009014)])
def test_the_2026_endpoints_switch_off(sb, shop, answer, code):
    sb.configure(disabled_endpoints=["check_conflicts", "outreach_quota", "check_eligibility"],
                 disabled_answer=answer)
    for method, path, body in (("POST", CONFLICTS, {"creator_open_id_list": [CREATORS[0]], "product_id_list": ["1"]}),
                               ("GET", QUOTA, None),
                               ("POST", ELIGIBILITY, {"creator_infos": [{"creator_open_id": CREATORS[0]}]})):
        r = shop.call(method, path, body)
        assert r.status_code == 404 and r.json()["code"] == code
    sb.configure(disabled_endpoints=["create_collaboration/202405"], path_error_http_status=200)
    legacy = shop.create([legacy_id(0)], legacy=True)
    assert legacy["http_status"] == 200 and legacy["code"] == code
    assert shop.create(CREATORS[:1])["code"] == 0


# --- rate limit, overload, daily quota --------------------------------------------------------------------------------
@pytest.mark.parametrize("envelope, retry_after", [(True, True), (False, False), (True, False)])
def test_a_burst_above_fifty_a_second_per_api_gets_429s(envelope, retry_after):
    settings = SandboxSettings(rate_limit_envelope=envelope, retry_after=retry_after)
    with SandboxServer(settings) as server:
        shop = Shop(server.url)
        server.configure(rate_window_s=3600.0)  # a window no test machine can outrun: the count alone decides
        answers = [shop.call("POST", SEARCH, {"collaboration_status": "VALID"}) for _ in range(60)]
        limited = [r for r in answers if r.status_code == 429]
        assert len(limited) == 10 and all(r.status_code == 200 for r in answers[:50])
        for r in limited:
            assert ("Retry-After" in r.headers) == retry_after
            if envelope:
                assert r.json()["code"] == 36009002
            else:
                assert r.content == b""
        assert shop.call("GET", SHOPS, cipher=False).status_code == 200  # another API has its own 50
        stats = server.stats()
        assert stats["http_429"] == 10 and stats["max_admitted_in_window"] == 50
        assert stats["max_requests_in_window"] == 60


@pytest.mark.parametrize("scope, limited", [("api", 0), ("shop", 20), ("app", 20)])
def test_the_rate_limit_scope(scope, limited):
    with SandboxServer(SandboxSettings(rate_scope=scope, rate_window_s=3600.0)) as server:
        shop = Shop(server.url)
        codes = [shop.call("POST", SEARCH, {"collaboration_status": "VALID"}).status_code for _ in range(35)]
        codes += [shop.call("GET", SHOPS, cipher=False).status_code for _ in range(35)]
        assert codes.count(429) == limited


@pytest.mark.parametrize("envelope", [True, False])
def test_overload_answers_503_with_or_without_an_envelope(sb, shop, envelope):
    sb.configure(overload_rate=1.0, overload_envelope=envelope)
    r = shop.call("POST", CREATE, create_body(CREATORS[:1]))
    assert r.status_code == 503
    if envelope:
        assert r.json()["code"] == 36009003
    else:
        assert r.content == b""
    assert sb.stats()["invited_pairs"] == 0 and sb.stats()["http_503"] == 1


@pytest.mark.parametrize("status", [200, 429])
def test_the_daily_quota_counts_refused_calls_and_then_answers_45101004(status):
    with SandboxServer(SandboxSettings(daily_quota=5, daily_quota_http_status=status)) as server:
        shop = Shop(server.url)
        for _ in range(3):
            assert shop.answer("POST", SEARCH, {"collaboration_status": "VALID"}, secret="bad")["code"] == 106001
        codes = [shop.answer("POST", SEARCH, {"collaboration_status": "VALID"}) for _ in range(3)]
        assert [c["code"] for c in codes] == [0, 0, 45101004] and codes[-1]["http_status"] == status
        day = next(iter(server.stats()["quota_used"]))
        assert server.stats()["quota_used"][day] == 6
        server.advance(days=1)
        server.configure(token_lifetime_s=0)
        assert shop.answer("POST", SEARCH, {"collaboration_status": "VALID"})["code"] == 0  # a new quota day


# --- faults, lost answers, scripts ------------------------------------------------------------------------------
def test_transient_faults_come_in_every_form():
    with SandboxServer(SandboxSettings(fault_rate=1.0, seed=3)) as server:
        shop = Shop(server.url)
        forms = set()
        for _ in range(40):
            try:
                r = shop.call("POST", SEARCH, {"collaboration_status": "VALID"})
            except httpx.TransportError:
                forms.add("reset")
                continue
            try:
                forms.add((r.status_code, r.json()["code"]))
            except ValueError:
                forms.add((r.status_code, None))
        assert {(200, 36009003), (500, 36009007), (502, None), (503, None), (200, None), "reset"} <= forms


def test_latency_and_jitter_delay_every_answer(sb, shop):
    sb.configure(latency_ms=150, jitter_ms=50)
    started = time.monotonic()
    assert shop.answer("GET", SHOPS, cipher=False)["code"] == 0
    assert time.monotonic() - started >= 0.1


def test_a_lost_create_answer_after_the_work_can_be_found_by_its_name(sb, shop):
    sb.configure(lost_rate=1.0)
    with pytest.raises(httpx.TransportError):
        shop.call("POST", CREATE, create_body(CREATORS[:2], name="glow-b7"))
    assert sb.stats()["invited_pairs"] == 2 and sb.stats()["lost_responses"] == 1
    found = shop.search(search_param={"keyword_type": "TARGET_COLLABORATION_NAME", "keyword": "glow-b7"})
    [collab] = found["target_collaborations"]
    creators = shop.detail(collab["id"])["data"]["target_collaboration"]["creators"]
    assert [c["creator_open_id"] for c in creators] == CREATORS[:2]


def test_scripted_answers_come_in_order_after_the_signature_check(sb, shop):
    sb.script("create_collaboration", [
        {"code": 36009033, "message": "ip not allowed"},
        {"http_status": 429, "envelope": False, "headers": {"Retry-After": "2"}},
        {"http_status": 503, "body": "<html>busy</html>"},
        {"code": 36009003, "apply": True},
        {"lost": True, "apply": True},
        {"code": 0, "data": {"target_collaboration": {"id": "1"}}, "delay_ms": 50},
    ])
    assert shop.answer("POST", CREATE, create_body(CREATORS[:1]), secret="bad")["code"] == 106001  # not consumed
    first = shop.create(CREATORS[:1])
    assert (first["code"], first["message"], first["http_status"]) == (36009033, "ip not allowed", 200)
    second = shop.call("POST", CREATE, create_body(CREATORS[:1]))
    assert second.status_code == 429 and second.content == b"" and second.headers["Retry-After"] == "2"
    third = shop.call("POST", CREATE, create_body(CREATORS[:1]))
    assert third.status_code == 503 and third.text == "<html>busy</html>"
    assert sb.stats()["invited_pairs"] == 0
    fourth = shop.create(CREATORS[:1])  # the work was done, the answer says otherwise
    assert fourth["code"] == 36009003 and sb.stats()["invited_pairs"] == 1
    with pytest.raises(httpx.TransportError):
        shop.call("POST", CREATE, create_body(CREATORS[1:2]))
    assert sb.stats()["invited_pairs"] == 2
    started = time.monotonic()
    assert shop.create(CREATORS[2:3])["data"] == {"target_collaboration": {"id": "1"}}
    assert time.monotonic() - started >= 0.05
    assert sb.stats()["invited_pairs"] == 2 and sb.stats()["scripted"] == 6
    assert shop.create(CREATORS[2:3])["code"] == 0  # the script is spent: real answers again
    sb.script("create_collaboration/202405", [{"code": 16024020}])
    assert shop.create(CREATORS[3:4])["code"] == 0
    assert shop.create([legacy_id(4)], legacy=True)["code"] == 16024020
    for bad in ({"endpoint": "nope", "answers": []}, {"endpoint": "get_shops", "answers": [{"cod": 1}]},
                {"endpoint": "get_shops", "answers": [{"code": "1"}]},
                {"endpoint": "get_shops", "answers": [{"http_status": 99}]}):
        assert httpx.post(f"{sb.url}/_sandbox/script", json=bad).status_code == 400
    assert httpx.get(f"{sb.url}/_sandbox/script").json() == {}
    codes = sb.stats()["by_endpoint_code"]["create_collaboration"]
    assert codes["36009033"] == 1 and codes["http429"] == 1 and codes["16024020"] == 1 and codes["lost"] == 1


# --- observability and files ------------------------------------------------------------------------------------
def test_the_request_log_is_jsonl(tmp_path):
    log = tmp_path / "requests.jsonl"
    with SandboxServer(SandboxSettings(), log_path=str(log)) as server:
        shop = Shop(server.url)
        shop.create(CREATORS[:3])
        shop.search()
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert [x["endpoint"] for x in lines] == ["create_collaboration", "search_collaborations"]
    assert lines[0]["pairs"] == 3 and lines[0]["code"] == 0 and lines[0]["shop"] == CIPHER
    assert set(lines[0]) >= {"t", "endpoint", "version", "shop", "http_status", "code", "lost", "pairs"}


def test_settings_are_checked_and_reset_forgets_everything_else(sb, shop):
    for bad in ({"nope": 1}, {"rate_scope": "galaxy"}, {"rate_limit": "many"}, {"conflict_code": 7}):
        assert httpx.post(f"{sb.url}/_sandbox/settings", json=bad).status_code == 400
    assert sb.configure(rate_limit=20)["rate_limit"] == 20
    shop.create(CREATORS[:1])
    httpx.post(f"{sb.url}/_sandbox/reset").raise_for_status()
    assert sb.stats()["invited_pairs"] == 0 and sb.stats()["settings"]["rate_limit"] == 20
    assert shop.create(CREATORS[:1])["code"] == 0


def test_every_setting_endpoint_and_admin_route_is_documented():
    doc = state.__doc__ or ""
    assert [f.name for f in fields(SandboxSettings) if f.name not in doc] == []
    assert [e.template for e in state.ENDPOINTS if e.template.split("{")[0] not in doc] == []
    served = app.create_app(state.SandboxState(SandboxSettings(), [])).routes
    admin = [r.path.split("{")[0] for r in served if r.path.startswith("/_sandbox")]
    assert len(admin) >= 8
    assert all(route in doc for route in admin)


def test_write_creators_file_names_creators_by_open_id(tmp_path):
    path = tmp_path / "creators.csv"
    write_creators_file(str(path), 5, start=1000)
    rows = list(csv.DictReader(path.open()))
    assert list(rows[0]) == ["creator_id", "creator_user_id", "handle", "followers", "gmv_30d", "category",
                             "engagement_rate", "last_active"]
    assert [index_of_open_id(r["creator_id"]) for r in rows] == list(range(1000, 1005))
    assert [r["creator_user_id"] for r in rows] == [legacy_id(i) for i in range(1000, 1005)]
    for r in rows:
        assert 40 <= len(r["creator_id"]) <= 60 and set(r["creator_id"]) <= set(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    again = tmp_path / "again.csv"
    write_creators_file(str(again), 5, start=1000)
    assert again.read_text() == path.read_text()
    with SandboxServer(SandboxSettings()) as server:
        assert Shop(server.url).create([r["creator_id"] for r in rows])["code"] == 0


# --- the command ----------------------------------------------------------------------------------------------
def test_trendio_sandbox_serves_with_its_options_and_refuses_bad_ones(tmp_path):
    for args, words in ((["--set", "nope=1"], "unknown sandbox setting"),
                        (["--rate-scope", "galaxy"], "rate_scope must be one of"),
                        (["--set", "conflict_code"], "NAME=JSON"),
                        (["--fault-rate", "2"], "between 0 and 1")):
        proc = run_cli("sandbox", *args, timeout=60)
        assert proc.returncode == 2 and words in proc.stderr, (args, proc.stderr)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = tmp_path / "log.jsonl"
    server = subprocess.Popen(
        [sys.executable, "-m", "trendio_cli", "sandbox", "--port", str(port), "--conflict-code", "16024022",
         "--disable", "check_eligibility", "--set", 'sensitive_words=["spam"]', "--log", str(log)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                settings = httpx.get(f"{url}/_sandbox/settings", timeout=1).json()
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and server.poll() is None
                time.sleep(0.1)
        assert settings["conflict_code"] == 16024022 and settings["sensitive_words"] == ["spam"]
        assert settings["disabled_endpoints"] == ["check_eligibility"] and settings["rate_scope"] == "api"
        shop = Shop(url)
        assert shop.create(CREATORS[:1], message="no spam please")["code"] == 50001703
        assert shop.create(CREATORS[:1])["code"] == 0
        assert shop.create(CREATORS[:1])["code"] == 16024022
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert [json.loads(x)["code"] for x in log.read_text().splitlines()] == [50001703, 0, 16024022]


def test_the_rate_window_counts_arrivals_in_stamp_order_whatever_order_they_are_read_in():
    """Requests are stamped on arrival and counted once their body is read, not always in order (on a busy
    machine, up to tens of ms apart): neither the 429s nor the most-in-a-second figure may count one twice
    or keep one that left the window."""
    import random

    from trendio_cli.api.credentials import sandbox_accepted_credentials
    from trendio_cli.sandbox.state import MaxWindow, SandboxState

    rng = random.Random(5)
    stamps = [i * 0.0205 for i in range(200)]  # 50 in any 1.025 s: never 51 in a second
    read_order = sorted(stamps, key=lambda t: t + rng.uniform(0, 0.05))
    state = SandboxState(SandboxSettings(ineligible_permille=0), sandbox_accepted_credentials())
    creds = sandbox_accepted_credentials()[0]
    for t in read_order:  # (unsigned: the rate limit is the first check, before the credentials')
        _, answer = state.handle("POST", "/affiliate_seller/202508/target_collaborations/search",
                                 {"app_key": creds.app_key}, {"x-tts-access-token": creds.access_token}, b"{}",
                                 arrived=t)
        assert answer.status != 429, t
    assert state.snapshot()["max_requests_in_window"] == 49
    window = MaxWindow(1.0)
    for t in sorted(stamps[:60], key=lambda t: -t):  # all of them backwards
        window.add(t)
    assert window.max == 49
