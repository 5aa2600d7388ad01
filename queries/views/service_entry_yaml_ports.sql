-- service_entry_yaml_ports(destination, ports, dns_failed, addresses): the ServiceEntry
-- (networking.istio.io/v1) that registers a destination reached through PassthroughCluster, as YAML
-- ready for kubectl apply -f: a host name (resolution DNS), or an IP under a made-up host ip-….external
-- with the IP as its address and endpoint (resolution STATIC); location MESH_EXTERNAL, a port of each of ports (a list of
-- {'port', 'protocol'}, by port) named for its protocol (service_entry_protocol.sql: HTTP2, HTTP, TLS
-- or TCP) and number. A port the format does not log is a
-- placeholder 0 (Istio accepts 1..65535) with a comment to set it. Null when nothing safe can be
-- written: a destination that is neither an IP nor a name of labels of letters, digits and dashes
-- (none starting or ending with a dash) between single dots, of at most 255 characters and 63 between
-- dots, whose last label is not all digits (Istio's validation of a host refuses any other:
-- istio/istio pkg/config/validation, checkDNS1123Preconditions and validateDNS1123Labels: a.-b.com,
-- a..b.com and host.123 were written, for its webhook to refuse), or one whose every request failed DNS resolution
-- (dns_failed: flag DF, dns_failure_advice.sql), which a ServiceEntry would not make resolve. One
-- document, or several after ---: a host over TCP at several IPs or on other ports too (below).
-- MESH_EXTERNAL is Istio's "external to the mesh" (istio/api networking/v1alpha3/service_entry.proto,
-- Location; MESH_INTERNAL is for workloads added to the mesh, VMs with a proxy): right for a host
-- outside the mesh at an internal address too (a VPC database, an on-premises server), so such an
-- address (ip_kind 'internal') keeps its ServiceEntry, under a comment saying that a pod or Service
-- of the cluster reached through PassthroughCluster wants the proxy's view of it fixed instead.
-- A host with a TCP port (no SNI, no HTTP: a CONNECT tunnel's end on a port not TLS's) lists
-- addresses, the upstream IP it was reached at (addresses): a connection's bytes name no host, so
-- Istio tells a TCP port's service by destination address alone, and one without addresses matches every destination on its port, regardless of the
-- host (istio.io, IST0134 ServiceEntryAddressesRequired; istio/istio#29992: one such entry for
-- google.com:443 broke every other HTTPS host; #59599: it takes the 0.0.0.0_PORT listener's default
-- filter chain, PassthroughCluster's). Plain IPs, not /32: Istio allows CIDRs only with resolution
-- NONE or STATIC (pkg/config/validation), and the host keeps DNS (Envoy connects to what the name
-- resolves to now). None found (a format with neither %UPSTREAM_HOST% nor %DOWNSTREAM_LOCAL_ADDRESS%)
-- is a placeholder "" (Istio refuses it: not an IP) with a comment to set it.
-- One address a host: Istio uses one ("Although the API allows specifying addresses in a list,
-- multiple addresses will not be used by a single host", istio/api service_entry.proto, addresses;
-- istio/istio#34577, open since 2021): it makes a service of each address of a host (istio/istio
-- pilot/pkg/serviceregistry/serviceentry/conversion.go, convertServices) and a sidecar keeps the
-- first service of a host, dropping the others "as it has the same ports" (pilot/pkg/model/sidecar.go,
-- appendSidecarServices), two ServiceEntries of the host as well. So the other IPs got no listener and
-- their connections left through PassthroughCluster (BlackHoleCluster under REGISTRY_ONLY).
-- And addresses narrow a TLS port: Istio gives a TCP or TLS port of a service with an IP address a
-- listener of its own at that IP ("we listen on the service VIP if and only if the address is an IP
-- address", istio/istio pilot/pkg/networking/core/listener.go) and sets no SNI match ("Use the
-- hostname as the SNI value if and only" the address is a CIDR, none or the wildcard: "If we have a
-- VIP, then we know the destination", tls.go), so TLS to another IP of the host would take the port's
-- 0.0.0.0 listener or the virtual outbound one (PassthroughCluster, or BlackHoleCluster under
-- REGISTRY_ONLY). So a host with a TCP port and other ports, or over TCP at several IPs (any port's),
-- gets one document per IP of its TCP ports, each under a host of its own, ip-<the IP, as its
-- slug>.<host>.external (ip-<IP>.<the host's 8 hex digits of MD5>.external where that would pass
-- Istio's 255 characters), with that one address and resolution NONE (Envoy forwards to the IP
-- dialled: no made-up name to resolve), named for the host, the IP and the ports
-- (db-example-com-198-51-100-20-5432), under a comment naming the real host; and its other ports, if
-- any, a document of the host's own name without addresses (HTTP and TLS matched by Host header and
-- SNI, never narrowed to the IPs seen), first. Its comments say to add a document like it for any
-- other IP the host resolves to (DNS can answer with IPs not in the logs). No IP logged: one such
-- document, its host ip-.<host>.external and its address the placeholder "" (both refused by Istio),
-- with a comment to set the IP in both. A host of TCP ports alone at one IP (or none logged) keeps
-- one document of its own name with that address. Not a second document of the real host for the
-- TCP ports: Istio merges a host's services of one namespace into the first one's copy, its address
-- with the other's ports appended (pilot/pkg/model/sidecar.go, appendSidecarServices), so that split
-- would come back as one document with an address (TLS narrowed), or, the other one first, as the TCP
-- port without addresses that matches every destination on its port (below: releases differ too).
-- The host's own document of a split is labelled networking.istio.io/enable-autoallocate-ip: "false".
-- Istio's DNS proxy (a sidecar's with ISTIO_META_DNS_CAPTURE; ztunnel's, on by default in ambient from
-- 1.25) answers a host with its service's address (istio/istio pkg/dns/server/name_table.go,
-- BuildNameTable), and a ServiceEntry without addresses, resolution not NONE, gets one allocated
-- (240.240.0.0/16; status.addresses, PILOT_ENABLE_IP_AUTOALLOCATE, on by default from 1.25, "these will
-- not be used unless proxies are configured to do DNS proxying", 1.25 change notes), used by a sidecar
-- with DNS capture (pilot/pkg/model/service.go, nodeUsesAutoallocatedIPs): the app would dial
-- 240.240.x.x:5432, where only the host's other ports listen, its TCP ports being at the IPs under
-- the made-up hosts, so its TCP connections would leave through PassthroughCluster (BlackHoleCluster
-- under REGISTRY_ONLY). With the label no address is allocated (pilot/pkg/networking/serviceentry/
-- ip_autoallocation.go, shouldV2AutoAllocateIPFromPieces), the DNS proxy has no entry for the host
-- (name_table.go skips a service with no address and not NONE) and forwards the query upstream: the app
-- dials the real IP, as without the proxy. The made-up hosts' documents need none: they have addresses
-- and resolution NONE, which is never allocated ("we cannot honor the assigned IP"). Not covered: the
-- older, proxy-side ISTIO_META_DNS_AUTO_ALLOCATE, which allocates while PILOT_ENABLE_IP_AUTOALLOCATE is
-- off and ignores the label (pilot/pkg/serviceregistry/serviceentry/controller.go, autoAllocateIPs):
-- the comment says to write the host as one document with one IP as its address there (the DNS proxy
-- answers the host with it, so the TLS port's narrowing to it costs nothing). A
-- host with only HTTP or TLS ports gets no addresses: Istio matches an HTTP port's Host header and a
-- TLS port's SNI against hosts (ServiceEntry reference, hosts). (An HTTP port is not narrowed by
-- addresses: its listener is 0.0.0.0 whatever the addresses, listener.go, and its route matches the
-- Host header, "route domains for both the addresses and hosts", ServiceEntry reference, addresses.)
-- An IP's address is itself (resolution STATIC, its endpoint).
-- The unregistered_egress finding, registry_only and service_entries print it for every port of the
-- destination (passthrough_destinations.sql): one document (or a TCP host's per IP, above), named for
-- the destination and its ports (api-example-com-80-443). Two documents of one host, one per
-- port, are what Istio handles worst: it merges ServiceEntries of one host and namespace, differently
-- from release to release (istio/istio#50478: 1.20 and 1.21 balanced between the ports; #51466, 1.22:
-- the host's traffic blackholed; #54988, #55776, 1.24: one port's cluster missing, connections reset).
CREATE OR REPLACE MACRO service_entry_yaml_ports(destination, ports, dns_failed, addresses) AS (
    CASE WHEN NOT coalesce(dns_failed, false)
              AND (ip_value(destination) IS NOT NULL
                   OR (regexp_full_match(destination, '[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*')
                       AND length(destination) <= 255 AND NOT regexp_matches(destination, '[^.]{64}')
                       AND NOT regexp_matches(destination, '\.[0-9]+$')))
    THEN array_to_string(list_transform(
        -- the documents, each a struct of what differs (name: before the ports), written alike below
        CASE WHEN ip_value(destination) IS NULL AND list_contains([p.protocol FOR p IN ports], 'TCP')
                  AND (len(list_distinct(coalesce(addresses, []))) > 1
                       OR len(list_filter(ports, lambda p: p.protocol IS DISTINCT FROM 'TCP')) > 0)
        -- a host over TCP at several IPs, or with other ports: its other ports under its own name, if
        -- any, then its TCP ports once per IP, each under a made-up host (one address per host: the
        -- header says why), or once under a placeholder when no IP was logged
        THEN list_filter([{'comment': '# ' || destination || '''s ports other than TCP, matched by Host header or SNI (no '
                                      || 'addresses); its TCP ports follow, under a host of their own per IP' || chr(10)
                                      || '# labelled for no auto-allocated address, which Istio''s DNS proxy would answer ' || destination
                                      || ' with (240.240.x.x) and where its TCP ports do not listen; ISTIO_META_DNS_AUTO_ALLOCATE '
                                      || 'ignores the label (it allocates while PILOT_ENABLE_IP_AUTOALLOCATE is off, before 1.25 by '
                                      || 'default): with it, write the host as one document instead, all its ports, one IP below as its address',
                           'name': service_entry_slug(destination),
                           -- (the header says why: V2 auto-allocation's opt-out, honoured by its controller and
                           -- by the xDS and DNS that use its status.addresses)
                           'labels': '  labels:' || chr(10) || '    networking.istio.io/enable-autoallocate-ip: "false"',
                           'host': destination, 'addresses': NULL::VARCHAR,
                           'ports': list_filter(ports, lambda p: p.protocol IS DISTINCT FROM 'TCP'),
                           'resolution': 'DNS', 'endpoint': NULL::VARCHAR}], lambda d: len(d.ports) > 0)
             || [{'comment': CASE WHEN a = ''
                                  THEN '# ' || destination || '''s TCP ports under a host of their own, ip-<the IP, dashed>.'
                                       || destination || '.external: no upstream address in the logs, set the IP it '
                                       || 'resolves to in addresses and in the host; for another IP, add one like this'
                                  ELSE '# ' || destination || ' at ' || a || ', its TCP ports under a host of its own: Istio takes '
                                       || 'one address of a host, so each IP ' || destination || ' was reached at has a document; '
                                       || 'for another IP it resolves to, add one like this' END,
                  'name': service_entry_slug(destination) || CASE WHEN a = '' THEN '' ELSE '-' || service_entry_slug(a) END,
                  'labels': NULL::VARCHAR,
                  -- (the IP, then the host: one name per pair, of labels Istio takes, at most 255
                  -- characters, or the host's hash for the host where a long one would not fit; no IP
                  -- logged: ip-.<host>, which Istio refuses, as it does the address "")
                  'host': list_transform(['ip-' || CASE WHEN a = '' THEN '' ELSE service_entry_slug(a) END || '.'],
                                         lambda h: CASE WHEN length(h || destination || '.external') <= 255
                                                        THEN h || destination || '.external'
                                                        ELSE h || left(md5(destination), 8) || '.external' END)[1],
                  'addresses': '  addresses:' || chr(10) || '  - "' || a || '"'
                               || CASE WHEN a = '' THEN '  # no upstream address in the logs: set the IP '
                                                        || destination || ' resolves to' ELSE '' END,
                  'ports': list_filter(ports, lambda p: p.protocol = 'TCP'),
                  'resolution': 'NONE', 'endpoint': NULL::VARCHAR}
                 -- (no IP logged: one document with the placeholder "", as a host of TCP ports alone has)
                 FOR a IN CASE WHEN len(list_distinct(coalesce(addresses, []))) = 0 THEN ['']
                               ELSE list_sort(list_distinct(addresses)) END]
        ELSE [{'comment': CASE WHEN ip_kind(destination) = 'internal'
                               THEN '# ' || destination || ' is an internal address: register it only if it is a host outside '
                                    || 'the mesh; a pod or Service of the cluster reached through PassthroughCluster is out of the '
                                    || 'proxy''s view (a Sidecar''s egress hosts, exportTo): fix that instead' END,
               'name': service_entry_slug(destination), 'labels': NULL::VARCHAR,
               -- (an IP's host: a made-up one)
               'host': CASE WHEN ip_value(destination) IS NULL THEN destination
                            ELSE 'ip-' || service_entry_slug(destination) || '.external' END,
               -- (an IP quoted: YAML 1.1 reads an unquoted 2001:1:2:3:4:5:6:7 as a base-60 number)
               'addresses': CASE WHEN ip_value(destination) IS NOT NULL THEN '  addresses:' || chr(10) || '  - "' || destination || '"'
                   -- (a host of TCP ports alone, at one IP or none logged: the split above takes the rest)
                   WHEN list_contains([p.protocol FOR p IN ports], 'TCP')
                   THEN '  addresses:  # ' || CASE WHEN len(list_distinct(coalesce(addresses, []))) = 0
                                                  THEN 'an IP ' || destination || ' resolves to (none in the logs)'
                                                  ELSE 'the IP ' || destination || ' was reached at' END
                        || ': Istio tells a TCP port''s '
                        || 'connections by address alone, and takes one address of a host: for another IP it resolves to, '
                        || 'add a document of host ip-<that IP, dashed>.' || destination || '.external, that address and '
                        || 'resolution NONE, its TCP ports' || chr(10)
                        || coalesce(nullif(array_to_string([('  - "' || a || '"') FOR a IN list_sort(list_distinct(addresses))], chr(10)), ''),
                                    '  - ""  # no upstream address in the logs: set the IP ' || destination
                                    || ' resolves to (one: Istio takes one address of a host)') END,
               'ports': ports,
               'resolution': CASE WHEN ip_value(destination) IS NOT NULL THEN 'STATIC' ELSE 'DNS' END,
               'endpoint': CASE WHEN ip_value(destination) IS NOT NULL THEN '  endpoints:' || chr(10) || '  - address: "' || destination || '"' END}]
        END,
        lambda d: concat_ws(chr(10),
            d.comment,
            'apiVersion: networking.istio.io/v1',
            'kind: ServiceEntry',
            'metadata:',
            -- (concat_ws, not ||: a port not in the logs leaves it out rather than nulling the name)
            -- (a name of its own per destination: service_entry_slug.sql)
            -- (a name of at most 253 characters, Kubernetes' DNS subdomain names: the slug's 247 and two
            -- ports' 12 are over, so such a name keeps its first 244 and a hash of it, as the slug does)
            '  name: "' || list_transform([concat_ws('-', d.name,
                                                      nullif(array_to_string(list_filter([p.port FOR p IN d.ports], lambda n: n IS NOT NULL), '-'), ''))],
                                          lambda n: CASE WHEN length(n) <= 253 THEN n
                                                         ELSE rtrim(left(n, 244), '-') || '-' || left(md5(n), 8) END)[1] || '"',
            d.labels,
            'spec:',
            '  hosts:',
            -- (quoted: YAML 1.1 reads a bare host yes, no, on or null as a boolean or null, 1e5 as a number)
            '  - "' || d.host || '"',
            d.addresses,
            '  location: MESH_EXTERNAL',
            '  ports:',
            array_to_string([
                '  - number: ' || coalesce(CAST(p.port AS VARCHAR),
                                          '0  # the port is not in the logs: set the port the clients call')
                || chr(10) || '    name: ' || concat_ws('-', lower(p.protocol), p.port)
                || chr(10) || '    protocol: ' || p.protocol
                FOR p IN d.ports], chr(10)),
            '  resolution: ' || d.resolution,
            d.endpoint)),
        chr(10) || '---' || chr(10))
    END
);
