"""Operators' own access-log formats from the wild, each with where it was found: lines as Envoy prints
them read from the command line into the record's columns (extra columns for the operators that have
none), every line parsed, none rejected; and what `--format-file` and the egress reports make of them."""
from __future__ import annotations

import json

import pytest

from conftest import run_logpipe
from logpipe import formatfile

WILD = [
    # gardener/gardener pkg/component/networking/vpn/seedserver/templates/envoy.yaml.tpl: the VPN seed
    # server's CONNECT proxy, StdoutAccessLog text_format_source (literal rx, tx and ms after the counts)
    pytest.param('[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% rx %BYTES_SENT% tx %DURATION%ms "%DOWNSTREAM_REMOTE_ADDRESS%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%"',
     ['[2024-05-02T10:00:01.123Z] "CONNECT - HTTP/1.1" 200 - 18231 rx 90211 tx 60012ms "10.250.0.5:41234" "-" "shoot--foo--bar.internal:443" "10.0.1.2:443"',
      '[2024-05-02T10:00:02.004Z] "CONNECT - HTTP/1.1" 503 UF,URX 0 rx 91 tx 5001ms "10.250.0.6:50312" "-" "kube-apiserver.shoot--foo--bar.svc.cluster.local:443" "10.0.1.3:443"',
      '[2024-05-02T10:00:03.210Z] "CONNECT - HTTP/1.1" 200 - 512 rx 2048 tx 1200ms "[fd00:10::5]:40000" "-" "api.example.com:443" "[2001:db8::7]:443"',
      '[2024-05-02T10:00:04.999Z] "CONNECT - HTTP/1.1" 200 DC 77 rx 0 tx 1002ms "10.250.0.7:33333" "-" "10.96.0.1:443" "10.96.0.1:443"',
      '[2024-05-02T10:00:05.000Z] "CONNECT - HTTP/1.1" 403 - 0 rx 0 tx 0ms "10.250.0.8:1" "-" "evil.example.org:443" "-"'],
     {0: {'method': 'CONNECT', 'path': None, 'bytes_received': 18231, 'bytes_sent': 90211, 'duration': 60012, 'authority': 'shoot--foo--bar.internal:443', 'downstream_remote_address_ip': '10.250.0.5'}, 2: {'upstream_host_ip': '2001:db8::7', 'downstream_remote_address_ip': 'fd00:10::5'}}, id='gardener_vpn_seed_server'),
    # emissary-ingress/emissary PR #1969 (docs, envoy_log_format): Envoy's default format after a literal ACCESS
    pytest.param('ACCESS [%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%"',
     ['ACCESS [2019-10-23T18:41:11.331Z] "GET /backend/ HTTP/1.1" 200 - 0 133 4 2 "10.32.0.1" "curl/7.64.0" "5d35a5a6-b4f5-4b6b-9fa8-6f1a2c1c8e3b" "35.226.1.9" "10.32.1.14:8080"',
      'ACCESS [2019-10-23T18:41:12.002Z] "POST /api/v1/orders HTTP/2" 201 - 512 64 31 30 "203.0.113.7,10.32.0.1" "Mozilla/5.0 (X11; Linux x86_64)" "a1b2c3d4-0000-4000-8000-000000000001" "shop.example.com" "10.32.1.15:8080"',
      'ACCESS [2019-10-23T18:41:13.500Z] "GET /healthz HTTP/1.1" 503 UH 0 19 0 - "-" "kube-probe/1.15" "b1b2c3d4-0000-4000-8000-000000000002" "10.32.1.2:8877" "-"',
      'ACCESS [2019-10-23T18:41:14.001Z] "GET /ambassador/v0/diag/ HTTP/1.1" 404 NR 0 0 0 - "-" "Go-http-client/1.1" "c1b2c3d4-0000-4000-8000-000000000003" "localhost:8877" "-"',
      'ACCESS [2019-10-23T18:41:15.777Z] "GET /v1/charges HTTP/1.1" 200 - 0 2211 233 231 "-" "Stripe/v1 PythonBindings/2.37.2" "d1b2c3d4-0000-4000-8000-000000000004" "api.stripe.com" "54.187.216.72:443"'],
     {1: {'x_forwarded_for': '203.0.113.7,10.32.0.1', 'user_agent': 'Mozilla/5.0 (X11; Linux x86_64)', 'upstream_service_time': 30}, 4: {'upstream_host_ip': '54.187.216.72', 'authority': 'api.stripe.com'}}, id='emissary_access_prefix'),
    # istio/istio PR #35337 (howardjohn): Istio's 1.9+ format with %DOWNSTREAM_PEER_URI_SAN% before
    # %ROUTE_NAME%; its first two lines are the PR's own
    pytest.param('[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% "%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %DOWNSTREAM_PEER_URI_SAN% %ROUTE_NAME%',
     ['[2021-09-23T23:40:40.289Z] "GET / HTTP/1.1" 200 - via_upstream - "-" 0 603 8 8 "-" "curl/7.69.1" "51531b24-e16f-4ac9-ab6c-667711893a60" "echo" "10.244.0.12:80" outbound|80||echo.default.svc.cluster.local 10.244.0.11:35560 10.96.116.201:80 10.244.0.11:39818 - - default',
      '[2021-09-23T23:40:40.289Z] "GET / HTTP/1.1" 200 - via_upstream - "-" 0 603 0 0 "-" "curl/7.69.1" "51531b24-e16f-4ac9-ab6c-667711893a60" "echo" "10.244.0.12:80" inbound|80|| 127.0.0.6:58943 10.244.0.12:80 10.244.0.11:35560 outbound_.80_._.echo.default.svc.cluster.local spiffe://cluster.local/ns/default/sa/default default',
      '[2021-09-23T23:40:41.001Z] "GET /get HTTP/1.1" 200 - via_upstream - "-" 0 512 120 118 "-" "curl/7.69.1" "61531b24-e16f-4ac9-ab6c-667711893a61" "httpbin.org" "34.227.213.82:80" PassthroughCluster 10.244.0.11:41000 34.227.213.82:80 10.244.0.11:40998 - - allow_any',
      '[2021-09-23T23:40:42.500Z] "- - -" 0 UH - - "-" 0 0 0 - "-" "-" "-" "-" "-" BlackHoleCluster - 104.18.2.2:443 10.244.0.11:41234 api.openai.com - -',
      '[2021-09-23T23:40:43.100Z] "GET /status/418 HTTP/1.1" 503 UF,URX upstream_reset_before_response_started{connection_failure} - "TLS error: 268436501:SSL routines:OPENSSL_internal:SSLV3_ALERT_CERTIFICATE_EXPIRED" 0 91 30 - "-" "curl/7.69.1" "71531b24-e16f-4ac9-ab6c-667711893a62" "secure.example.com" "93.184.216.34:443" outbound|443||secure.example.com 10.244.0.11:42000 240.240.0.3:443 10.244.0.11:41999 - - -',
      '[2021-09-23T23:40:44.000Z] "- - -" 0 - - - "-" 1024 4096 2000 - "-" "-" "-" "-" "10.244.0.12:8443" inbound|8443|| 127.0.0.6:40001 10.244.0.12:8443 10.244.0.11:50000 outbound_.8443_._.tcp-echo.default.svc.cluster.local spiffe://cluster.local/ns/default/sa/sleep -'],
     {1: {'requested_server_name': 'outbound_.80_._.echo.default.svc.cluster.local', 'route_name': 'default', 'downstream_peer_uri_san': 'spiffe://cluster.local/ns/default/sa/default', 'upstream_cluster_direction': 'inbound'}, 3: {'upstream_cluster': 'BlackHoleCluster', 'requested_server_name': 'api.openai.com', 'downstream_local_address_ip': '104.18.2.2', 'downstream_peer_uri_san': None, 'method': None}, 4: {'upstream_transport_failure_reason': 'TLS error: 268436501:SSL routines:OPENSSL_internal:SSLV3_ALERT_CERTIFICATE_EXPIRED'}}, id='istio_downstream_peer_uri_san'),
    # oneuptime.com, 'How to Configure Access Log Format in Istio' (2026-02-24): a shorter
    # meshConfig.accessLogFormat, %UPSTREAM_HOST% unquoted
    pytest.param('[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %UPSTREAM_HOST% "%REQ(X-REQUEST-ID)%"',
     ['[2024-01-15T10:30:00.000Z] "GET /api/users HTTP/1.1" 200 - 0 1234 45 10.244.1.5:8080 "abc-123"',
      '[2024-01-15T10:30:01.010Z] "POST /api/users HTTP/2" 201 - 220 88 12 10.244.1.5:8080 "abc-124"',
      '[2024-01-15T10:30:02.020Z] "GET /v1/models HTTP/1.1" 200 - 0 9812 310 104.18.6.192:443 "abc-125"',
      '[2024-01-15T10:30:03.030Z] "- - -" 0 UH 0 0 0 - "-"',
      '[2024-01-15T10:30:04.040Z] "GET /slow HTTP/1.1" 504 UT 0 24 15001 10.244.1.9:8080 "abc-126"'],
     {2: {'upstream_host_ip': '104.18.6.192', 'request_id': 'abc-125'}, 3: {'response_flags': ['UH'], 'upstream_host': None}}, id='oneuptime_simplified'),
    # go.jacobcolvin.com/terrarium (its envoy package's accessLogFormat): logfmt key=value pairs,
    # values that may hold spaces quoted (Envoy escapes none: the last line's user agent holds quotes)
    pytest.param('time=%START_TIME% method=%REQ(:METHOD)% path="%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%" protocol=%PROTOCOL% status=%RESPONSE_CODE% flags=%RESPONSE_FLAGS% rx_bytes=%BYTES_RECEIVED% tx_bytes=%BYTES_SENT% duration=%DURATION% upstream_time=%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% forwarded_for="%REQ(X-FORWARDED-FOR)%" user_agent="%REQ(USER-AGENT)%" request_id="%REQ(X-REQUEST-ID)%" authority="%REQ(:AUTHORITY)%" upstream=%UPSTREAM_HOST% sni="%REQUESTED_SERVER_NAME%"',
     ['time=2025-03-01T12:00:00.101Z method=GET path="/repos/foo/bar" protocol=HTTP/1.1 status=200 flags=- rx_bytes=0 tx_bytes=5120 duration=88 upstream_time=85 forwarded_for="-" user_agent="curl/8.5.0" request_id="0d5e1c1e-1111-4a4a-9b9b-000000000001" authority="api.github.com" upstream=140.82.112.6:443 sni="-"',
      'time=2025-03-01T12:00:01.202Z method=- path="-" protocol=- status=0 flags=- rx_bytes=517 tx_bytes=4033 duration=1501 upstream_time=- forwarded_for="-" user_agent="-" request_id="-" authority="-" upstream=151.101.1.194:443 sni="pypi.org"',
      'time=2025-03-01T12:00:02.303Z method=- path="-" protocol=- status=0 flags=NR rx_bytes=0 tx_bytes=0 duration=0 upstream_time=- forwarded_for="-" user_agent="-" request_id="-" authority="-" upstream=- sni="evil.example.com"',
      'time=2025-03-01T12:00:03.404Z method=POST path="/v1/messages" protocol=HTTP/2 status=403 flags=- rx_bytes=812 tx_bytes=19 duration=1 upstream_time=- forwarded_for="-" user_agent="python-httpx/0.27.0" request_id="0d5e1c1e-1111-4a4a-9b9b-000000000004" authority="api.anthropic.com" upstream=- sni="api.anthropic.com"',
      'time=2025-03-01T12:00:04.505Z method=GET path="/simple/requests/" protocol=HTTP/1.1 status=503 flags=UF rx_bytes=0 tx_bytes=91 duration=5002 upstream_time=- forwarded_for="-" user_agent="pip/24.0 {"ci":null,"cpu":"x86_64"}" request_id="0d5e1c1e-1111-4a4a-9b9b-000000000005" authority="pypi.org" upstream=151.101.1.194:443 sni="pypi.org"'],
     {1: {'requested_server_name': 'pypi.org', 'method': None, 'upstream_host_port': 443}, 4: {'user_agent': 'pip/24.0 {"ci":null,"cpu":"x86_64"}', 'response_flags': ['UF']}}, id='terrarium_logfmt'),
    # an Envoy allowlist proxy's src/envoyConfig.ts (susentorno: CFGM|<path>|…): '|'-separated,
    # %START_TIME(%Y-%m-%dT%H:%M:%S)%, neither upstream host nor cluster
    pytest.param('CFGM|http|%START_TIME(%Y-%m-%dT%H:%M:%S)%|%REQUESTED_SERVER_NAME%|%REQ(:AUTHORITY)%|%RESPONSE_CODE_DETAILS%|%RESPONSE_CODE%|%RESPONSE_FLAGS%|%DURATION%|%BYTES_SENT%|%ROUTE_NAME%',
     ['CFGM|http|2025-06-10T08:15:02|-|registry.npmjs.org|via_upstream|200|-|143|20481|-',
      'CFGM|http|2025-06-10T08:15:03|-|example.com|route_not_found|404|NR|0|0|-',
      'CFGM|http|2025-06-10T08:15:04|-|deb.debian.org|via_upstream|200|-|512|1048576|-',
      'CFGM|http|2025-06-10T08:15:05|-|169.254.169.254|route_not_found|404|NR|0|0|-',
      'CFGM|http|2025-06-10T08:15:06|-|github.com|upstream_reset_before_response_started{connection_termination}|503|UC|30012|95|-'],
     {0: {'start_time': '2025-06-10T08:15:02.000Z', 'authority': 'registry.npmjs.org', 'response_code_details': 'via_upstream', 'bytes_sent': 20481}, 4: {'response_flags': ['UC'], 'duration': 30012}}, id='cfgm_pipes'),
    # mosn/mosn docs, MOSN as Envoy's network extension (mosn-on-envoy-access.log): '||'-separated,
    # %REQ(X?Y)%, %DYNAMIC_METADATA(…)% (a string as Envoy before 1.19 logs it: JSON, quoted; stored unquoted), %CONNECTION_ID%
    pytest.param('%START_TIME%||%REQ(SOFA-TRACEID?TRI-TRACE-TRACEID)%||%REQ(SOFA-RPCID?TRI-TRACE-RPCID)%||%REQ(:METHOD)%||%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%||%PROTOCOL%||%DOWNSTREAM_REMOTE_ADDRESS%||%DOWNSTREAM_LOCAL_ADDRESS%||%REQ(HOST)%||%DOWNSTREAM_TLS_VERSION%||%DOWNSTREAM_TLS_CIPHER%||%RESPONSE_CODE%||%RESPONSE_FLAGS%||%RESP(GRPC-STATUS)%||%UPSTREAM_TRANSPORT_FAILURE_REASON%||%BYTES_RECEIVED%||%BYTES_SENT%||%DURATION%||%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%||%REQ(X-FORWARDED-FOR)%||%REQ(USER-AGENT)%||%REQ(X-REQUEST-ID)%||%REQ(:AUTHORITY)%||%UPSTREAM_HOST%||%ROUTE_NAME%||%UPSTREAM_CLUSTER%||%UPSTREAM_LOCAL_ADDRESS%||%DYNAMIC_METADATA(envoy.lb:idc)%||%CONNECTION_ID%||%REQUEST_DURATION%||%RESPONSE_DURATION%||%RESPONSE_TX_DURATION%||%RESPONSE_CODE_DETAILS%||%CONNECTION_TERMINATION_DETAILS%||%REQ(req-start-time)%||%DYNAMIC_METADATA(golang.extention:cost_total)%||%DYNAMIC_METADATA(golang.extention:cost_decode)%||%DYNAMIC_METADATA(golang.extention:cost_encode)%||',
     ['2023-04-11T07:21:03.118Z||0a0f3c2d1681197663118100112345||0||GET||/||HTTP/1.1||127.0.0.1:53312||127.0.0.1:2990||localhost:2990||-||-||200||-||-||-||0||17||3||2||-||curl/7.79.1||-||localhost:2990||127.0.0.1:3450||moe||test||127.0.0.1:38122||"s1"||12||2||3||3||via_upstream||-||-||1021||402||311||',
      '2023-04-11T07:21:04.520Z||-||-||GET||/||HTTP/1.1||127.0.0.1:53314||127.0.0.1:2990||localhost:2990||-||-||200||-||-||-||0||17||2||1||-||curl/7.79.1||-||localhost:2990||127.0.0.1:3452||moe||test||127.0.0.1:38124||"s2"||13||1||2||2||via_upstream||-||-||988||390||300||',
      '2023-04-11T07:21:05.001Z||-||-||GET||/status.taobao||HTTP/1.1||127.0.0.1:53316||127.0.0.1:2990||localhost:2990||-||-||200||-||-||-||0||0||0||-||-||curl/7.79.1||-||localhost:2990||-||status||-||-||-||14||0||0||0||direct_response||-||-||-||-||-||',
      '2023-04-11T07:21:06.777Z||-||-||POST||/com.alipay.Hello/Say||HTTP/2||10.0.0.8:40100||10.0.0.2:2990||-||TLSv1.3||TLS_AES_128_GCM_SHA256||503||UF,URX||-||delayed connect error: 111||120||91||5003||-||-||grpc-java-netty/1.52.1||-||hello.example:2990||10.0.0.9:3453||moe||test||-||"s3"||15||-||-||5003||upstream_reset_before_response_started{connection_failure,delayed_connect_error:_111}||-||-||-||-||-||',
      '2023-04-11T07:21:07.000Z||-||-||POST||/com.alipay.Hello/Say||HTTP/2||10.0.0.8:40102||10.0.0.2:2990||-||TLSv1.3||TLS_AES_128_GCM_SHA256||200||-||0||-||130||62||7||6||-||grpc-java-netty/1.52.1||-||hello.example:2990||10.0.0.9:3453||moe||test||10.0.0.2:51000||"s3"||16||1||6||7||via_upstream||-||1681197667000||2001||800||700||'],
     {0: {'sofa_traceid': '0a0f3c2d1681197663118100112345', 'dynamic_metadata_envoy_lb_idc': 's1', 'connection_id': 12, 'request_duration': 2, 'req_host': 'localhost:2990', 'upstream_cluster': 'test'}, 3: {'upstream_transport_failure_reason': 'delayed connect error: 111', 'downstream_tls_version': 'TLSv1.3', 'response_tx_duration': 5003, 'request_duration': None}, 4: {'grpc_status': '0', 'req_start_time': '1681197667000', 'dynamic_metadata_golang_extention_cost_encode': '700'}}, id='mosn_on_envoy_double_pipes'),
    # istio/istio #48148 (zirain's answer): %CEL(filter_state['wasm.upstream_peer'].cluster_id)%,
    # the source's and destination's cluster as key=value
    pytest.param("[%START_TIME%] %REQ(:METHOD)% %REQ(:PATH)% %RESPONSE_CODE% %UPSTREAM_CLUSTER% src_cluster=%CEL(filter_state['wasm.downstream_peer'].cluster_id)% dst_cluster=%CEL(filter_state['wasm.upstream_peer'].cluster_id)%",
     ['[2024-01-01T00:00:00.000Z] GET /a 200 outbound|80||b.ns.svc.cluster.local src_cluster=cluster-east dst_cluster=cluster-west',
      '[2024-01-01T00:00:00.000Z] GET /a 200 PassthroughCluster src_cluster=cluster-east dst_cluster=-',
      '[2024-01-01T00:00:01.250Z] POST /v1/chat/completions 200 outbound|443||api.openai.com src_cluster=cluster-east dst_cluster=-',
      '[2024-01-01T00:00:02.000Z] GET /ratings/0 503 outbound|9080||ratings.bookinfo.svc.cluster.local src_cluster=cluster-east dst_cluster=cluster-west',
      '[2024-01-01T00:00:03.000Z] - - 0 BlackHoleCluster src_cluster=cluster-east dst_cluster=-'],
     {0: {'cel_filter_state_wasm_downstream_peer_cluster_id': 'cluster-east', 'cel_filter_state_wasm_upstream_peer_cluster_id': 'cluster-west'}, 1: {'cel_filter_state_wasm_upstream_peer_cluster_id': None, 'upstream_cluster': 'PassthroughCluster'}}, id='istio_cel_peer_cluster'),
    # envoyproxy/envoy #21636: node_name: %ENVIRONMENT(NODE_NAME)% (and the pod's name), Envoy >= 1.19
    pytest.param('[%START_TIME%] "%REQ(:METHOD)% %REQ(:PATH)% %PROTOCOL%" %RESPONSE_CODE% %UPSTREAM_CLUSTER% node_name=%ENVIRONMENT(NODE_NAME)% pod=%ENVIRONMENT(POD_NAME)%',
     ['[2024-01-01T00:00:00.000Z] "GET /a HTTP/1.1" 200 outbound|80||b.ns.svc.cluster.local node_name=ip-10-0-1-5.ec2.internal pod=web-7d9c-abcde',
      '[2024-01-01T00:00:01.000Z] "POST /v1/payments HTTP/2" 201 outbound|443||api.stripe.com node_name=ip-10-0-1-5.ec2.internal pod=web-7d9c-abcde',
      '[2024-01-01T00:00:02.000Z] "GET / HTTP/1.1" 502 - node_name=ip-10-0-1-6.ec2.internal pod=web-7d9c-fghij',
      '[2024-01-01T00:00:03.000Z] "- - -" 0 PassthroughCluster node_name=ip-10-0-1-6.ec2.internal pod=web-7d9c-fghij',
      '[2024-01-01T00:00:04.000Z] "GET /healthz HTTP/1.1" 200 inbound|8080|| node_name=ip-10-0-1-6.ec2.internal pod=web-7d9c-fghij'],
     {0: {'environment_node_name': 'ip-10-0-1-5.ec2.internal', 'environment_pod_name': 'web-7d9c-abcde', 'protocol': 'HTTP/1.1'}}, id='envoy_environment'),
    # istio/istio #24318: accessLogEncoding JSON, an accessLogFormat with a constant log_type key
    # (the keys the issue shows, then Istio 1.6's own; json_format then: every value a string, '-' unset)
    pytest.param('{\n  "log_type": "access_log",\n  "start_time": "%START_TIME%",\n  "route_name": "%ROUTE_NAME%",\n  "method": "%REQ(:METHOD)%",\n  "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",\n  "protocol": "%PROTOCOL%",\n  "response_code": "%RESPONSE_CODE%",\n  "response_flags": "%RESPONSE_FLAGS%",\n  "bytes_received": "%BYTES_RECEIVED%",\n  "bytes_sent": "%BYTES_SENT%",\n  "duration": "%DURATION%",\n  "upstream_service_time": "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%",\n  "x_forwarded_for": "%REQ(X-FORWARDED-FOR)%",\n  "user_agent": "%REQ(USER-AGENT)%",\n  "request_id": "%REQ(X-REQUEST-ID)%",\n  "authority": "%REQ(:AUTHORITY)%",\n  "upstream_host": "%UPSTREAM_HOST%",\n  "upstream_cluster": "%UPSTREAM_CLUSTER%",\n  "upstream_local_address": "%UPSTREAM_LOCAL_ADDRESS%",\n  "downstream_local_address": "%DOWNSTREAM_LOCAL_ADDRESS%",\n  "downstream_remote_address": "%DOWNSTREAM_REMOTE_ADDRESS%",\n  "requested_server_name": "%REQUESTED_SERVER_NAME%",\n  "upstream_transport_failure_reason": "%UPSTREAM_TRANSPORT_FAILURE_REASON%"\n}',
     ['{"log_type":"access_log","start_time":"2020-06-02T10:11:12.131Z","route_name":"default","method":"GET","path":"/productpage","protocol":"HTTP/1.1","response_code":"200","response_flags":"-","bytes_received":"0","bytes_sent":"5183","duration":"30","upstream_service_time":"29","x_forwarded_for":"-","user_agent":"curl/7.64.0","request_id":"3c8a9f5e-1b8b-9a0a-b1c2-d3e4f5a6b7c8","authority":"productpage:9080","upstream_host":"10.1.2.3:9080","upstream_cluster":"outbound|9080||productpage.default.svc.cluster.local","upstream_local_address":"10.1.2.9:45678","downstream_local_address":"10.96.5.5:9080","downstream_remote_address":"10.1.2.9:45676","requested_server_name":"-","upstream_transport_failure_reason":"-"}',
      '{"log_type":"access_log","start_time":"2020-06-02T10:11:13.000Z","route_name":"allow_any","method":"GET","path":"/ip","protocol":"HTTP/1.1","response_code":"200","response_flags":"-","bytes_received":"0","bytes_sent":"31","duration":"140","upstream_service_time":"139","x_forwarded_for":"-","user_agent":"curl/7.64.0","request_id":"4c8a9f5e-1b8b-9a0a-b1c2-d3e4f5a6b7c8","authority":"httpbin.org","upstream_host":"34.227.213.82:80","upstream_cluster":"PassthroughCluster","upstream_local_address":"10.1.2.9:45680","downstream_local_address":"34.227.213.82:80","downstream_remote_address":"10.1.2.9:45679","requested_server_name":"-","upstream_transport_failure_reason":"-"}',
      '{"log_type":"access_log","start_time":"2020-06-02T10:11:14.500Z","route_name":"-","method":"-","path":"-","protocol":"-","response_code":"0","response_flags":"UH","bytes_received":"0","bytes_sent":"0","duration":"0","upstream_service_time":"-","x_forwarded_for":"-","user_agent":"-","request_id":"-","authority":"-","upstream_host":"-","upstream_cluster":"BlackHoleCluster","upstream_local_address":"-","downstream_local_address":"104.16.1.1:443","downstream_remote_address":"10.1.2.9:45690","requested_server_name":"-","upstream_transport_failure_reason":"-"}',
      '{"log_type":"access_log","start_time":"2020-06-02T10:11:15.250Z","route_name":"-","method":"-","path":"-","protocol":"-","response_code":"0","response_flags":"-","bytes_received":"812","bytes_sent":"4410","duration":"230","upstream_service_time":"-","x_forwarded_for":"-","user_agent":"-","request_id":"-","authority":"-","upstream_host":"142.250.1.1:443","upstream_cluster":"outbound|443||www.google.com","upstream_local_address":"10.1.2.9:45700","downstream_local_address":"240.240.0.5:443","downstream_remote_address":"10.1.2.9:45699","requested_server_name":"www.google.com","upstream_transport_failure_reason":"-"}',
      '{"log_type":"access_log","start_time":"2020-06-02T10:11:16.001Z","route_name":"default","method":"POST","path":"/reviews/0","protocol":"HTTP/2","response_code":"503","response_flags":"UF,URX","bytes_received":"10","bytes_sent":"91","duration":"12","upstream_service_time":"-","x_forwarded_for":"-","user_agent":"Go-http-client/2.0","request_id":"5c8a9f5e-1b8b-9a0a-b1c2-d3e4f5a6b7c8","authority":"reviews:9080","upstream_host":"10.1.2.4:9080","upstream_cluster":"outbound|9080||reviews.default.svc.cluster.local","upstream_local_address":"-","downstream_local_address":"10.96.5.6:9080","downstream_remote_address":"10.1.2.9:45710","requested_server_name":"-","upstream_transport_failure_reason":"TLS error: 268435581:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED"}'],
     {0: {'response_code': 200, 'upstream_service_time': 29, 'upstream_cluster_host': 'productpage.default.svc.cluster.local'}, 2: {'upstream_cluster': 'BlackHoleCluster', 'method': None, 'response_flags': ['UH']}, 4: {'upstream_transport_failure_reason': 'TLS error: 268435581:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED', 'upstream_local_address': None}}, id='istio_json_log_type'),
    # uswitch/yggdrasil PR #78 (docs, accessLogger.format): json_format with %START_TIME(%s.%3f)%,
    # values typed, null unset
    pytest.param('{"start_time": "%START_TIME(%s.%3f)%", "bytes_received": "%BYTES_RECEIVED%", "protocol": "%PROTOCOL%", "response_code": "%RESPONSE_CODE%", "bytes_sent": "%BYTES_SENT%", "duration": "%DURATION%", "response_flags": "%RESPONSE_FLAGS%", "upstream_host": "%UPSTREAM_HOST%", "upstream_cluster": "%UPSTREAM_CLUSTER%", "upstream_local_address": "%UPSTREAM_LOCAL_ADDRESS%", "downstream_remote_address": "%DOWNSTREAM_REMOTE_ADDRESS%", "downstream_local_address": "%DOWNSTREAM_LOCAL_ADDRESS%", "request_method": "%REQ(:METHOD)%", "request_path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%", "upstream_service_time": "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%", "forwarded_for": "%REQ(X-FORWARDED-FOR)%", "user_agent": "%REQ(USER-AGENT)%", "request_id": "%REQ(X-REQUEST-ID)%"}',
     ['{"start_time":"1688644862.123","bytes_received":0,"protocol":"HTTP/1.1","response_code":200,"bytes_sent":612,"duration":3,"response_flags":"-","upstream_host":"10.2.3.4:80","upstream_cluster":"default_web_80","upstream_local_address":"10.9.0.1:40000","downstream_remote_address":"10.0.0.5:51234","downstream_local_address":"10.9.0.1:8080","request_method":"GET","request_path":"/","upstream_service_time":"2","forwarded_for":"81.2.69.160","user_agent":"Mozilla/5.0","request_id":"e0b5c6d7-0000-4000-8000-00000000000a"}',
      '{"start_time":"1688644863.004","bytes_received":120,"protocol":"HTTP/2","response_code":503,"bytes_sent":19,"duration":1001,"response_flags":"UF","upstream_host":"10.2.3.5:80","upstream_cluster":"default_api_80","upstream_local_address":null,"downstream_remote_address":"10.0.0.6:51235","downstream_local_address":"10.9.0.1:8443","request_method":"POST","request_path":"/v1/x","upstream_service_time":null,"forwarded_for":null,"user_agent":"okhttp/4.9.3","request_id":"e0b5c6d7-0000-4000-8000-00000000000b"}',
      '{"start_time":"1688644864.999","bytes_received":0,"protocol":"HTTP/1.1","response_code":404,"bytes_sent":0,"duration":0,"response_flags":"NR","upstream_host":null,"upstream_cluster":null,"upstream_local_address":null,"downstream_remote_address":"10.0.0.7:51236","downstream_local_address":"10.9.0.1:8080","request_method":"GET","request_path":"/nope","upstream_service_time":null,"forwarded_for":null,"user_agent":"curl/8.0","request_id":"e0b5c6d7-0000-4000-8000-00000000000c"}',
      '{"start_time":"1688644865.000","bytes_received":0,"protocol":"HTTP/1.1","response_code":200,"bytes_sent":43,"duration":88,"response_flags":"-","upstream_host":"93.184.216.34:443","upstream_cluster":"example_com_443","upstream_local_address":"10.9.0.1:40002","downstream_remote_address":"10.0.0.5:51237","downstream_local_address":"10.9.0.1:8080","request_method":"GET","request_path":"/","upstream_service_time":"87","forwarded_for":null,"user_agent":"curl/8.0","request_id":"e0b5c6d7-0000-4000-8000-00000000000d"}',
      '{"start_time":"1688644866.250","bytes_received":0,"protocol":"HTTP/1.1","response_code":200,"bytes_sent":12,"duration":1,"response_flags":"-","upstream_host":"10.2.3.4:80","upstream_cluster":"default_web_80","upstream_local_address":"10.9.0.1:40003","downstream_remote_address":"[2001:db8::5]:51238","downstream_local_address":"[2001:db8::1]:8080","request_method":"GET","request_path":"/health","upstream_service_time":"0","forwarded_for":null,"user_agent":"kube-probe/1.27","request_id":"e0b5c6d7-0000-4000-8000-00000000000e"}'],
     {0: {'start_time': '2023-07-06T12:01:02.123Z', 'x_forwarded_for': '81.2.69.160', 'method': 'GET', 'path': '/'}, 4: {'downstream_remote_address_ip': '2001:db8::5', 'upstream_service_time': 0}}, id='yggdrasil_json_epoch'),
]


