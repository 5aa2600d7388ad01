"""Settings of the egress judgement: the cluster domain, other mesh domains, and which IP ranges are inside.

They are data for the SQL in ``queries/views/egress.sql`` (DESIGN.md: judgement in SQL), never
constants in code. Each has a default and can be set, later winning, by:

1. ``logpipe.toml`` inside the data directory, else next to it (``DATA/../logpipe.toml``)::

       cluster_domain = "cluster.local"
       mesh_domains = ["internal.corp"]                 # none by default
       internal_cidrs = ["default", "203.0.113.0/24"]   # "default" expands to DEFAULT_INTERNAL_CIDRS
       service_vip_cidrs = ["240.240.0.0/16", "2001:2::/48"]

2. environment variables ``LOGPIPE_CLUSTER_DOMAIN``, ``LOGPIPE_MESH_DOMAINS``, ``LOGPIPE_INTERNAL_CIDRS``
   and ``LOGPIPE_SERVICE_VIP_CIDRS`` (lists comma-separated);
3. CLI flags ``--cluster-domain``, ``--mesh-domain`` and ``--internal-cidr`` (repeatable).

A list replaces the one before it; the word ``default`` inside a list stands for the default
list, so ``--internal-cidr default --internal-cidr 203.0.113.0/24`` adds one range.

Mesh domains are DNS suffixes of hosts inside the mesh besides ``svc.<cluster domain>``: a host
equal to one or under it (``reviews.default.internal.corp``) is a mesh service, not egress.

Documentation ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32, 3fff::/20) are *not*
internal: logpipe's synthetic logs use them as stand-ins for public addresses (DESIGN.md).
"""
from __future__ import annotations

import ipaddress
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from .errors import LogpipeError
from .unpack import read_text

# RFC 1918, carrier-grade NAT (RFC 6598), loopback, link-local (not routable beyond the node; covers
# the cloud metadata address), IPv6 loopback, unique-local (RFC 4193) and link-local; and the ranges
# that are never an internet destination, which were judged public (so a passthrough to one was egress):
# "this network" 0.0.0.0/8 and the unspecified ::/128 (IANA special-purpose registries: not a valid
# destination; Linux connects a socket dialled to 0.0.0.0 or :: to the host itself), benchmarking
# 198.18.0.0/15 (RFC 2544, not globally reachable), multicast 224.0.0.0/4 (RFC 5771) and ff00::/8
# (RFC 4291 2.7), reserved 240.0.0.0/4 with the limited broadcast 255.255.255.255 (not globally
# reachable; Istio's VIPs 240.240/16 in it stay service VIPs: a VIP wins), IPv6 discard-only 100::/64 (RFC 6666: a sink inside a network) and the deprecated
# site-local fec0::/10 (RFC 3879: private addressing, as fc00::/7 is now).
# Left public: the documentation ranges (below); 192.0.0.0/24 and 2001::/23, IETF protocol
# assignments whose blocks include globally reachable anycast (PCP, TURN: 192.0.0.9, 192.0.0.10,
# 2001:1::1) and Teredo 2001::/32, which are internet hosts (2001:2::/48 is a service VIP range);
# 6to4 2002::/16 is judged as the IPv4 address it carries (queries/views/ip_kind.sql).
DEFAULT_INTERNAL_CIDRS = (
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "0.0.0.0/8",
    "198.18.0.0/15",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "::1/128",
    "::/128",
    "fc00::/7",
    "fe80::/10",
    "fec0::/10",
    "ff00::/8",
    "100::/64",
)
# istiod auto-allocates ServiceEntry VIPs from these (PILOT_IP_AUTOALLOCATE_IPV4_PREFIX / _IPV6_PREFIX,
# pilot/pkg/features/pilot.go; FORMATS.md d): "service VIP", neither internal workload nor public.
DEFAULT_SERVICE_VIP_CIDRS = ("240.240.0.0/16", "2001:2::/48")
DEFAULT_CLUSTER_DOMAIN = "cluster.local"
# None by default. Istio <= 1.7 multicluster (replicated control planes) named another cluster's
# services <name>.<namespace>.global, registered as MESH_INTERNAL ServiceEntries (istio.io v1.7
# docs/setup/install/multicluster/gateways; the suffix is Istio's global.multiCluster.globalDomainSuffix,
# default "global"): such a mesh sets mesh_domains = ["global"]. Not the default, because .global is
# also a public TLD: a real *.global host would silently drop out of the egress inventory, where an
# old multicluster service listed as registered egress is seen and set right.
DEFAULT_MESH_DOMAINS: tuple[str, ...] = ()
TOML_NAME = "logpipe.toml"
_KEYS = {"cluster_domain", "mesh_domains", "internal_cidrs", "service_vip_cidrs"}


class SettingsError(LogpipeError):
    """A setting with a value logpipe cannot use."""


