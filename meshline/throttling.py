"""API rate limiting: per API key, not per address.

One tool behind a NAT or a proxy must not starve another tenant, and one key spread
over many machines must not escape its limit, so the key is what is counted. Counts live
in the default cache: with several web processes set MESHLINE_CACHE_URL (Redis), or each
process counts on its own and the effective limit is multiplied by their number.
"""

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle

from meshline.models import ApiKey


class ApiKeyRateThrottle(SimpleRateThrottle):
    """At most MESHLINE_API_RATE requests per key; over it, 429 with Retry-After.

    Requests without a valid key are refused by authentication before throttling runs.
    The count is read and written back without a lock (DRF's sliding window): concurrent
    requests may slip a few over the limit, which is fine for fairness between tools.
    """

    scope = "api_key"

    def get_rate(self) -> str:
        # DRF builds a throttle per request and asks this then; reading settings here, not
        # DRF's THROTTLE_RATES (frozen at import), lets override_settings change the rate.
        return settings.MESHLINE_API_RATE

    def get_cache_key(self, request, view) -> str | None:
        if not isinstance(request.auth, ApiKey):
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.auth.prefix}
