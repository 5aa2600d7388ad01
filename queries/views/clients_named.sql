-- clients_named(sources): a group's clients as a list (list(DISTINCT source_ip) of the group), sorted,
-- the one not in the logs named so and last: the inventory's and registry_only's `sources`.
CREATE OR REPLACE MACRO clients_named(sources) AS (
    list_transform(list_sort(sources, 'ASC', 'NULLS LAST'), lambda s: client_named(s))
);
