"""Every API path and version the tool calls, in one table (TikTok Shop Partner API reference, 202508 specs;
the 2026 endpoints from the Partner API's generated client)."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_BASE_URL = "https://open-api.tiktokglobalshop.com"
DEFAULT_AUTH_URL = "https://auth.tiktok-shops.com"


@dataclass(frozen=True)
class Endpoint:
    name: str
    method: str
    path: str  # may hold `{id}`-style placeholders
    version: str
    shop_scoped: bool = True  # signed with the shop's cipher (all but the authorized-shops list)
    probe: bool = False  # a 2026 endpoint a platform may not answer yet: probed once, then used or skipped
    mutating: bool = False  # may change state on the platform (an uncertain answer must be reconciled)

    def render(self, **params: str) -> str:
        return self.path.format(**params)


# Invitations: the 202508 create names creators by Creator Open ID; the 202405 create still takes the plain
# numeric ids ("for the time being"), for shops that use them (campaign `api: legacy-ids`).
CREATE_COLLABORATION = Endpoint(
    "create_collaboration", "POST", "/affiliate_seller/202508/target_collaborations", "202508", mutating=True)
CREATE_COLLABORATION_LEGACY = Endpoint(
    "create_collaboration", "POST", "/affiliate_seller/202405/target_collaborations", "202405", mutating=True)
SEARCH_COLLABORATIONS = Endpoint(
    "search_collaborations", "POST", "/affiliate_seller/202508/target_collaborations/search", "202508")
GET_COLLABORATION = Endpoint(
    "get_collaboration", "GET", "/affiliate_seller/202508/target_collaborations/{id}", "202508")
SEARCH_ORDERS = Endpoint("search_orders", "POST", "/affiliate_seller/202410/orders/search", "202410")
SEARCH_CREATORS = Endpoint(
    "search_creators", "POST", "/affiliate_seller/202508/marketplace_creators/search", "202508")
GET_CREATOR = Endpoint(
    "get_creator", "GET", "/affiliate_seller/202508/marketplace_creators/{creator_open_id}", "202508")
AUTHORIZED_SHOPS = Endpoint("authorized_shops", "GET", "/authorization/202309/shops", "202309", shop_scoped=False)
# 2026: in the Partner API's generated client, not in the reference of December 2025.
CHECK_CONFLICTS = Endpoint(
    "check_conflicts", "POST", "/affiliate_seller/202605/target_collaborations/conflicts/check", "202605", probe=True)
OUTREACH_QUOTA = Endpoint("outreach_quota", "GET", "/affiliate_seller/202607/creator_outreach/quota", "202607",
                          probe=True)
CHECK_ELIGIBILITY = Endpoint(
    "check_eligibility", "POST", "/affiliate_seller/202610/creator_outreach/eligibility/check", "202610", probe=True)
# On the auth host, not signed (the app secret travels in the query, as documented).
TOKEN_REFRESH_PATH = "/api/v2/token/refresh"

ENDPOINTS: dict[str, Endpoint] = {
    e.name: e
    for e in (
        CREATE_COLLABORATION,
        SEARCH_COLLABORATIONS,
        GET_COLLABORATION,
        SEARCH_ORDERS,
        SEARCH_CREATORS,
        GET_CREATOR,
        AUTHORIZED_SHOPS,
        CHECK_CONFLICTS,
        OUTREACH_QUOTA,
        CHECK_ELIGIBILITY,
    )
}
# What each campaign `api:` setting creates with, and the create body's field for its creator ids.
CREATE_BY_API = {"open-ids": CREATE_COLLABORATION, "legacy-ids": CREATE_COLLABORATION_LEGACY}
CREATOR_IDS_FIELD = {"202508": "creator_user_open_ids", "202405": "creator_user_ids"}

MAX_CREATORS_PER_CREATE = 50
MAX_PRODUCTS_PER_CREATE = 100
MAX_CREATORS_PER_ELIGIBILITY_CHECK = 100
COLLABORATION_PAGE_SIZES = (20, 50, 100)
CREATOR_PAGE_SIZES = (12, 20)
MAX_ORDER_PAGE_SIZE = 100
# Collaboration statuses the search takes (`collaboration_status` is required): VALID = ONGOING + EXPIRING.
COLLABORATION_STATUSES = ("ONGOING", "EXPIRING", "VALID", "CANCELING", "COMPLETED")
