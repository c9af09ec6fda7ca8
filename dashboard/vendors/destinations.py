"""Where vendor calls may go: public addresses over https, and nothing else outside an allow-list.

A tenant admin types a connection's base URL; the server then makes calls to it with the tenant's
credentials. Without a rule, `http://169.254.169.254/latest` (a cloud metadata service) or any
private, loopback or link-local host would let an admin point the server at internal services.

The rule, checked where a connection is saved (form, service, command) AND again for every new
TCP connection a vendor client opens (so DNS rebinding, or a row written another way, cannot get
round it):

- the scheme is https;
- the host is a public address: every address it resolves to is globally routable (not
  private, loopback, link-local, multicast, reserved, unspecified or shared, in IPv4 or IPv6,
  including IPv4 addresses embedded in IPv6 ones). Numeric tricks (`2852039166`, `0xa9.0xfe.1`)
  are caught because the host is resolved the way the connection would resolve it.

`VENDOR_HOST_ALLOWLIST` (a Django setting, comma-separated in the environment) names the
exceptions: the sandboxes of `make demo` and the tests. An entry is a host name (`localhost`), an
address or network (`127.0.0.1`, `10.20.0.0/16`, `::1`), optionally with a port
(`127.0.0.1:8100`, `[::1]:8100`, `sandbox.internal:8443`). A host named by an entry may use
http and any address; an address inside an entry's network may be connected to.

When a name does not resolve at all when a connection is saved, it is accepted: nothing can be
reached through it, and the check at connection time refuses it if it later resolves to an
address that is not public.

This module has no Django dependency beyond reading the setting when Django is configured.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# NAT64's well-known prefix carries an IPv4 address in its last 32 bits, and a NAT64 gateway
# would forward to that address: judge the embedded address instead.
NAT64_PREFIX = ipaddress.IPv6Network("64:ff9b::/96")
SHARED_ADDRESS_SPACE = ipaddress.IPv4Network("100.64.0.0/10")


class DestinationNotAllowed(ValueError):
    """A vendor URL or address that the server must not call. Nothing was sent."""


@dataclass(frozen=True)
class AllowEntry:
    """One VENDOR_HOST_ALLOWLIST entry: a host name or a network, and optionally one port."""

    host: str = ""
    network: IPNetwork | None = None
    port: int | None = None

    def matches_host(self, host: str, port: int | None) -> bool:
        """True when the URL's host (a name or an address literal) is this entry's."""
        if self.port is not None and port != self.port:
            return False
        if self.network is not None:
            address = parse_address(host)
            return address is not None and address in self.network
        return host.lower().rstrip(".") == self.host

    def matches_address(self, address: IPAddress, port: int | None) -> bool:
        if self.network is None:
            return False
        if self.port is not None and port != self.port:
            return False
        return address in self.network


_HOST_PORT = re.compile(r"^(?:\[(?P<v6>[^\]]+)\]|(?P<host>[^:\[\]]+))(?::(?P<port>\d{1,5}))?$")


def parse_allow_entry(entry: str) -> AllowEntry:
    """An allow-list entry from its text; ValueError when it cannot be one."""
    text = entry.strip()
    try:
        return AllowEntry(network=ipaddress.ip_network(text.strip("[]"), strict=False))
    except ValueError:
        pass
    match = _HOST_PORT.match(text)
    if not match:
        raise ValueError(f"VENDOR_HOST_ALLOWLIST entry {entry!r} is not a host, address or network")
    host = match["v6"] or match["host"]
    port = int(match["port"]) if match["port"] else None
    try:
        return AllowEntry(network=ipaddress.ip_network(host, strict=False), port=port)
    except ValueError:
        return AllowEntry(host=host.lower().rstrip("."), port=port)


def allow_list() -> list[AllowEntry]:
    """The configured exceptions (Django's VENDOR_HOST_ALLOWLIST); none without Django."""
    try:
        from django.conf import settings

        entries = getattr(settings, "VENDOR_HOST_ALLOWLIST", ()) if settings.configured else ()
    except ImportError:
        entries = ()
    if isinstance(entries, str):
        entries = entries.split(",")
    return [parse_allow_entry(entry) for entry in entries if entry and entry.strip()]


def parse_address(host: str) -> IPAddress | None:
    """The address when `host` is an IP literal in its standard form (with or without brackets)."""
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def is_public_address(address: IPAddress) -> bool:
    """True for a globally routable unicast address; False for every special-purpose range."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or (
            ipaddress.IPv4Address(int(address) & 0xFFFFFFFF) if address in NAT64_PREFIX else None
        )
        if embedded is None and address.sixtofour is not None:
            embedded = address.sixtofour
        if embedded is None and address.teredo is not None:
            embedded = address.teredo[1]
        if embedded is not None:
            return is_public_address(embedded)
    if isinstance(address, ipaddress.IPv4Address) and address in SHARED_ADDRESS_SPACE:
        return False
    return (
        address.is_global
        and not address.is_private
        and not address.is_loopback
        and not address.is_link_local
        and not address.is_multicast
        and not address.is_reserved
        and not address.is_unspecified
        and not (isinstance(address, ipaddress.IPv6Address) and address.is_site_local)
    )


def resolve(host: str, port: int | None) -> list[IPAddress]:
    """Every address `host` resolves to, as a connection would resolve it (socket.gaierror when
    it does not resolve)."""
    results = socket.getaddrinfo(host.strip("[]"), port or 0, type=socket.SOCK_STREAM)
    addresses: list[IPAddress] = []
    for *_, sockaddr in results:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


def host_is_allowed(host: str, port: int | None, entries: list[AllowEntry] | None = None) -> bool:
    """True when the URL's host (and port) is named by an allow-list entry."""
    entries = allow_list() if entries is None else entries
    return any(entry.matches_host(host, port) for entry in entries)


def check_addresses(
    host: str, port: int | None, addresses: list[IPAddress], entries: list[AllowEntry]
) -> None:
    """Raise DestinationNotAllowed unless every address may be called (public or allow-listed)."""
    for address in addresses:
        if is_public_address(address):
            continue
        if any(entry.matches_address(address, port) for entry in entries):
            continue
        where = host if str(address) == host.strip("[]") else f"{host} ({address})"
        raise DestinationNotAllowed(
            f"{where} is not a public internet address (private, loopback, link-local or "
            "otherwise reserved); vendor connections may only call public hosts. Ask whoever "
            "runs TriggerDesk to add it to VENDOR_HOST_ALLOWLIST if it is a sandbox."
        )


def check_base_url(base_url: str, *, resolve_names: bool = True) -> None:
    """Raise DestinationNotAllowed unless a vendor connection may call `base_url`.

    The URL must already be an absolute http(s) URL. Names are resolved and every address is
    checked (see the module docstring); an unresolvable name passes here and is checked again
    at connection time.
    """
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise DestinationNotAllowed(
            "The base URL's port is not a number from 0 to 65535."
        ) from None
    entries = allow_list()
    if host_is_allowed(host, port, entries):
        return
    literal = parse_address(host)
    if literal is not None:
        check_addresses(host, port, [literal], entries)
    elif resolve_names:
        try:
            addresses = resolve(host, port)
        except (OSError, UnicodeError):
            addresses = []
        check_addresses(host, port, addresses, entries)
    if parts.scheme != "https":
        raise DestinationNotAllowed(
            "Vendor connections must use https (http only for hosts on VENDOR_HOST_ALLOWLIST, "
            "such as the sandboxes)."
        )


def checked_addresses(host: str, port: int | None) -> list[str]:
    """The addresses a connection to host:port may use, in resolver order: every one is checked.

    Raises DestinationNotAllowed when any of them may not be called, socket.gaierror when the
    name does not resolve. A host named on the allow-list may use whatever it resolves to.
    """
    addresses = resolve(host, port)
    entries = allow_list()
    if not host_is_allowed(host, port, entries):
        check_addresses(host, port, addresses, entries)
    return [str(address) for address in addresses]
