"""HubSpot CRM v3: contacts (default), companies or deals.

API docs: https://developers.hubspot.com/docs/api/crm/understanding-the-crm (objects,
search, list, batch read) and https://developers.hubspot.com/docs/api/usage-details
(limits). Client: hubspot-api-client, its ``host`` pointed at ``base_url``.

Auth: a private app's access token (``Authorization: Bearer``), or OAuth with a refresh
token, refreshed before ``expires_in`` runs out. Scope: ``crm.objects.<object>.read``.

Cursor: ``lastmodifieddate`` (contacts) or ``hs_lastmodifieddate`` (companies, deals),
read through the search endpoint with epoch-millisecond filters below ``now - lag``,
windowed under its 10,000-result cap; the first sync and the ID sweep use the list
endpoint instead. Cursor ids are the record ids zero-padded, so they compare as numbers.

Deletions: the ``archived=true`` list (records archived since the last check, by
``archivedAt``), ids merged into survivors (``hs_merged_object_ids``), and the engine's
periodic ID sweep for what falls out of the 90-day archive.
"""

from typing import TYPE_CHECKING, Any

from connectors.hubspot.config import HubSpotAuth, HubSpotConfig

if TYPE_CHECKING:
    from connectors.hubspot.errors import DailyLimitError
    from connectors.hubspot.source import HubSpotSource

__all__ = ["DailyLimitError", "HubSpotAuth", "HubSpotConfig", "HubSpotSource"]


def __getattr__(name: str) -> Any:
    # Validating a config must not import the SDK (a quarter of a second): the
    # implementation is imported when something first asks for it.
    if name == "HubSpotSource":
        from connectors.hubspot.source import HubSpotSource

        return HubSpotSource
    if name == "DailyLimitError":
        from connectors.hubspot.errors import DailyLimitError

        return DailyLimitError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
