"""Webhook → SSRF guard: a webhook URL is sent only to the public addresses checked here.

The check resolves the host once and returns every address it found; delivery then connects to
those addresses and never resolves again, so a DNS answer that changes between check and
connection (DNS rebinding) cannot steer a request into the private network.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Iterable

import msgspec
from yarl import URL

from service.errors import Unprocessable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

Resolve = Callable[[str, int], Awaitable[Iterable[str]]]
"""Turns a host name and port into IP address strings (the system resolver by default)."""

DEFAULT_RESOLVE_TIMEOUT = 5.0

# IPv4 ranges that are never a webhook receiver, with the words used to explain the refusal.
# Python's `is_global` knows most of them but not multicast; the rest are named for the message.
_V4_REFUSED: tuple[tuple[ipaddress.IPv4Network, str], ...] = tuple(
    (ipaddress.IPv4Network(net), why)
    for net, why in (
        ("0.0.0.0/8", "an unspecified ('this network') address"),
        ("10.0.0.0/8", "a private (RFC 1918) address"),
        ("100.64.0.0/10", "a carrier-grade NAT (RFC 6598) address"),
        ("127.0.0.0/8", "a loopback address"),
        ("169.254.169.254/32", "the cloud metadata address"),
        ("169.254.0.0/16", "a link-local address"),
        ("172.16.0.0/12", "a private (RFC 1918) address"),
        ("192.0.0.0/24", "an IETF protocol assignment address"),
        ("192.0.2.0/24", "a documentation address"),
        ("192.168.0.0/16", "a private (RFC 1918) address"),
        ("198.18.0.0/15", "a benchmarking address"),
        ("198.51.100.0/24", "a documentation address"),
        ("203.0.113.0/24", "a documentation address"),
        ("224.0.0.0/4", "a multicast address"),
        ("255.255.255.255/32", "the broadcast address"),
        ("240.0.0.0/4", "a reserved address"),
    )
)

_V6_REFUSED: tuple[tuple[ipaddress.IPv6Network, str], ...] = tuple(
    (ipaddress.IPv6Network(net), why)
    for net, why in (
        ("::/128", "an unspecified address"),
        ("::1/128", "a loopback address"),
        ("fe80::/10", "a link-local address"),
        ("fec0::/10", "a site-local address"),
        ("fc00::/7", "a unique-local address"),
        ("ff00::/8", "a multicast address"),
        ("2001:db8::/32", "a documentation address"),
        ("3fff::/20", "a documentation address"),
        ("2001:2::/48", "a benchmarking address"),
        ("100::/64", "a discard-only address"),
        # RFC 8215 lets each network choose its prefix length inside this block, and the IPv4
        # address sits elsewhere for each length: what it wraps cannot be told, so it is refused.
        ("64:ff9b:1::/48", "a local-use NAT64 address, whose embedded IPv4 address is ambiguous"),
    )
)

# Global unicast: every public IPv6 address lies here (the forms wrapping IPv4 are unwrapped
# before this test, so `::ffff:8.8.8.8` or NAT64's `64:ff9b::8.8.8.8` can still pass).
_V6_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
_V4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
_V4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")

# A host made only of these characters may be a legacy numeric IPv4 form (2130706433, 0x7f.1,
# 0177.0.0.1) that resolvers turn into an address without any lookup.
_NUMERIC_HOST = re.compile(r"^[0-9a-fx.]+$")
_HOST_NAME = re.compile(r"^[a-z0-9_.-]+$")


class UnsafeWebhookUrl(Unprocessable):
    """A webhook URL that Burro will not send to; `reason` says why, for the caller."""

    code = "unsafe_webhook_url"
    title = "Webhook URL not acceptable"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnresolvableWebhookHost(UnsafeWebhookUrl):
    """The host did not resolve (in time). Unlike the other refusals this may pass later:
    at delivery time treat it as a failed attempt rather than a verdict on the URL."""

    code = "unresolvable_webhook_host"


class CheckedTarget(msgspec.Struct, frozen=True, kw_only=True):
    """Where one webhook attempt goes: the URL split up, with the addresses that passed."""

    scheme: str
    host: str
    """The host as the URL names it (IDNA, lower case): TLS checks the certificate against it
    and it goes in the Host header. An IP literal is here in its canonical form."""
    port: int
    path_qs: str
    """Path and query, percent-encoded, as sent on the request line."""
    ips: tuple[str, ...]
    """Every address the host resolved to, each checked; the only ones to connect to."""

    @property
    def url(self) -> str:
        """The URL to request, rebuilt from the checked parts (no userinfo, no fragment)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{self.path_qs}"


