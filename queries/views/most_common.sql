-- most_common(x), an aggregate: the most common non-null value of x, the least of them on a tie (null
-- when there is none). DuckDB's mode() takes, of values as common, the one its hash table met first,
-- which the order of the rows and the threads decide: the inventory's protocol and transport, and
-- registry_only's protocol, changed between two runs of the same data. histogram() counts each value;
-- its entries sorted by count (descending, negated: the count is unsigned) and then value give the one
-- (as fast: 5M rows of 4 values in 1,000 groups, 2 threads, 0.12 s against mode()'s 0.13 s).
CREATE OR REPLACE MACRO most_common(x) AS (
    list_sort(list_transform(map_entries(histogram(x)), lambda e: {'n': -CAST(e.value AS BIGINT), 'v': e.key}))[1].v
);