@pytest.mark.parametrize("fmt, lines, expected", WILD)
def test_a_wild_format_reads_every_line_into_its_columns(tmp_path, fmt, lines, expected):
    log = tmp_path / "a.log"
    log.write_text("\n".join(lines) + "\n")
    got = run_logpipe("parse", "-o", "ndjson", "--format-string", fmt, log)
    assert got.returncode == 0, got.stderr
    assert f"read {len(lines)}, parsed {len(lines)}, rejected 0" in got.stderr, got.stderr
    records = [json.loads(r) for r in got.stdout.splitlines()]
    assert all(r["log_format"] in ("custom", "custom_json") for r in records)
    for at, want in expected.items():
        assert {k: records[at].get(k, "(no column)") for k in want} == want, (at, records[at])


# ---- a Kubernetes object as JSON holds its format as its YAML does -----------------------------------

ISTIO_PR_35337 = WILD[2].values[0]


@pytest.mark.parametrize("indent", [4, "\t", None])
def test_a_configmap_as_json_is_read_for_the_format_it_holds(tmp_path, indent):
    """`kubectl get configmap istio -n istio-system -o json > mesh.json` (and a Telemetry or an
    IstioOperator as JSON) was taken for a JSON format object, for its '{': 'the JSON format maps no
    key to an Envoy command operator'. It is read as its YAML is (JSON indented with tabs is no YAML,
    so from the JSON itself); a format object is still one."""
    mesh = f"accessLogFile: /dev/stdout\naccessLogFormat: |\n  {ISTIO_PR_35337}\n"
    configmap = {"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": "istio", "namespace": "istio-system", "labels": {"istio.io/rev": "default"}},
                 "data": {"mesh": mesh, "meshNetworks": "networks: {}"}}
    path = tmp_path / "mesh.json"
    path.write_text(json.dumps(configmap, indent=indent))
    assert formatfile.read_format_file(str(path)) == ISTIO_PR_35337 + "\n"
    log = tmp_path / "a.log"
    log.write_text("\n".join(WILD[2].values[1]) + "\n")
    got = run_logpipe("parse", "-o", "ndjson", "--format-file", path, log)
    assert got.returncode == 0 and "parsed 6, rejected 0" in got.stderr, got.stderr
    telemetry = {"apiVersion": "telemetry.istio.io/v1", "kind": "Telemetry", "metadata": {"name": "mesh-default"},
                 "spec": {"accessLogging": [{"providers": [{"name": "text-log"}]}]}}
    operator = {"apiVersion": "install.istio.io/v1alpha1", "kind": "IstioOperator", "spec": {"meshConfig": {
        "extensionProviders": [{"name": "text-log", "envoyFileAccessLog": {"path": "/dev/stdout",
                                                                          "logFormat": {"text": ISTIO_PR_35337}}}]}}}
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": [operator, telemetry]}, indent=indent))
    assert formatfile.read_format_file(str(path)) == ISTIO_PR_35337
    fmt = {"start_time": "%START_TIME%", "request": {"method": "%REQ(:METHOD)%"}, "labels": "x"}
    path.write_text(json.dumps(fmt, indent=indent))
    assert formatfile.read_format_file(str(path)) == fmt