async def system_resolve(host: str, port: int) -> list[str]:
    """The system resolver (`getaddrinfo`), as a `Resolve`."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return [
        str(sockaddr[0])
        for family, _, _, _, sockaddr in infos
        if family in (socket.AF_INET, socket.AF_INET6)
    ]


async def resolve_public(
    url: str,
    *,
    allow_private: bool,
    resolve: Resolve = system_resolve,
    resolve_timeout: float = DEFAULT_RESOLVE_TIMEOUT,
) -> CheckedTarget:
    """Check a webhook URL and resolve its host, refusing any address that is not public.

    Raises `UnsafeWebhookUrl` when the URL is malformed or not http(s), carries credentials, or
    when *any* address of its host is loopback, private, link-local, metadata, multicast,
    reserved, … (also when wrapped in an IPv6 form). `UnresolvableWebhookHost` when the host
    does not resolve within `resolve_timeout` seconds. With `allow_private`, every address passes
    (development and tests), but the URL must still be well formed.
    """
    scheme, host, port, path_qs = _split(url)
    literal = _ip_literal(host)
    if literal is not None:
        host = str(literal)
        addresses = [literal]
    else:
        addresses = await _resolve(host, port, resolve, resolve_timeout)
    if not allow_private:
        for address in addresses:
            why = refusal(address)
            if why is not None:
                shown = host if literal is not None else f"{host} resolves to {address}, which"
                raise UnsafeWebhookUrl(
                    f"webhook URL host {shown} is {why}; only public addresses are allowed"
                )
    return CheckedTarget(
        scheme=scheme,
        host=host,
        port=port,
        path_qs=path_qs,
        ips=tuple(dict.fromkeys(str(a) for a in addresses)),
    )


def refusal(address: IPAddress) -> str | None:
    """Why this address is not a public one (as words for a message), or None when it is."""
    if isinstance(address, ipaddress.IPv4Address):
        return _refusal_v4(address)
    if address.scope_id:
        return "a scoped (zone) address"
    for net, why in _V6_REFUSED:
        if address in net:
            return why
    # `is_global` trusts these forms; the IPv4 address inside is where the packet ends up.
    for v4 in _embedded_v4(address):
        inner = _refusal_v4(v4)
        if inner is not None:
            return f"an IPv6 address wrapping {v4}, {inner}"
    if address in _V4_MAPPED or address in _NAT64:
        return None  # only a carrier for the public IPv4 address just checked
    if address not in _V6_GLOBAL_UNICAST or not address.is_global:
        return "a reserved (not globally routable) address"
    return None


def _refusal_v4(address: ipaddress.IPv4Address) -> str | None:
    for net, why in _V4_REFUSED:
        if address in net:
            return why
    if not address.is_global:
        return "a reserved (not globally routable) address"
    return None


def _embedded_v4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address carries, by the transition mechanisms that route them."""
    value = int(address)
    low32 = ipaddress.IPv4Address(value & 0xFFFFFFFF)
    if address in _V4_MAPPED or address in _V4_COMPATIBLE or address in _NAT64:
        return [low32]
    if address.sixtofour is not None:
        return [address.sixtofour]
    if address.teredo is not None:
        server, client = address.teredo
        return [server, client]
    return []


def _split(url: str) -> tuple[str, str, int, str]:
    try:
        parsed = URL(url)
        scheme, host, port = parsed.scheme, parsed.raw_host, parsed.port
    except (ValueError, TypeError) as exc:
        raise UnsafeWebhookUrl(f"webhook URL is not a valid URL: {exc}") from None
    if scheme not in ("http", "https"):
        raise UnsafeWebhookUrl("webhook URL must use http or https")
    if not host:
        raise UnsafeWebhookUrl("webhook URL must name a host")
    if "@" in (parsed.raw_authority or ""):
        raise UnsafeWebhookUrl("webhook URL must not contain a user name or password")
    if "%" in host:
        raise UnsafeWebhookUrl("webhook URL host must not carry an IPv6 zone index")
    if not port:
        raise UnsafeWebhookUrl("webhook URL port must be between 1 and 65535")
    return scheme, host, port, parsed.raw_path_qs


def _ip_literal(host: str) -> IPAddress | None:
    """The address a host stands for without any lookup, in any form a resolver accepts; None
    for a host name, which is refused here when no DNS name could look like it."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _NUMERIC_HOST.match(host):
        try:
            # inet_aton is what resolvers use for the legacy forms; it refuses domain names.
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            pass
    if not _HOST_NAME.match(host):
        raise UnsafeWebhookUrl("webhook URL host contains characters a host name cannot have")
    if host.startswith(".") or ".." in host:
        raise UnsafeWebhookUrl("webhook URL host has an empty label")
    return None


async def _resolve(host: str, port: int, resolve: Resolve, limit: float) -> list[IPAddress]:
    try:
        async with asyncio.timeout(limit):
            found = list(await resolve(host, port))
    except TimeoutError:
        raise UnresolvableWebhookHost(
            f"webhook URL host {host} did not resolve within {limit:g} s"
        ) from None
    except OSError as exc:  # socket.gaierror and friends
        raise UnresolvableWebhookHost(
            f"webhook URL host {host} does not resolve ({exc.strerror or exc})"
        ) from None
    addresses: list[IPAddress] = []
    for text in found:
        try:
            addresses.append(ipaddress.ip_address(text))
        except ValueError:
            # A resolver answer that is not an address cannot be checked, so it cannot pass.
            raise UnsafeWebhookUrl(
                f"webhook URL host {host} resolved to {text!r}, which is not an IP address"
            ) from None
    if not addresses:
        raise UnresolvableWebhookHost(f"webhook URL host {host} resolves to no address")
    return addresses
