"""Networks the operator may not call (``--check-deny-networks``): parsed and matched here, used by the HTTP
checks (``bluegreen.hooks.http_checks``) and the notification senders (``bluegreen.notify``). Pure.

The default is link-local (``169.254.0.0/16,fe80::/10``), where cloud metadata services live. An IPv4
address mapped into IPv6 (``::ffff:169.254.169.254``) is matched as the IPv4 address it carries.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_DENY_NETWORKS = "169.254.0.0/16,fe80::/10"
DENY_SETTING = "--check-deny-networks (env BLUEGREEN_CHECK_DENY_NETWORKS)"


def parse_networks(text: str) -> tuple[Network, ...]:
    """``169.254.0.0/16,fe80::/10`` -> networks; an empty text denies nothing. Raises ValueError."""
    return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip())


def denied(address: str, networks: Sequence[Network]) -> bool:
    """Is ``address`` (an IP, IPv6 possibly with a ``%zone``) in one of ``networks``?"""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    mapped = getattr(ip, "ipv4_mapped", None)
    return any(ip in net or (mapped is not None and mapped in net) for net in networks)