@dataclass(frozen=True)
class Settings:
    cluster_domain: str = DEFAULT_CLUSTER_DOMAIN
    mesh_domains: tuple[str, ...] = DEFAULT_MESH_DOMAINS
    internal_cidrs: tuple[str, ...] = DEFAULT_INTERNAL_CIDRS
    service_vip_cidrs: tuple[str, ...] = DEFAULT_SERVICE_VIP_CIDRS
    origin: dict = field(default_factory=dict, compare=False)  # setting → where it came from

    def cidr_rows(self) -> list[tuple[str, int, int, int, str]]:
        """(cidr, family, first, last, kind) per range: the rows of the ``logpipe_cidrs`` table.
        Addresses are integers (IPv4 32-bit, IPv6 128-bit) so SQL compares them with BETWEEN."""
        rows = []
        for kind, cidrs in (("internal", self.internal_cidrs), ("service_vip", self.service_vip_cidrs)):
            for text in cidrs:
                net = ipaddress.ip_network(text, strict=False)
                rows.append((str(net), net.version, int(net.network_address), int(net.broadcast_address), kind))
        return rows


def _setting_list(value, where: str, example: str, defaults: tuple[str, ...], read) -> tuple[str, ...]:
    """A list setting: a TOML list or comma-separated text; ``default`` stands for ``defaults``,
    blank items are skipped, each other item is ``read`` (which says what is wrong with it)."""
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise SettingsError(f"{where} must be a list of {example}, not {value!r}")
    out: list[str] = []
    for item in items:
        item = item.strip() if isinstance(item, str) else item
        if item == "":
            continue
        if item == "default":
            out.extend(defaults)
        else:
            out.append(read(item))
    return tuple(dict.fromkeys(out))


def _cidr_list(value, where: str, defaults: tuple[str, ...]) -> tuple[str, ...]:
    def cidr(item) -> str:
        try:
            return str(ipaddress.ip_network(str(item), strict=False))
        except ValueError:
            raise SettingsError(
                f"{where}: {item!r} is not a CIDR; write ranges like 10.0.0.0/8 or fc00::/7"
            ) from None

    return _setting_list(value, where, 'CIDRs such as ["10.0.0.0/8"]', defaults, cidr)


def _domain_list(value, where: str) -> tuple[str, ...]:
    return _setting_list(value, where, 'DNS domains such as ["internal.corp"]', DEFAULT_MESH_DOMAINS,
                         lambda item: _domain(item, where))


def _domain(value, where: str) -> str:
    if not isinstance(value, str) or not value.strip(".").strip() or " " in value.strip():
        raise SettingsError(f"{where} must be a DNS domain such as cluster.local, not {value!r}")
    return value.strip().strip(".").lower()


def find_toml(data_dir: str | os.PathLike | None) -> Path | None:
    """``DATA/logpipe.toml``, else ``DATA/../logpipe.toml``, else None."""
    if data_dir is None:
        return None
    data = Path(data_dir).resolve()
    for candidate in (data / TOML_NAME, data.parent / TOML_NAME):
        if candidate.is_file():
            return candidate
    return None


def load_settings(
    data_dir: str | os.PathLike | None = None,
    *,
    cluster_domain: str | None = None,
    mesh_domains: Iterable[str] | None = None,
    internal_cidrs: Iterable[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Defaults, then ``logpipe.toml``, then environment, then the arguments (CLI flags)."""
    env = os.environ if env is None else env
    values: dict = {}
    origin: dict = {}
    path = find_toml(data_dir)
    if path is not None:
        try:
            doc = tomllib.loads(read_text(path))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
            raise SettingsError(f"cannot read {path}: {e}; fix the file or remove it") from None
        doc = doc.get("logpipe", doc) if isinstance(doc.get("logpipe"), dict) else doc
        unknown = sorted(set(doc) - _KEYS)
        if unknown:
            raise SettingsError(
                f"{path}: unknown setting {', '.join(unknown)}; known settings are {', '.join(sorted(_KEYS))}"
            )
        for k, v in doc.items():
            values[k] = v
            origin[k] = str(path)
    for key, var in (("cluster_domain", "LOGPIPE_CLUSTER_DOMAIN"), ("mesh_domains", "LOGPIPE_MESH_DOMAINS"),
                     ("internal_cidrs", "LOGPIPE_INTERNAL_CIDRS"), ("service_vip_cidrs", "LOGPIPE_SERVICE_VIP_CIDRS")):
        if env.get(var):
            values[key] = env[var]
            origin[key] = f"${var}"
    if cluster_domain:
        values["cluster_domain"], origin["cluster_domain"] = cluster_domain, "--cluster-domain"
    mesh_domains = list(mesh_domains or ())
    if mesh_domains:
        values["mesh_domains"], origin["mesh_domains"] = mesh_domains, "--mesh-domain"
    internal_cidrs = list(internal_cidrs or ())
    if internal_cidrs:
        values["internal_cidrs"], origin["internal_cidrs"] = internal_cidrs, "--internal-cidr"

    kwargs = {}
    if "cluster_domain" in values:
        kwargs["cluster_domain"] = _domain(values["cluster_domain"], f"cluster_domain (from {origin['cluster_domain']})")
    if "mesh_domains" in values:
        kwargs["mesh_domains"] = _domain_list(values["mesh_domains"], f"mesh_domains (from {origin['mesh_domains']})")
    for key, defaults in (("internal_cidrs", DEFAULT_INTERNAL_CIDRS), ("service_vip_cidrs", DEFAULT_SERVICE_VIP_CIDRS)):
        if key in values:
            kwargs[key] = _cidr_list(values[key], f"{key} (from {origin[key]})", defaults)
    return Settings(**kwargs, origin=origin)
