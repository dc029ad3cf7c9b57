-- Named queries over the run database. Each block starts with `-- name: <name>`;
-- scalar metrics return one row with one column `value`. The comment under each name
-- is the metric's definition: docs/ARCHITECTURE.md and the reports refer here.
--
-- Times are integer nanoseconds since the Unix epoch. "Run time" is measured from
-- `run_window.t_start` (the load's t0). Derived views and tables are built by ingest
-- (`analysis/database.py`) in the order of its DERIVED list.

-- ===================================================================================
-- Derived views and tables (built at ingest)
-- ===================================================================================

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
       max(t) FILTER (WHERE event = 'end') AS actual_end,
       -- The fault as specified; a schedule may cut one spec into several windows.
       coalesce(any_value(spec_id), fault_id) AS spec_id
FROM fault_events
GROUP BY fault_id;

-- name: run_window
-- The load's interval: from the scenario's t0 (else the first intended send) to just
-- after the last intended send.
CREATE OR REPLACE VIEW run_window AS
SELECT coalesce((SELECT min(t_start) FROM runs),
                (SELECT min(t_intended) FROM requests),
                (SELECT min(t_request) FROM upstream)) AS t_start,
       coalesce((SELECT max(t_intended) + 1 FROM requests),
                (SELECT max(t_request) + 1 FROM upstream)) AS t_end;

-- name: fault_windows
-- Each fault's applied interval (actual times, else planned ones), its recovery
-- window (`settings.recovery_window_ns` after its end) and the next fault's start.
CREATE OR REPLACE VIEW fault_windows AS
WITH f AS (
    SELECT fault_id, provider, kind,
           coalesce(actual_start, planned_start) AS t_from,
           coalesce(actual_end, planned_end, (SELECT t_end FROM run_window)) AS t_to
    FROM chaos_events
)
SELECT f.*, f.t_to + s.recovery_window_ns AS recovery_to,
       coalesce(lead(f.t_from) OVER (ORDER BY f.t_from, f.fault_id),
                (SELECT t_end FROM run_window)) AS next_from
FROM f, settings s;

-- name: phases
-- Named intervals of the run, taken from the applied chaos timeline: `run` (all of
-- it), `before_faults` (up to the first fault's start), `during:<fault>`,
-- `recovery:<fault>` (the recovery window after it ends) and `steady` (the run
-- outside every fault and recovery window; several rows when faults split it).
CREATE OR REPLACE VIEW phases AS
WITH w AS (SELECT * FROM run_window),
marks AS (SELECT t_from, recovery_to AS t_to FROM fault_windows),
ordered AS (
    SELECT t_from, t_to,
           max(t_to) OVER (ORDER BY t_from ROWS BETWEEN UNBOUNDED PRECEDING
                                                AND 1 PRECEDING) AS prev_to
    FROM marks
),
islands AS (
    SELECT t_from, t_to,
           sum(CASE WHEN prev_to IS NULL OR t_from > prev_to THEN 1 ELSE 0 END)
               OVER (ORDER BY t_from ROWS UNBOUNDED PRECEDING) AS grp
    FROM ordered
),
merged AS (SELECT min(t_from) AS a, max(t_to) AS b FROM islands GROUP BY grp),
gaps AS (
    SELECT lag(b) OVER (ORDER BY a) AS t_from, a AS t_to FROM merged
    UNION ALL SELECT (SELECT max(b) FROM merged), NULL
)
SELECT 'run' AS phase, t_start AS t_from, t_end AS t_to FROM w
UNION ALL
SELECT 'before_faults', t_start,
       least(t_end, coalesce((SELECT min(t_from) FROM fault_windows), t_end)) FROM w
UNION ALL
SELECT 'during:' || fault_id, t_from, t_to FROM fault_windows
UNION ALL
SELECT 'recovery:' || fault_id, t_to, recovery_to FROM fault_windows
UNION ALL
SELECT 'steady', greatest(coalesce(g.t_from, w.t_start), w.t_start),
       least(coalesce(g.t_to, w.t_end), w.t_end)
FROM gaps g, w
WHERE least(coalesce(g.t_to, w.t_end), w.t_end)
      > greatest(coalesce(g.t_from, w.t_start), w.t_start);

-- name: attempts
-- Upstream exchanges matched to a client request through the correlation tag,
-- numbered in the order the proxy received them.
CREATE OR REPLACE VIEW attempts AS
SELECT u.*, r.worker, r.seq,
       row_number() OVER (PARTITION BY u.tag ORDER BY u.t_request, u.flow_id) AS attempt
FROM upstream u JOIN requests r ON r.tag = u.tag;

-- name: attempt_source
-- The upstream exchanges attributed to a client request, with that request's tag: by
-- the correlation tag (the exchanges whose tag matches a request).
CREATE OR REPLACE VIEW attempt_source AS
SELECT u.tag, u.provider, u.outcome, u.t_request, u.t_response
FROM upstream u SEMI JOIN requests r ON r.tag = u.tag;

-- name: attempt_source_by_time
-- The time-window fallback, used when under half of the upstream exchanges carry a
-- client's tag (the router strips them): each exchange goes to the client request of
-- the same method sent most recently before it, if that request was still waiting for
-- its answer. With several requests of one method in flight at once this can pick the
-- wrong one of them; the reports label every figure made this way.
CREATE OR REPLACE VIEW attempt_source AS
SELECT r.tag, u.provider, u.outcome, u.t_request, u.t_response
FROM upstream u ASOF JOIN requests r ON r.method = u.method AND u.t_request >= r.t_sent
WHERE u.t_request <= r.t_done;

-- name: request_attempts
-- One row per client request with at least one attributed upstream exchange (see
-- attempt_source):
-- `attempts` (exchanges), `providers` (distinct providers tried), `failed_over` (an
-- attempt that failed was followed by a later attempt on a different provider),
-- `retries_same_provider` (attempts on a provider already tried for this request),
-- `served_by` (the provider of the last attempt), `upstream_ns` (the last attempt's
-- time at the proxy, request to response).
CREATE OR REPLACE TABLE request_attempts AS
-- Two aggregations instead of a window over every attempt (several times faster on
-- tens of millions of exchanges). A request failed over exactly when some attempt
-- after its first failed one went to another provider than that failed one: any later
-- failure is on that same provider and followed only by it, or there was such an
-- attempt. So it is enough to know, per provider, its first failure and its last
-- attempt, and the two providers with the latest last attempts.
WITH per_provider AS (
    SELECT u.tag, u.provider, count(*) AS n,
           min(u.t_request) FILTER (WHERE u.outcome <> 'ok') AS first_fail,
           max(u.t_request) AS last_t,
           arg_max(u.t_response - u.t_request, u.t_request) AS last_ns
    FROM attempt_source u
    GROUP BY u.tag, u.provider
),
per_request AS (
    SELECT tag, sum(n) AS attempts, count(*) AS providers,
           min(first_fail) AS first_fail,
           arg_min(provider, first_fail) AS fail_provider,
           max(struct_pack(t := last_t, p := provider), 2) AS latest,
           arg_max(provider, last_t) AS served_by,
           arg_max(last_ns, last_t) AS upstream_ns
    FROM per_provider GROUP BY tag
)
SELECT tag, attempts::BIGINT AS attempts, providers,
       coalesce(first_fail IS NOT NULL AND (
           (latest[1].p <> fail_provider AND latest[1].t > first_fail)
           OR (len(latest) > 1 AND latest[2].p <> fail_provider
               AND latest[2].t > first_fail)), false) AS failed_over,
       (attempts - providers)::BIGINT AS retries_same_provider, served_by, upstream_ns
FROM per_request;

-- name: requests_x
-- Client requests with their upstream summary (NULL where no exchange correlated) and
-- `latency_ms`. A table, built once: the join by tag is the costliest step of analysis
-- and half the metrics need it.
CREATE OR REPLACE TABLE requests_x AS
SELECT r.worker, r.seq, r.tag, r.transport, r.method, r.t_intended, r.t_sent, r.t_done,
       r.outcome, (r.t_done - r.t_intended) / 1e6 AS latency_ms,
       a.attempts, a.providers, a.failed_over, a.retries_same_provider, a.served_by,
       a.upstream_ns
FROM requests r LEFT JOIN request_attempts a ON a.tag = r.tag;

-- name: true_head
-- The chain's head as a pure function of time (providers/chain.py): block n is
-- produced at genesis_ns + n * block_time_ms * 1e6. NULL when the scenario has no chain.
CREATE OR REPLACE MACRO true_head(t) AS
    CASE WHEN (SELECT genesis_ns FROM settings) IS NULL THEN NULL
         ELSE (t - (SELECT genesis_ns FROM settings))
              // ((SELECT block_time_ms FROM settings) * 1000000) END;

-- name: block_produced_at
CREATE OR REPLACE MACRO block_produced_at(n) AS
    (SELECT genesis_ns FROM settings) + n * (SELECT block_time_ms FROM settings) * 1000000;

-- name: head_checks
-- Every client answer that carries a block number (`result_block`): `lag_blocks` is how
-- many blocks the answer is behind the true head at the time the request was sent
-- (blocks that certainly existed; never negative), `backwards` is true when a request
-- sent after another had completed got a lower block than that one.
CREATE OR REPLACE TABLE head_checks AS
WITH r AS (
    SELECT worker, seq, method, transport, t_intended, t_sent, t_done, result_block
    FROM requests WHERE result_block IS NOT NULL AND outcome = 'ok'
),
seen AS (
    SELECT t_done, max(result_block) OVER (ORDER BY t_done ROWS UNBOUNDED PRECEDING)
               AS seen_max
    FROM r
)
SELECT r.*, greatest(0, true_head(r.t_sent) - r.result_block) AS lag_blocks,
       coalesce(r.result_block < s.seen_max, false) AS backwards, s.seen_max
FROM r ASOF LEFT JOIN seen s ON s.t_done < r.t_sent;

-- name: ws_checks
-- Per subscription (worker, connection, subscription) of kind newHeads, each
-- notification in arrival order, with: `gap_blocks` (blocks skipped since the highest
-- block seen before), `duplicate` (a block number already delivered on it),
-- `out_of_order` (lower than the highest seen, not a duplicate), `parent_break` (the
-- next block's parent_hash is not the hash delivered for the block before it) and
-- `delay_ms` (arrival minus the block's production time: t_produced when recorded,
-- else the chain's schedule).
CREATE OR REPLACE TABLE ws_checks AS
WITH n AS (
    SELECT *, row_number() OVER sub AS i,
           max(block_number) OVER (sub ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
               AS prev_max,
           lag(block_number) OVER sub AS prev_block,
           lag(block_hash) OVER sub AS prev_hash,
           count(*) OVER (PARTITION BY worker, connection, subscription, block_number
                          ORDER BY t_received, log_index
                          ROWS UNBOUNDED PRECEDING) AS seen_times
    FROM ws_notifications WHERE kind = 'newHeads'
    WINDOW sub AS (PARTITION BY worker, connection, subscription
                   ORDER BY t_received, log_index)
)
SELECT worker, connection, subscription, block_number, block_hash, parent_hash,
       t_received, t_produced,
       CASE WHEN prev_max IS NOT NULL AND block_number > prev_max + 1
            THEN block_number - prev_max - 1 ELSE 0 END AS gap_blocks,
       seen_times > 1 AS duplicate,
       seen_times = 1 AND prev_max IS NOT NULL AND block_number < prev_max AS out_of_order,
       prev_block IS NOT NULL AND block_number = prev_block + 1
           AND parent_hash IS DISTINCT FROM prev_hash AS parent_break,
       (t_received - coalesce(t_produced, block_produced_at(block_number))) / 1e6
           AS delay_ms
FROM n;

-- name: ws_resubscribes
-- After each WebSocket disconnect, the time until the same worker's next subscribe
-- (NULL when it never resubscribed).
CREATE OR REPLACE VIEW ws_resubscribes AS
SELECT *, (t_resubscribed - t_disconnect) / 1e6 AS resubscribe_ms FROM (
    SELECT d.worker, d.connection, d.t AS t_disconnect, d.reason, d.close_code,
           (SELECT min(s.t) FROM ws_sessions s
            WHERE s.worker = d.worker AND s.event = 'subscribe' AND s.t > d.t)
               AS t_resubscribed
    FROM ws_sessions d WHERE d.event = 'disconnect'
);

-- name: breaker
-- Per fault, how the router treated the faulted provider. `stop_ms`: from the fault's
-- start to the last exchange before the first pause of at least
-- `settings.breaker_gap_ns` in traffic to that provider (the router stopped sending:
-- its breaker opened); NULL when traffic never paused during the fault.
-- `wasted_attempts`: exchanges sent to it from the fault's start to that moment (all of
-- the fault's when it never stopped). `probes`: exchanges to it after it stopped and
-- before the fault ended. `return_ms`: from the fault's end to the first successful
-- exchange with it (NULL when traffic never came back before the run ended).
CREATE OR REPLACE TABLE breaker AS
WITH ex AS (
    SELECT f.fault_id, u.t_request, u.outcome,
           lead(u.t_request) OVER (PARTITION BY f.fault_id ORDER BY u.t_request) AS next_t
    FROM fault_windows f JOIN upstream u
      ON u.provider = f.provider AND u.t_request >= f.t_from AND u.t_request < f.t_to
),
stopped AS (
    SELECT ex.fault_id, min(ex.t_request) AS t_stop
    FROM ex JOIN fault_windows f USING (fault_id), settings s
    WHERE coalesce(ex.next_t, f.t_to) - ex.t_request >= s.breaker_gap_ns
    GROUP BY ex.fault_id
)
SELECT f.fault_id, f.provider, f.kind,
       (st.t_stop - f.t_from) / 1e6 AS stop_ms,
       (SELECT count(*) FROM ex WHERE ex.fault_id = f.fault_id
          AND ex.t_request <= coalesce(st.t_stop, f.t_to)) AS wasted_attempts,
       (SELECT count(*) FROM ex WHERE ex.fault_id = f.fault_id
          AND ex.t_request > st.t_stop) AS probes,
       ((SELECT min(u.t_request) FROM upstream u WHERE u.provider = f.provider
           AND u.t_request >= f.t_to AND u.outcome = 'ok') - f.t_to) / 1e6 AS return_ms
FROM fault_windows f LEFT JOIN stopped st USING (fault_id);

-- name: success_by_second
-- Client requests per one-second bucket of intended send time (bucket 0 starts at t0):
-- count, successes, success rate and latency percentiles (ms).
CREATE OR REPLACE VIEW success_by_second AS
SELECT (t_intended - (SELECT t_start FROM run_window)) // 1000000000 AS second,
       count(*) AS requests,
       count(*) FILTER (WHERE outcome = 'ok') AS ok,
       avg(CASE WHEN outcome = 'ok' THEN 1.0 ELSE 0.0 END) AS success_rate,
       quantile_cont(t_done - t_intended, [0.5, 0.95, 0.99]) AS q
FROM requests GROUP BY ALL;

-- name: impact
-- Client-visible impact of each fault: from its start to the end of the last
-- one-second window, before the next fault starts, whose success rate is below
-- `settings.success_target`; 0 when no such window.
CREATE OR REPLACE VIEW impact AS
SELECT f.fault_id, f.provider,
       coalesce(max((w.t_start + (s.second + 1) * 1000000000) - f.t_from)
                    FILTER (WHERE s.success_rate < st.success_target), 0) / 1e6 AS impact_ms,
       count(*) FILTER (WHERE s.success_rate < st.success_target) AS bad_seconds
FROM fault_windows f, run_window w, settings st, success_by_second s
WHERE w.t_start + (s.second + 1) * 1000000000 > f.t_from
  AND w.t_start + s.second * 1000000000 < f.next_from
GROUP BY f.fault_id, f.provider, f.t_from;

-- ===================================================================================
-- Scalar metrics (one row, column `value`)
-- ===================================================================================

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

-- name: correlation
-- How exchanges were attributed to client requests: `coverage` is the share of upstream
-- exchanges whose tag matches a client request; `mode` is `tag`, or `time_window` when
-- coverage is under `settings.correlation_min` (see attempt_source_by_time).
CREATE OR REPLACE TABLE correlation AS
SELECT coalesce(tagged / nullif(exchanges, 0), 0) AS coverage,
       CASE WHEN exchanges > 0 AND coalesce(tagged / exchanges, 0) < s.correlation_min
            THEN 'time_window' ELSE 'tag' END AS mode
FROM (SELECT (SELECT count(*) FROM upstream) AS exchanges,
             (SELECT coalesce(sum(attempts), 0) FROM request_attempts) AS tagged), settings s;

-- name: correlation_coverage
-- Share of upstream exchanges whose tag matches a client request.
SELECT coverage AS value FROM correlation;

-- name: amplification
-- Upstream exchanges per client request, over the exchanges attributed to a request
-- (by tag, or by time in the fallback).
SELECT (SELECT sum(attempts) FROM request_attempts)
       / nullif((SELECT count(*) FROM requests), 0) AS value;

-- name: amplification_time_window
-- Fallback for a router that strips tags (labelled as such in the reports): every
-- upstream exchange received within the load's span (first send to last answer) per
-- client request. It counts the router's own health probes too.
SELECT (SELECT count(*) FROM upstream, (SELECT min(t_sent) AS a, max(t_done) AS b
                                        FROM requests) span
        WHERE t_request >= span.a AND t_request <= span.b)
       / nullif((SELECT count(*) FROM requests), 0) AS value;

-- name: failovers
-- Client requests with a failed upstream attempt followed by a later attempt on a
-- different provider: a failover, proven from recorded exchanges.
SELECT count(*) AS value FROM request_attempts WHERE failed_over;

-- name: retries_same_provider
-- Upstream attempts on a provider already tried for the same client request.
SELECT coalesce(sum(retries_same_provider), 0) AS value FROM request_attempts;

-- name: failover_extra_latency_ms
-- Median latency of requests that failed over, minus that of the other requests.
SELECT (quantile_cont(t_done - t_intended, 0.5) FILTER (WHERE failed_over)
      - quantile_cont(t_done - t_intended, 0.5) FILTER (WHERE NOT coalesce(failed_over, false)))
       / 1e6 AS value
FROM requests_x;

-- name: failover_latency_p95_ms
-- p95 latency of the requests that failed over.
SELECT quantile_cont(latency_ms, 0.95) AS value FROM requests_x WHERE failed_over;

-- name: overhead_p50_ms
-- What the router adds: client service time (t_done - t_sent) minus the upstream
-- exchange's time at the proxy, over successful requests served with one attempt.
SELECT quantile_cont(((t_done - t_sent) - upstream_ns) / 1e6, 0.5) AS value
FROM requests_x WHERE attempts = 1 AND outcome = 'ok';

-- name: overhead_p95_ms
SELECT quantile_cont(((t_done - t_sent) - upstream_ns) / 1e6, 0.95) AS value
FROM requests_x WHERE attempts = 1 AND outcome = 'ok';

-- name: head_lag_max_blocks
-- The most blocks a successful answer was behind the true head (see head_checks).
SELECT max(lag_blocks) AS value FROM head_checks;

-- name: heads_backwards
-- Answers with a lower block than one already answered before they were sent.
SELECT count(*) FILTER (WHERE backwards) AS value FROM head_checks;

-- name: ws_gap_blocks
SELECT coalesce(sum(gap_blocks), 0) AS value FROM ws_checks;

-- name: ws_duplicates
SELECT count(*) FILTER (WHERE duplicate) AS value FROM ws_checks;

-- name: ws_out_of_order
SELECT count(*) FILTER (WHERE out_of_order) AS value FROM ws_checks;

-- name: ws_parent_breaks
SELECT count(*) FILTER (WHERE parent_break) AS value FROM ws_checks;

-- name: ws_delay_p95_ms
SELECT quantile_cont(delay_ms, 0.95) AS value FROM ws_checks WHERE NOT duplicate;

-- name: ws_resubscribe_max_ms
SELECT max(resubscribe_ms) AS value FROM ws_resubscribes;

-- name: sut_rss_slope_mb_per_min
-- Memory growth of the system under test: least-squares slope of its resident memory
-- (MB) against time (minutes) over the run's samples; see sut_rss_fit_r2 for the fit.
SELECT regr_slope(rss / 1e6, t / 6e10) AS value
FROM (SELECT t, sum(rss) AS rss FROM system WHERE role = 'sut' GROUP BY t);

-- name: sut_rss_fit_r2
SELECT regr_r2(rss / 1e6, t / 6e10) AS value
FROM (SELECT t, sum(rss) AS rss FROM system WHERE role = 'sut' GROUP BY t);

-- name: sut_cpu_avg
-- Cores the system under test used on average (1.0 = one core busy).
SELECT avg(cpu) AS value FROM (SELECT t, sum(cpu) AS cpu FROM system WHERE role = 'sut' GROUP BY t);

-- name: sut_cpu_max
SELECT max(cpu) AS value FROM (SELECT t, sum(cpu) AS cpu FROM system WHERE role = 'sut' GROUP BY t);

-- name: breaker_stop_max_ms
-- The longest time the router kept sending to a faulted provider (see breaker);
-- NULL when one was never stopped.
SELECT CASE WHEN count(*) FILTER (WHERE stop_ms IS NULL) > 0 THEN NULL ELSE max(stop_ms) END
       AS value FROM breaker;

-- name: wasted_attempts
SELECT coalesce(sum(wasted_attempts), 0) AS value FROM breaker;

-- name: impact_max_ms
-- The longest client-visible impact of any fault (see impact).
SELECT max(impact_ms) AS value FROM impact;

-- name: faults_planned
SELECT count(*) AS value FROM planned_faults;

-- ===================================================================================
-- Validity checks (a failure makes the run invalid)
-- ===================================================================================

-- name: faults_not_applied
-- Scheduled faults that did not happen: a fault of the scenario's plan with no window
-- that started, or a recorded fault window that touched no exchange (HTTP, or a
-- WebSocket notification) although it was the deciding fault or one of those acting.
WITH windows AS (SELECT fault_id, spec_id, actual_start FROM chaos_events)
SELECT (SELECT count(*) FROM planned_faults p
        WHERE NOT EXISTS (SELECT 1 FROM windows w WHERE w.actual_start IS NOT NULL
                            AND (w.spec_id = p.fault_id OR w.fault_id = p.fault_id)))
     + (SELECT count(*) FROM windows w
        WHERE w.actual_start IS NULL
           OR (NOT EXISTS (SELECT 1 FROM upstream u WHERE u.fault_id = w.fault_id)
               AND NOT EXISTS (SELECT 1 FROM upstream u WHERE u.fault_ids IS NOT NULL
                                 AND list_contains(string_split(u.fault_ids, ','), w.fault_id))
               AND NOT EXISTS (SELECT 1 FROM upstream_ws x WHERE x.fault_id = w.fault_id)))
       AS value;

-- name: requests_not_sent_share
-- Calls the load generator planned but could not send (in-flight cap reached).
SELECT coalesce(sum(CAST(json_extract(detail, '$.not_sent') AS DOUBLE))
       / nullif(sum(CAST(json_extract(detail, '$.planned') AS DOUBLE)), 0), 0) AS value
FROM lifecycle WHERE role = 'loadgen' AND event = 'stopped';

-- name: late_sends_share
-- Calls the load generator sent later than `settings.late_send_ns` after their
-- intended time, as counted by the worker itself, per planned call.
SELECT coalesce(sum(CAST(json_extract(detail, '$.late_sends') AS DOUBLE))
       / nullif(sum(CAST(json_extract(detail, '$.planned') AS DOUBLE)), 0), 0) AS value
FROM lifecycle WHERE role = 'loadgen' AND event = 'stopped';

-- name: loadgen_workers_finished
SELECT count(*) AS value FROM lifecycle WHERE role = 'loadgen' AND event = 'stopped';

-- name: loadgen_workers_unfinished
-- Load workers that were spawned (or started) and never recorded their `stopped` row.
SELECT count(*) AS value FROM (
    SELECT DISTINCT process FROM lifecycle WHERE role = 'loadgen'
    EXCEPT SELECT DISTINCT process FROM lifecycle WHERE role = 'loadgen' AND event = 'stopped'
);

-- name: requests_missing_share
-- Calls the workers say they sent (planned - not_sent) that have no row in `requests`:
-- data lost between the worker and its shard.
SELECT coalesce(greatest(0, 1 - (SELECT count(*) FROM requests)
       / nullif(sum(CAST(json_extract(detail, '$.planned') AS DOUBLE)
                    - coalesce(CAST(json_extract(detail, '$.not_sent') AS DOUBLE), 0)), 0)), 0)
       AS value
FROM lifecycle WHERE role = 'loadgen' AND event = 'stopped';

-- name: proxy_loop_lag_max_ms
-- The chaos proxy's worst event-loop lag while the load ran (a saturated proxy distorts
-- every exchange; start-up and shutdown are left out, as they lag without harm); 0 when
-- the proxy recorded no health samples then.
SELECT coalesce(max(h.loop_lag_ns) / 1e6, 0) AS value
FROM proxy_health h, (SELECT min(t_intended) AS t_a, max(t_done) AS t_b FROM requests) w
WHERE h.t BETWEEN w.t_a AND w.t_b;

-- name: proxy_cpu_max
-- The chaos proxy's busiest sustained load while the load ran, in cores: the higher of
-- the samples of any two consecutive seconds is ignored, so one busy second (a
-- collection pause) does not count as saturation; a first sample pairs with 0, as
-- least() would skip a NULL. It runs on one event loop: 1.0 is saturated. 0 when it
-- recorded no health samples then.
SELECT coalesce(max(least(x.cpu, coalesce(x.prev_cpu, 0))), 0) AS value
FROM (SELECT t, cpu, lag(cpu) OVER (PARTITION BY proxy ORDER BY t) AS prev_cpu
      FROM proxy_health) x,
     (SELECT min(t_intended) AS t_a, max(t_done) AS t_b FROM requests) w
WHERE x.t BETWEEN w.t_a AND w.t_b;

-- name: loadgen_cpu_max
-- The busiest load-generator process while the load ran, sustained over two
-- consecutive samples as for the proxy, in cores (1.0 = one core saturated).
SELECT coalesce(max(least(x.cpu, coalesce(x.prev_cpu, 0))), 0) AS value
FROM (SELECT t, cpu, lag(cpu) OVER (PARTITION BY pid ORDER BY t) AS prev_cpu
      FROM system WHERE role = 'loadgen') x,
     (SELECT min(t_intended) AS t_a, max(t_done) AS t_b FROM requests) w
WHERE x.t BETWEEN w.t_a AND w.t_b;

-- ===================================================================================
-- Tables for the reports
-- ===================================================================================

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
-- Every fault with its planned and actual window (s after t0; error in ms) and the
-- exchanges it was applied to.
SELECT c.fault_id, c.provider, c.kind,
       (c.planned_start - w.t_start) / 1e9 AS planned_start_s,
       (c.planned_end - w.t_start) / 1e9 AS planned_end_s,
       (c.actual_start - c.planned_start) / 1e6 AS start_error_ms,
       (c.actual_end - c.planned_end) / 1e6 AS end_error_ms,
       (SELECT count(*) FROM upstream u WHERE u.fault_id = c.fault_id) AS applied
FROM chaos_events c, run_window w ORDER BY c.planned_start, c.fault_id;

-- name: breaker_table
SELECT * FROM breaker ORDER BY fault_id;

-- name: impact_table
SELECT * FROM impact ORDER BY fault_id;

-- name: ws_subscriptions
-- Per WebSocket subscription: notifications and the delivery faults counted in ws_checks.
SELECT worker, connection, subscription, count(*) AS notifications,
       sum(gap_blocks) AS gap_blocks, count(*) FILTER (WHERE duplicate) AS duplicates,
       count(*) FILTER (WHERE out_of_order) AS out_of_order,
       count(*) FILTER (WHERE parent_break) AS parent_breaks,
       quantile_cont(delay_ms, 0.5) AS delay_p50_ms, max(delay_ms) AS delay_max_ms
FROM ws_checks GROUP BY ALL ORDER BY ALL;

-- name: series_requests
-- Per second: requests, successes, success rate, latency p50/p95/p99 (ms).
SELECT second, requests, ok, success_rate,
       q[1] / 1e6 AS p50_ms, q[2] / 1e6 AS p95_ms, q[3] / 1e6 AS p99_ms
FROM success_by_second ORDER BY second;

-- name: series_provider_share
-- Per second and provider: upstream exchanges and their share of that second's.
SELECT second, provider, exchanges,
       exchanges / sum(exchanges) OVER (PARTITION BY second) AS share
FROM (SELECT (t_request - (SELECT t_start FROM run_window)) // 1000000000 AS second,
             provider, count(*) AS exchanges
      FROM upstream GROUP BY ALL)
ORDER BY second, provider;

-- name: series_ws_delay
-- Per second: WebSocket notifications and their delivery delay (p50, max; ms).
SELECT (t_received - (SELECT t_start FROM run_window)) // 1000000000 AS second,
       count(*) AS notifications, quantile_cont(delay_ms, 0.5) AS p50_ms,
       max(delay_ms) AS max_ms
FROM ws_checks GROUP BY ALL ORDER BY second;

-- name: series_system
-- Per sample second and role: resident memory (MB) and CPU (cores).
SELECT (t - (SELECT t_start FROM run_window)) // 1000000000 AS second, role,
       sum(rss) / 1e6 AS rss_mb, sum(cpu) AS cpu
FROM system GROUP BY ALL ORDER BY second, role;

-- name: latency_histogram
-- Client latency distribution in logarithmic buckets (ms: 2^(k/4) wide steps).
SELECT pow(2, floor(log2(greatest((t_done - t_intended) / 1e6, 0.001)) * 4) / 4) AS bucket_ms,
       count(*) AS requests
FROM requests GROUP BY ALL ORDER BY bucket_ms;

-- name: phase_table
-- The run's phases (s after t0).
SELECT phase, (t_from - w.t_start) / 1e9 AS from_s, (t_to - w.t_start) / 1e9 AS to_s
FROM phases, run_window w ORDER BY t_from, phase;
