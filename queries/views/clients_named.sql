-- clients_named(names): a group's clients as a list (list(DISTINCT client_named(source_workload,
-- source_ip)) of the group), sorted, the one not in the logs last: the inventory's and registry_only's
-- `sources`.
CREATE OR REPLACE MACRO clients_named(names) AS (
    list_concat(list_sort(list_filter(names, lambda s: s <> client_named(NULL, NULL))),
                list_filter(names, lambda s: s = client_named(NULL, NULL)))
);