# ---- what the egress reports can judge of a format ---------------------------------------------------

CFGM = WILD[5].values[0]


def test_a_format_without_cluster_or_upstream_host_says_its_lines_are_no_egress(tmp_path):
    """A format that logs neither the cluster nor the upstream host (an allowlist proxy's: SNI, authority,
    details, code) gave the note for a format without a cluster, 'a row to a public upstream_host is
    egress_kind public_ip', and an inventory with no destination: traffic.sql has nothing to judge
    egress by. The note says so and names both operators; a format with the upstream host keeps the
    cluster's note."""
    log, data = tmp_path / "a.log", tmp_path / "data"
    log.write_text("\n".join(WILD[5].values[1]) + "\n")
    got = run_logpipe("ingest", "--format-string", CFGM, log, "--data", data)
    assert got.returncode == 0, got.stderr
    assert ("note: the format logs neither %UPSTREAM_CLUSTER_RAW% (or %UPSTREAM_CLUSTER%) nor %UPSTREAM_HOST%, so "
            "the egress reports find no egress in its lines") in got.stderr, got.stderr
    assert "public_ip" not in got.stderr
    got = run_logpipe("report", "inventory", "--data", data, "-o", "json")
    assert got.returncode == 0 and json.loads(got.stdout)["destinations"] == []
    with_host = CFGM.replace("%BYTES_SENT%", "%BYTES_SENT%|%UPSTREAM_HOST%")
    got = run_logpipe("parse", "-o", "ndjson", "--format-string", with_host, log)
    assert "logs no %UPSTREAM_CLUSTER_RAW% (or %UPSTREAM_CLUSTER%), so the egress reports cannot tell" in got.stderr


