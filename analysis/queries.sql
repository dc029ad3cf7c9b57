-- Named queries over the run database. Each block starts with `-- name: <name>`;
-- scalar metrics return one row with one column `value`. Definitions are the docs:
-- docs/ARCHITECTURE.md refers here.

-- name: chaos_events
-- One row per fault, pivoted from its recorded start and end transitions.
CREATE OR REPLACE VIEW chaos_events AS
SELECT fault_id,
       any_value(provider) AS provider,
       any_value(kind) AS kind,
       any_value(params) AS params,
       any_value(planned_start) AS planned_start,
       any_value(planned_end) AS planned_end,
       min(t) FILTER (WHERE event = 'start') AS actual_start,
       max(t) FILTER (WHERE event = 'end') AS actual_end
FROM fault_events
GROUP BY fault_id;

-- name: attempts
-- Upstream exchanges matched to a client request through the correlation tag,
-- numbered in the order the proxy received them.
CREATE OR REPLACE VIEW attempts AS
SELECT u.*, r.worker, r.seq,
       row_number() OVER (PARTITION BY u.tag ORDER BY u.t_request, u.flow_id) AS attempt
FROM upstream u JOIN requests r ON r.tag = u.tag;

-- name: requests_total
SELECT count(*) AS value FROM requests;

-- name: success_rate
-- Share of client requests whose answer was a correct result.
SELECT avg(CASE WHEN outcome = 'ok' THEN 1 ELSE 0 END) AS value FROM requests;

-- name: latency_p50_ms
-- Latency is measured from the intended send time (coordinated-omission-correct).
SELECT quantile_cont(t_done - t_intended, 0.50) / 1e6 AS value FROM requests;

-- name: latency_p95_ms
SELECT quantile_cont(t_done - t_intended, 0.95) / 1e6 AS value FROM requests;

-- name: latency_p99_ms
SELECT quantile_cont(t_done - t_intended, 0.99) / 1e6 AS value FROM requests;

-- name: latency_max_ms
SELECT max(t_done - t_intended) / 1e6 AS value FROM requests;

-- name: upstream_exchanges
SELECT count(*) AS value FROM upstream;

-- name: correlation_coverage
-- Share of upstream exchanges whose tag matches a client request.
SELECT coalesce(avg(CASE WHEN r.tag IS NOT NULL THEN 1 ELSE 0 END), 0) AS value
FROM upstream u LEFT JOIN (SELECT DISTINCT tag FROM requests) r ON r.tag = u.tag;

-- name: amplification
-- Upstream exchanges per client request, over requests matched by tag.
SELECT count(*) / nullif((SELECT count(*) FROM requests), 0) AS value FROM attempts;

-- name: failovers
-- Client requests with a failed upstream attempt followed by a later attempt on a
-- different provider: a failover, proven from recorded exchanges.
SELECT count(DISTINCT f.tag) AS value
FROM attempts f JOIN attempts s
  ON s.tag = f.tag AND s.attempt > f.attempt AND s.provider <> f.provider
WHERE f.outcome <> 'ok';

-- name: failover_extra_latency_ms
-- Median latency of requests that failed over, minus that of requests served by
-- their first attempt.
WITH failed_over AS (
    SELECT DISTINCT f.tag FROM attempts f JOIN attempts s
      ON s.tag = f.tag AND s.attempt > f.attempt AND s.provider <> f.provider
    WHERE f.outcome <> 'ok'
)
SELECT (quantile_cont(r.t_done - r.t_intended, 0.5) FILTER (WHERE fo.tag IS NOT NULL)
      - quantile_cont(r.t_done - r.t_intended, 0.5) FILTER (WHERE fo.tag IS NULL)) / 1e6
       AS value
FROM requests r LEFT JOIN failed_over fo ON fo.tag = r.tag;

-- name: faults_planned
SELECT count(*) AS value FROM chaos_events;

-- name: faults_not_applied
-- Scheduled faults that touched no exchange: the chaos did not happen.
SELECT count(*) AS value FROM chaos_events c
WHERE NOT EXISTS (SELECT 1 FROM upstream u WHERE u.fault_id = c.fault_id);

-- name: requests_not_sent_share
-- Calls the load generator planned but could not send (in-flight cap reached).
SELECT coalesce(sum(CAST(json_extract(detail, '$.not_sent') AS DOUBLE))
       / nullif(sum(CAST(json_extract(detail, '$.planned') AS DOUBLE)), 0), 0) AS value
FROM lifecycle WHERE role = 'loadgen' AND event = 'stopped';

-- name: loadgen_workers_finished
SELECT count(*) AS value FROM lifecycle WHERE role = 'loadgen' AND event = 'stopped';

-- name: provider_breakdown
-- Exchanges per provider and outcome.
SELECT provider, count(*) AS exchanges,
       count(*) FILTER (WHERE outcome = 'ok') AS ok,
       count(*) FILTER (WHERE outcome <> 'ok') AS failed,
       count(*) FILTER (WHERE fault_id IS NOT NULL) AS faulted
FROM upstream GROUP BY provider ORDER BY provider;

-- name: outcome_breakdown
SELECT outcome, count(*) AS requests FROM requests GROUP BY outcome ORDER BY requests DESC;

-- name: fault_timeline
-- Every fault with its planned and actual window (ms after the first planned start of
-- the load) and the exchanges it was applied to.
SELECT c.fault_id, c.provider, c.kind,
       (c.actual_start - c.planned_start) / 1e6 AS start_error_ms,
       (c.actual_end - c.planned_end) / 1e6 AS end_error_ms,
       (SELECT count(*) FROM upstream u WHERE u.fault_id = c.fault_id) AS applied
FROM chaos_events c ORDER BY c.planned_start, c.fault_id;
