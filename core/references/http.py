"""A reference source over HTTP (production): the JKN master file or Dukcapil behind a JSON API.

``GET {base_url}/nik/{nik}`` with the header ``X-API-Key``; the answer is described in
``docs/verification.md``:

* 200 with ``{"nik", "name", "birth_date": "YYYY-MM-DD", "sex": "L"|"P", "card_number"?}``: the record;
* 404: the source does not know the NIK (``None``);
* anything else (5xx, 401/403, a malformed body), a timeout or a connection error:
  ``Unavailable("reference", source=..., detail=...)``.

The per-request timeout here is the adapter's own bound; the verification service also bounds each
source with ``ctx.reference_timeout``, whichever is shorter wins. The URL carries the NIK, so logs
must mask it (``api.logging`` masks NIKs in every line, httpx's request lines included).
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

from core.domain.errors import Unavailable
from core.domain.reference import ReferenceRecord, Source, sex_code

if TYPE_CHECKING:
    import httpx  # imported on first use: httpx is ~5 MB of a process that may never call a reference over HTTP

__all__ = ["HttpReferenceSource"]


class HttpReferenceSource:
    def __init__(
        self,
        source: Source,
        base_url: str,
        api_key: str | None = None,
        timeout: float = 3.0,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.source = source
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._api_key = api_key
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    def __repr__(self) -> str:  # never the API key
        return f"HttpReferenceSource({self.source.value}, {self.base_url!r})"

    def _http(self) -> httpx.AsyncClient:
        # Built on first use (inside the running loop), reused for keep-alive; closed by aclose().
        if self._client is None:
            import httpx

            headers = {"Accept": "application/json"}
            if self._api_key:
                headers["X-API-Key"] = self._api_key
            self._client = httpx.AsyncClient(
                base_url=self.base_url,
                headers=headers,
                timeout=httpx.Timeout(self.timeout),
                transport=self._transport,
                follow_redirects=False,
            )
        return self._client

    def _unavailable(self, detail: str) -> Unavailable:
        return Unavailable("reference", source=self.source.value, detail=detail)

    async def fetch(self, nik: str) -> ReferenceRecord | None:
        if not nik.isdigit():  # only digits ever go into the path
            raise ValueError("nik must be digits")
        import httpx

        try:
            response = await self._http().get(f"/nik/{nik}")
        except httpx.TimeoutException as exc:
            raise self._unavailable("timeout") from exc
        except httpx.HTTPError as exc:  # connection refused, reset, protocol errors
            raise self._unavailable("connection") from exc
        if response.status_code == httpx.codes.NOT_FOUND:
            return None
        if response.status_code != httpx.codes.OK:
            raise self._unavailable(f"http_{response.status_code}")
        try:
            return _record(response.json(), self.source)
        except (ValueError, TypeError, KeyError) as exc:
            raise self._unavailable("bad_response") from exc

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _record(body: Any, source: Source) -> ReferenceRecord:
    if not isinstance(body, dict):
        raise TypeError("the body is not a JSON object")
    card = body.get("card_number") if source is Source.JKN else None
    for key in ("nik", "name", "birth_date", "sex"):
        if not isinstance(body[key], str):
            raise TypeError(f"{key} must be a string")
    if card is not None and not isinstance(card, str):
        raise TypeError("card_number must be a string")  # a number would have lost its leading zeros
    return ReferenceRecord(
        nik=body["nik"],
        name=body["name"],
        birth_date=date.fromisoformat(body["birth_date"]),
        sex=sex_code(body["sex"]),
        card_number=card,
    )