def test_upstream_remote_address_without_port_is_the_upstream_s_ip(tmp_path):
    """%UPSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% (Envoy's IP of the upstream host alone) fills upstream_host_ip,
    as the downstream ones fill theirs, so a format without the cluster is judged by it (public_ip); it
    was an extra text column, and the format's lines no egress at all. Beside %UPSTREAM_HOST% (which
    fills upstream_host_ip itself) it stays a column of its own."""
    fmt = "%START_TIME% %REQ(:AUTHORITY)% %UPSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% %RESPONSE_CODE%"
    log, data = tmp_path / "a.log", tmp_path / "data"
    log.write_text("2025-03-08T10:00:00.000Z api.example.com 203.0.113.7 200\n"
                   "2025-03-08T10:00:01.000Z db.internal 10.0.0.9 200\n")
    got = run_logpipe("ingest", "--format-string", fmt, log, "--data", data)
    assert got.returncode == 0 and "nor %UPSTREAM_HOST%" not in got.stderr, got.stderr
    got = run_logpipe("query", "--data", data, "-o", "json", "--sql",
                      "select egress_kind, destination, destination_ip from egress")
    assert json.loads(got.stdout) == [{"egress_kind": "public_ip", "destination": "api.example.com",
                                       "destination_ip": "203.0.113.7"}], got.stderr
    both = fmt.replace("%RESPONSE_CODE%", '"%UPSTREAM_HOST%"')
    log.write_text('2025-03-08T10:00:00.000Z api.example.com 203.0.113.7 "203.0.113.8:443"\n')
    got = run_logpipe("parse", "-o", "ndjson", "--format-string", both, log)
    row = json.loads(got.stdout)
    assert (row["upstream_host_ip"], row["upstream_remote_address_without_port"]) == ("203.0.113.8", "203.0.113.7"), row
