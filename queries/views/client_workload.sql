-- client_workload(client): the workload a pod is of, for judging whether a client is known (the
-- traffic view's source_owner, of ztunnel's names: a name --pods gives is its owner's, which its owner
-- chose, and is not cut: `ns/proxy-https` is no `ns/proxy`; logpipe/reports.py's _POD_ROWS makes a
-- CronJob run's Job, `ops/backup-29078747`, its CronJob's): a pod's name as ztunnel logs it (namespace/pod) without the
-- suffixes Kubernetes generates, so that a Deployment's next pods (a deploy, a restart: a new
-- pod-template hash and random suffix, `shop/payments-5f7c9d8b6-q8r2t` → `shop/payments`), a CronJob's
-- next run (`ops/backup-29078747-qk5qf` → `ops/backup`) and a
-- DaemonSet's or Job's pods (`-x7k2p`) are the workload the baseline knows. The generated parts are
-- Kubernetes' random strings (its alphabet has no vowels and no 0, 1 or 3), a Deployment's
-- pod-template hash (a 32-bit hash's decimal digits, each one of `456789bcdf`: SafeEncodeString maps a
-- character by its code mod 27 into that alphabet, so `-grpcws-x7k2p`, a DaemonSet `app-grpcws`'s pod,
-- is no Deployment `app`'s) and a CronJob's scheduled time in minutes (8 digits and more); a StatefulSet's `web-0` and a name of words stay as they are,
-- and so do an IP (no '/') and the unknown client. The findings still name the client itself.
CREATE OR REPLACE MACRO client_workload(client) AS (
    CASE WHEN contains(client, '/')
        THEN regexp_replace(client,
            '-(([0-9]{8,}|[4-9bcdf]{6,10})-[bcdfghjklmnpqrstvwxz2456789]{5}|[bcdfghjklmnpqrstvwxz2456789]{5}|[0-9]{8,})$', '')
        ELSE client END
);
