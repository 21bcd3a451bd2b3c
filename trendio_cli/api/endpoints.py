"""Every API path and version the tool calls, in one table."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_BASE_URL = "https://open-api.tiktokglobalshop.com"


@dataclass(frozen=True)
class Endpoint:
    name: str
    method: str
    path: str  # may hold `{id}`-style placeholders
    version: str

    def render(self, **params: str) -> str:
        return self.path.format(**params)


CREATE_COLLABORATION = Endpoint(
    "create_collaboration", "POST", "/affiliate_seller/202405/target_collaborations", "202405"
)
# The 202508 version names creators `creator_user_open_ids`; the client picks the field from the version.
CREATE_COLLABORATION_202508 = Endpoint(
    "create_collaboration", "POST", "/affiliate_seller/202508/target_collaborations", "202508"
)
CHECK_CONFLICTS = Endpoint(
    "check_conflicts", "POST", "/affiliate_seller/202605/target_collaborations/conflicts/check", "202605"
)
SEARCH_COLLABORATIONS = Endpoint(
    "search_collaborations", "POST", "/affiliate_seller/202409/target_collaborations/search", "202409"
)
GET_COLLABORATION = Endpoint(
    "get_collaboration", "GET", "/affiliate_seller/202412/target_collaborations/{id}", "202412"
)
SEARCH_CREATORS = Endpoint(
    "search_creators", "POST", "/affiliate_seller/202406/marketplace_creators/search", "202406"
)
GET_CREATOR = Endpoint(
    "get_creator", "GET", "/affiliate_seller/202406/marketplace_creators/{creator_user_id}", "202406"
)

ENDPOINTS: dict[str, Endpoint] = {
    e.name: e
    for e in (
        CREATE_COLLABORATION,
        CHECK_CONFLICTS,
        SEARCH_COLLABORATIONS,
        GET_COLLABORATION,
        SEARCH_CREATORS,
        GET_CREATOR,
    )
}
CREATE_VERSIONS: dict[str, Endpoint] = {
    "202405": CREATE_COLLABORATION,
    "202508": CREATE_COLLABORATION_202508,
}

MAX_CREATORS_PER_CREATE = 50
MAX_PRODUCTS_PER_CREATE = 100
COLLABORATION_PAGE_SIZES = (20, 50, 100)
CREATOR_PAGE_SIZES = (12, 20)
