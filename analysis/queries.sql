-- Named queries over the run database. Each block starts with `-- name: <name>`;
-- scalar metrics return one row with one column `value`. The comment under each name
-- is the metric's definition: docs/ARCHITECTURE.md and the reports refer here.
--
-- Times are integer nanoseconds since the Unix epoch. "Run time" is measured from
-- `run_window.t_start` (the load's t0). Derived views and tables are built by ingest
-- (`analysis/database.py`) in the order of its DERIVED list. The small ones that many
-- queries read (run_window, phases, success_by_second, ...) are tables: as views over
-- `requests` and `upstream` (Parquet) each reader would scan those again. Queries over
-- every client request read `requests_x` (the same rows, held in memory while judging)
-- rather than `requests` (Parquet, decoded on every scan) unless they need a column
-- only `requests` has.

-- ===================================================================================
-- Derived views and tables (built at ingest)
-- ===================================================================================

-- name: chaos_events
-- One row per fault, pivoted from its recorded start and end transitions.
CREATE OR REPLACE TABLE chaos_events AS
SELECT fault_id,
       any_value(provider) AS provider,
       any_value(kind) AS kind,
       any_value(params) AS params,
       any_value(planned_start) AS planned_start,
       any_value(planned_end) AS planned_end,
       min(t) FILTER (WHERE event = 'start') AS actual_start,
       max(t) FILTER (WHERE event = 'end') AS actual_end,
       any_value(match) AS match,
       -- The fault as specified; a schedule may cut one spec into several windows.
       coalesce(any_value(spec_id), fault_id) AS spec_id
FROM fault_events
GROUP BY fault_id;

-- name: run_window
-- The load's interval: from the scenario's t0 (else the first intended send) to just
-- after the last intended send.
CREATE OR REPLACE TABLE run_window AS
SELECT coalesce((SELECT min(t_start) FROM runs),
                (SELECT min(t_intended) FROM requests),
                (SELECT min(t_request) FROM upstream)) AS t_start,
       coalesce((SELECT max(t_intended) + 1 FROM requests),
                (SELECT max(t_request) + 1 FROM upstream)) AS t_end;

-- name: fault_windows
-- Each fault's applied interval (actual times, else planned ones), its recovery
-- window (`settings.recovery_window_ns` after its end) and the next fault's start.
CREATE OR REPLACE TABLE fault_windows AS
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
CREATE OR REPLACE TABLE phases AS
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

-- name: correlation
-- How exchanges are attributed to client requests, decided before any attribution is
-- built: `coverage` is the share of upstream exchanges whose tag is a client request's;
-- `mode` is `tag`, or `time_window` when coverage is under `settings.correlation_min`
-- (the router strips or rewrites tags: see attempt_source_by_time).
CREATE OR REPLACE TABLE correlation AS
WITH e AS (
    SELECT count(*) AS exchanges,
           count(*) FILTER (WHERE tag IN (SELECT tag FROM requests)) AS tagged
    FROM upstream
)
SELECT coalesce(tagged / nullif(exchanges, 0), 0) AS coverage,
       CASE WHEN exchanges > 0 AND coalesce(tagged / exchanges, 0) < s.correlation_min
            THEN 'time_window' ELSE 'tag' END AS mode
FROM e, settings s;

-- name: attempt_source
-- The upstream exchanges attributed to a client request, with that request's tag: by
-- the correlation tag (every exchange that carries one; requests_x keeps those whose
-- tag matches a request). Built once, as this or attempt_source_by_time, according to
-- correlation.mode.
CREATE OR REPLACE VIEW attempt_source AS
SELECT tag, provider, outcome, t_request, t_response, flow_id, fault_id
FROM upstream WHERE tag IS NOT NULL;

-- name: attempt_source_by_time
-- The time-window fallback, used when under half of the upstream exchanges carry a
-- client's tag (the router strips them): each exchange goes to the client request of
-- the same method sent most recently before it, if that request was still waiting for
-- its answer. With several requests of one method in flight at once this can pick the
-- wrong one of them; the reports label every figure made this way. An exchange that
-- falls in no client call's span (a health probe between calls) is the router's own.
-- A batch is matched as one: the load records its method as `batch` with its size, the
-- proxy its first element's method with the same size.
CREATE OR REPLACE VIEW attempt_source AS
WITH u AS (
    SELECT *, CASE WHEN coalesce(batch_size, 1) > 1 THEN 'batch' ELSE method END AS call,
           coalesce(batch_size, 1) AS size
    FROM upstream
),
r AS (SELECT tag, method AS call, coalesce(batch_size, 1) AS size, t_sent, t_done FROM requests)
SELECT r.tag, u.provider, u.outcome, u.t_request, u.t_response, u.flow_id, u.fault_id
FROM u ASOF JOIN r ON r.call = u.call AND r.size = u.size AND u.t_request >= r.t_sent
WHERE u.t_request <= r.t_done;

-- name: providers
-- Every provider of `upstream`, numbered from 0 (`pidx`) for requests_x's packed
-- aggregates; at most 64, one bit each of a mask.
CREATE OR REPLACE TABLE providers AS
SELECT provider, (row_number() OVER (ORDER BY provider) - 1)::UTINYINT AS pidx
FROM (SELECT DISTINCT provider FROM upstream)
QUALIFY CASE WHEN count(*) OVER () > 64
             THEN error('upstream has more than 64 providers; analysis handles at most 64')
             ELSE true END;

-- name: requests_x
-- Client requests with `latency_ms` and the summary of their upstream attempts (see
-- attempt_source; NULL where none was attributed): `attempts` (exchanges), `providers`
-- (distinct providers tried), `failed_over` (an attempt that failed was followed by a
-- later attempt on a different provider), `retries_same_provider` (attempts on a
-- provider already tried for this request), `served_by` (the provider of the last
-- attempt), `upstream_ns` (the last attempt's time at the proxy, request to response).
-- A view in run.duckdb, which each judging connection materialises once in memory
-- (database.MATERIALISED): half the metrics read it.
--
-- Built for speed (10 million requests, 30 million exchanges): one aggregation per
-- tag, with each attempt packed into one integer `t * 64 + pidx` (t from the run's
-- t0), so that min() and max() give the time and the provider of the first
-- failed and of the last attempt without a second grouping by (tag, provider). A
-- request failed over exactly when some attempt after its first failure F went to
-- another provider than F's: settled by the last attempt unless that went to F's
-- provider again after trying another one; only those few requests are checked against
-- their attempts again (`came_back`).
CREATE OR REPLACE VIEW requests_x AS
-- Not materialised: read twice, but the second time only for the `ambiguous` requests
-- (most often none); materialising 30 million attempts took 6 s.
WITH a AS NOT MATERIALIZED (
    SELECT s.tag, s.t_request - (SELECT t_start FROM run_window) AS t, p.pidx,
           s.outcome <> 'ok' AS failed, s.t_response - s.t_request AS ns
    FROM attempt_source s JOIN providers p ON p.provider IS NOT DISTINCT FROM s.provider
),
per_tag AS (
    -- t * 64 + pidx; >> 6 and & 63 take it apart, also for t < 0 (before t0).
    SELECT tag, count(*) AS attempts, bit_count(bit_or(1::UBIGINT << pidx)) AS providers,
           max(t * 64 + pidx) AS last_at,
           min(CASE WHEN failed THEN t * 64 + pidx END) AS fail_at,
           arg_max(ns, t) AS upstream_ns
    FROM a GROUP BY tag
),
settled AS (
    SELECT *, fail_at IS NOT NULL AND last_at & 63 <> fail_at & 63
              AND last_at >> 6 > fail_at >> 6 AS moved_on
    FROM per_tag
),
ambiguous AS (
    SELECT tag, fail_at >> 6 AS t_fail, fail_at & 63 AS p_fail FROM settled
    WHERE fail_at IS NOT NULL AND providers > 1 AND NOT moved_on
),
came_back AS (
    SELECT DISTINCT a.tag FROM a JOIN ambiguous m USING (tag)
    WHERE a.t > m.t_fail AND a.pidx <> m.p_fail
)
SELECT r.worker, r.seq, r.tag, r.transport, r.method, r.t_intended, r.t_sent, r.t_done,
       r.outcome, (r.t_done - r.t_intended) / 1e6 AS latency_ms,
       x.attempts, x.providers,
       CASE WHEN x.tag IS NOT NULL THEN x.moved_on OR c.tag IS NOT NULL END AS failed_over,
       x.attempts - x.providers AS retries_same_provider, p.provider AS served_by,
       x.upstream_ns
FROM requests r
LEFT JOIN settled x ON x.tag = r.tag
LEFT JOIN came_back c ON c.tag = r.tag
LEFT JOIN providers p ON p.pidx = x.last_at & 63;

-- name: request_attempts
-- One row per client request with at least one attributed upstream exchange: the
-- attempt columns of requests_x.
CREATE OR REPLACE VIEW request_attempts AS
SELECT tag, attempts, providers, failed_over, retries_same_provider, served_by, upstream_ns
FROM requests_x WHERE attempts IS NOT NULL;

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
-- Every client answer for the head (`block_tag` latest: an eth_blockNumber, a block
-- asked by `latest`; a block asked by number, a receipt, a safe block are no head):
-- `lag_blocks` is how many blocks the answer is behind the true head at the time the
-- request was sent (blocks that certainly existed; never negative), `backwards` is true
-- when a request sent after another had completed got a lower block than that one.
CREATE OR REPLACE TABLE head_checks AS
WITH r AS (
    SELECT worker, seq, method, transport, t_intended, t_sent, t_done, result_block
    FROM requests WHERE result_block IS NOT NULL AND outcome = 'ok' AND block_tag = 'latest'
),
seen AS (
    SELECT t_done, max(result_block) OVER (ORDER BY t_done ROWS UNBOUNDED PRECEDING)
               AS seen_max
    FROM r
)
SELECT r.*, greatest(0, true_head(r.t_sent) - r.result_block) AS lag_blocks,
       coalesce(r.result_block < s.seen_max, false) AS backwards, s.seen_max
FROM r ASOF LEFT JOIN seen s ON s.t_done < r.t_sent;

-- name: tag_checks
-- Every client answer for a block tag (`block_tag`: latest, safe, finalized). The tags
-- trail one another (finalized <= safe <= latest, on every client: proxyd's consensus
-- and the execution API's definitions) and none goes back, so an answer for a tag is
-- `behind` when its block is lower than one answered for that tag or for a tag
-- trailing it (`floor`, of tag `floor_tag`) by a request that completed before it was
-- sent. latest below an earlier latest is head_checks' `backwards`, not counted here.
CREATE OR REPLACE TABLE tag_checks AS
WITH r AS (
    SELECT worker, seq, method, transport, t_intended, t_sent, t_done, result_block,
           block_tag
    FROM requests WHERE result_block IS NOT NULL AND outcome = 'ok'
                    AND block_tag IN ('latest', 'safe', 'finalized')
),
seen AS (
    SELECT t_done,
           max(CASE WHEN block_tag = 'finalized' THEN result_block END) OVER w AS finalized,
           max(CASE WHEN block_tag = 'safe' THEN result_block END) OVER w AS safe
    FROM r WINDOW w AS (ORDER BY t_done ROWS UNBOUNDED PRECEDING)
),
floors AS (
    SELECT r.*,
           CASE WHEN r.block_tag = 'finalized' THEN s.finalized
                ELSE greatest(s.finalized, s.safe) END AS floor,
           CASE WHEN r.block_tag <> 'finalized' AND s.safe IS NOT NULL
                     AND (s.finalized IS NULL OR s.safe >= s.finalized) THEN 'safe'
                WHEN s.finalized IS NOT NULL THEN 'finalized' END AS floor_tag
    FROM r ASOF LEFT JOIN seen s ON s.t_done < r.t_sent
)
SELECT *, coalesce(result_block < floor, false) AS behind FROM floors;

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

-- name: ws_silence
-- Per client socket slot (worker, connection, across reconnects), each silence while
-- the chain advanced: from the moment the chain had a block the slot had not got (the
-- block after the highest it had, by the chain's schedule; without a chain's truth, the
-- slot's last news) until its next notification of a higher block (`t_to`; the end of
-- the load, `heard` false, when none came). A live feed's silences are its delivery
-- delay; a silent upstream (a zombie socket, a stall) makes one as long as the router
-- takes to notice and move. The first span starts at the slot's first subscribe.
CREATE OR REPLACE TABLE ws_silence AS
WITH n AS (
    SELECT worker, connection, t_received, block_number,
           max(block_number) OVER (PARTITION BY worker, connection ORDER BY t_received
                                   ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
               AS prev_max
    FROM ws_notifications WHERE kind = 'newHeads'
),
news AS (
    SELECT worker, connection, t_received AS t, block_number AS block FROM n
    WHERE prev_max IS NULL OR block_number > prev_max
),
slots AS (
    SELECT worker, connection, min(t) AS t_subscribed FROM ws_sessions
    WHERE event = 'subscribe' GROUP BY worker, connection
),
spans AS (
    SELECT s.worker, s.connection,
           coalesce(lag(x.t) OVER w, s.t_subscribed) AS t_prev,
           coalesce(lag(x.block) OVER w, true_head(s.t_subscribed)) AS had,
           x.t AS t_to, true AS heard
    FROM slots s JOIN news x USING (worker, connection)
    WINDOW w AS (PARTITION BY s.worker, s.connection ORDER BY x.t)
    UNION ALL
    SELECT s.worker, s.connection, coalesce(max(x.t), s.t_subscribed),
           coalesce(max(x.block), true_head(s.t_subscribed)),
           (SELECT t_end FROM run_window), false
    FROM slots s LEFT JOIN news x USING (worker, connection)
    GROUP BY s.worker, s.connection, s.t_subscribed
),
owed AS (
    SELECT *, greatest(t_prev, coalesce(block_produced_at(had + 1), t_prev)) AS t_from
    FROM spans
)
SELECT worker, connection, t_from, t_to, heard, had AS last_block,
       greatest(0, t_to - t_from) / 1e9 AS silence_s
FROM owed WHERE t_to > t_from;

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

-- name: client_exchanges
-- The upstream exchanges attributed to a client call (see attempt_source), with the
-- call's worker and seq. Every other exchange is the router's own traffic (health
-- probes, head polls, backfill: see own_traffic), which route-away, wasted-attempt and
-- come-back figures never count as traffic sent for clients.
CREATE OR REPLACE VIEW client_exchanges AS
SELECT s.*, r.worker, r.seq, r.method AS client_method
FROM attempt_source s JOIN requests_x r USING (tag);

-- name: own_traffic
-- Per provider, the exchanges no client call is attributed to: the router's own
-- traffic, reported apart.
CREATE OR REPLACE TABLE own_traffic AS
SELECT u.provider, count(*) AS exchanges,
       string_agg(DISTINCT coalesce(u.method, '?'), ',' ORDER BY coalesce(u.method, '?'))
           AS methods
FROM upstream u
ANTI JOIN client_exchanges c
  ON c.provider = u.provider AND c.flow_id = u.flow_id AND c.t_request = u.t_request
GROUP BY u.provider;

-- name: serving_exchanges
-- The client exchanges that show a provider serving clients: route-away, wasted-attempt
-- and come-back figures count these. Matched by tag, all of client_exchanges. Matched by
-- time, a call of a method the router also sends on its own (a method of own_traffic: its
-- head polls, most often) may be one of those, and a router polling a provider it has
-- abandoned would look as if it served it again (aio's 1/s eth_blockNumber polls did:
-- three of them, matched to client calls, made it "come back" in 7.6 s); only the mix's
-- other methods count then, or all of them where the router sends every one on its own.
CREATE OR REPLACE VIEW serving_exchanges AS
WITH own AS (
    SELECT DISTINCT unnest(string_split(methods, ',')) AS method FROM own_traffic
    WHERE (SELECT mode FROM correlation) = 'time_window'
)
SELECT * FROM client_exchanges
WHERE client_method NOT IN (SELECT method FROM own)
   OR NOT EXISTS (SELECT 1 FROM requests WHERE method NOT IN (SELECT method FROM own));

-- name: breaker
-- Per fault, how the router treated the faulted provider with client calls (its own
-- probes are left out: a router whose health check keeps probing a dead provider has
-- still routed away). `stop_ms`: from the fault's start to the last client exchange
-- before the first pause of at least `settings.breaker_gap_ns` in client traffic to
-- that provider (the router stopped sending: its breaker opened); NULL when traffic
-- never paused during the fault. `wasted_attempts`: client exchanges sent to it from the
-- fault's start to that moment (all of the fault's when it never stopped). `probes`:
-- client exchanges to it after it stopped and before the fault ended. `return_ms`: from
-- the fault's end to the first successful client exchange with it (NULL when traffic
-- never came back before the run ended).
CREATE OR REPLACE TABLE breaker AS
WITH ex AS (
    SELECT f.fault_id, u.t_request, u.outcome,
           lead(u.t_request) OVER (PARTITION BY f.fault_id ORDER BY u.t_request) AS next_t
    FROM fault_windows f JOIN serving_exchanges u
      ON u.provider = f.provider
     AND ((u.t_request >= f.t_from AND u.t_request < f.t_to)
          -- An exchange received a moment before the recorded start and hit by the
          -- fault (the load's ticks and the fault's start fall on one clock) is the
          -- fault's too: without it a router that stopped at once looks as if it never did.
          OR u.fault_id = f.fault_id)
),
stopped AS (
    SELECT ex.fault_id, min(ex.t_request) AS t_stop
    FROM ex JOIN fault_windows f USING (fault_id), settings s
    WHERE coalesce(ex.next_t, f.t_to) - ex.t_request >= s.breaker_gap_ns
    GROUP BY ex.fault_id
)
SELECT f.fault_id, f.provider, f.kind,
       -- No client call reached it in the fault at all: it had stopped before.
       CASE WHEN NOT EXISTS (SELECT 1 FROM ex WHERE ex.fault_id = f.fault_id) THEN 0
            WHEN st.t_stop < f.t_from THEN 0 ELSE st.t_stop - f.t_from END / 1e6 AS stop_ms,
       (SELECT count(*) FROM ex WHERE ex.fault_id = f.fault_id
          AND ex.t_request <= coalesce(st.t_stop, f.t_to)) AS wasted_attempts,
       (SELECT count(*) FROM ex WHERE ex.fault_id = f.fault_id
          AND ex.t_request > st.t_stop) AS probes,
       ((SELECT min(u.t_request) FROM serving_exchanges u WHERE u.provider = f.provider
           AND u.t_request >= f.t_to AND u.outcome = 'ok') - f.t_to) / 1e6 AS return_ms
FROM fault_windows f LEFT JOIN stopped st USING (fault_id);

-- ===================================================================================
-- Invariants: what every correct router does, whatever its policy (zero tolerance,
-- counted per call; each has a `.witnesses` query listing the calls that broke it)
-- ===================================================================================

-- name: expect_s
-- The router profile's value `n` (analysis/expect.py: declared, else its default).
CREATE OR REPLACE MACRO expect_s(n) AS (SELECT value FROM expect WHERE name = n);

-- name: unrescued
-- Client calls that failed (an error or no answer; a wrong answer is wrong_answers')
-- although some provider was healthy for the whole call and the router never tried it
-- for that call: no failover. Healthy: no fault window on it from `expect.come_back_s`
-- before the call was sent to its end (a router may keep avoiding a provider that
-- failed that recently: its breaker is still open), and no misbehaviour of its own in
-- the scenario (a mock's error rate or rate limit). `untried` lists those providers.
CREATE OR REPLACE TABLE unrescued AS
WITH failed AS (
    SELECT tag, worker, seq, method, transport, t_intended, t_sent, t_done, outcome,
           attempts, providers, served_by
    FROM requests_x WHERE outcome NOT IN ('ok', 'invalid')
),
healthy AS (
    SELECT f.tag, p.provider FROM failed f, scenario_providers p
    WHERE p.healthy AND NOT EXISTS (
        SELECT 1 FROM fault_windows w
        WHERE w.provider = p.provider AND w.t_from < f.t_done
          AND w.t_to + CAST(expect_s('come_back_s') * 1e9 AS BIGINT) > f.t_sent)
),
untried AS (
    SELECT h.tag, list(h.provider ORDER BY h.provider) AS untried
    FROM healthy h
    WHERE NOT EXISTS (SELECT 1 FROM client_exchanges c
                      WHERE c.tag = h.tag AND c.provider = h.provider)
    GROUP BY h.tag
)
SELECT f.*, u.untried FROM failed f JOIN untried u USING (tag);

-- name: hung_calls
-- Client calls answered later than the router's declared deadline
-- (`expect.request_timeout_s` + `expect.hung_margin_s`, from the actual send), or never
-- (the client gave up: outcome `timeout`).
CREATE OR REPLACE TABLE hung_calls AS
SELECT tag, worker, seq, method, transport, t_intended, t_sent, t_done, outcome,
       attempts, providers, served_by, (t_done - t_sent) / 1e6 AS service_ms
FROM requests_x
WHERE outcome = 'timeout'
   OR t_done - t_sent > CAST((expect_s('request_timeout_s') + expect_s('hung_margin_s'))
                             * 1e9 AS BIGINT);

-- name: retry_storms
-- Per client call and provider, failed attempts one after another (each sent once the
-- ones before it on that provider had ended) over `expect.max_attempts_per_provider`:
-- a retry storm on one failing provider. Failed: a router that splits a batch into
-- single calls, or hedges, sends several successful ones. One after another: attempts
-- in flight together are a hedge, or two calls' exchanges that attribution by time put
-- on one call, never a retry. Only calls with that many repeated attempts in
-- requests_x are looked at again, so this stays cheap on millions of calls.
CREATE OR REPLACE TABLE retry_storms AS
WITH c AS (
    SELECT tag, provider, outcome, t_request, t_response,
           max(t_response) OVER (PARTITION BY tag, provider ORDER BY t_request
                                 ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev_end
    FROM client_exchanges
    WHERE tag IN (SELECT tag FROM requests_x
                  WHERE retries_same_provider >= expect_s('max_attempts_per_provider'))
)
SELECT tag, provider, count(*) AS attempts,
       count(*) FILTER (WHERE outcome <> 'ok'
                          AND (prev_end IS NULL OR t_request >= prev_end)) AS failed_attempts,
       min(t_request) AS t_first, max(t_request) AS t_last,
       list(outcome ORDER BY t_request) AS outcomes
FROM c
GROUP BY tag, provider
HAVING count(*) FILTER (WHERE outcome <> 'ok' AND (prev_end IS NULL OR t_request >= prev_end))
       > expect_s('max_attempts_per_provider');

-- name: rate_limit_faults
-- Per `rate_limit` fault, the answer it gives and the back-off that answer asks for:
-- `retry_after_s`, its `Retry-After` header in seconds, as sent (`params.answer`, where
-- a preset is resolved; the header as written in runs recorded before the proxy kept
-- the answer); `body_backoff_s`, a hint in its JSON-RPC error (Infura's
-- `data.rate.backoff_seconds` when above 0, Chainstack's `data.try_again_in`).
-- `shape` names the answer as the router meets it.
CREATE OR REPLACE TABLE rate_limit_faults AS
WITH f AS (
    SELECT fault_id, provider,
           TRY_CAST(coalesce(json_extract_string(params, '$.answer.headers."Retry-After"'),
                             json_extract_string(params, '$.answer.headers."retry-after"'),
                             json_extract_string(params, '$.headers."Retry-After"'),
                             json_extract_string(params, '$.headers."retry-after"'))
                    AS DOUBLE) AS retry_after,
           TRY_CAST(json_extract_string(params, '$.answer.data.rate.backoff_seconds')
                    AS DOUBLE) AS backoff_seconds,
           TRY_CAST(json_extract_string(params, '$.answer.data.try_again_in')
                    AS DOUBLE) AS try_again_in,
           TRY_CAST(json_extract_string(params, '$.answer.status') AS INTEGER) AS status,
           TRY_CAST(json_extract_string(params, '$.answer.code') AS INTEGER) AS code,
           json_extract_string(params, '$.answer.body') IS NOT NULL AS text_body
    FROM chaos_events WHERE kind = 'rate_limit'
),
s AS (
    SELECT fault_id, provider, status, code, text_body,
           CASE WHEN retry_after > 0 THEN retry_after END AS retry_after_s,
           CASE WHEN backoff_seconds > 0 THEN backoff_seconds
                WHEN try_again_in > 0 THEN try_again_in END AS body_backoff_s
    FROM f
)
SELECT fault_id, provider, retry_after_s, body_backoff_s,
       CASE WHEN status IS NULL THEN 'as written'
            ELSE 'HTTP ' || status
                 || CASE WHEN text_body THEN ', text body' ELSE ', JSON-RPC ' || code END
       END
       || CASE WHEN retry_after_s IS NOT NULL
               THEN ', Retry-After ' || format('{:g}', retry_after_s) || ' s'
               WHEN body_backoff_s IS NOT NULL
               THEN ', back-off ' || format('{:g}', body_backoff_s) || ' s in the body'
               ELSE ', no back-off asked' END AS shape
FROM s;

-- name: rate_limit_answers
-- Every limit answer a `rate_limit` fault gave (an upstream exchange it limited), with
-- its fault's asked back-off (rate_limit_faults).
CREATE OR REPLACE TABLE rate_limit_answers AS
SELECT u.provider, u.fault_id, u.t_response AS t_limited, f.retry_after_s, f.body_backoff_s
FROM upstream u JOIN rate_limit_faults f ON f.fault_id = u.fault_id
WHERE u.t_response IS NOT NULL;

-- name: limit_backoffs
-- Per limit answer, the router's next client attempt on that provider (`t_next`):
-- the first sent 100 ms or more after the answer left the proxy (an attempt within
-- 100 ms is the router's in-flight work, not a choice: far above a router's time to
-- read a 429, far below any Retry-After). NULL when it never went back.
CREATE OR REPLACE TABLE limit_backoffs AS
SELECT l.*, x.t_request AS t_next
FROM rate_limit_answers l ASOF LEFT JOIN client_exchanges x
  ON x.provider = l.provider AND x.t_request >= l.t_limited + 100000000;

-- name: retry_after_breaches
-- Client attempts sent to a provider inside the `Retry-After` of a limit answer it had
-- given (rate_limit_answers; answers without the header are judged by
-- limit_backoff_breaches). Not one within 100 ms of that answer (the router's
-- in-flight work, see limit_backoffs), nor one in the last 50 ms of the Retry-After: a
-- router that waits it out to the millisecond (a 3 s ejection for a 3 s Retry-After,
-- timed on a millisecond clock from when it read the answer) lands on its end, as seen
-- by the proxy's clock; a Retry-After is whole seconds.
CREATE OR REPLACE TABLE retry_after_breaches AS
WITH lim AS (
    SELECT provider, fault_id, t_limited, retry_after_s
    FROM rate_limit_answers WHERE retry_after_s IS NOT NULL
)
SELECT x.tag, x.provider, x.t_request, l.t_limited, l.retry_after_s, l.fault_id
FROM client_exchanges x ASOF JOIN lim l
  ON l.provider = x.provider AND x.t_request >= l.t_limited + 100000000
WHERE x.t_request < l.t_limited + CAST(l.retry_after_s * 1e9 AS BIGINT) - 50000000;

-- name: limit_backoff_breaches
-- Client attempts sent to a provider within `expect.rate_limit_backoff_s` of a limit
-- answer that carried no Retry-After header: the back-off the user declares their
-- router keeps when a provider asks none (0, the default, declares none; a hint in the
-- body is shown beside it in rate_limit_shapes). The same 100 ms and 50 ms allowances
-- as retry_after_breaches.
CREATE OR REPLACE TABLE limit_backoff_breaches AS
WITH lim AS (
    SELECT provider, fault_id, t_limited, expect_s('rate_limit_backoff_s') AS backoff_s
    FROM rate_limit_answers WHERE retry_after_s IS NULL
)
SELECT x.tag, x.provider, x.t_request, l.t_limited, l.backoff_s, l.fault_id
FROM client_exchanges x ASOF JOIN lim l
  ON l.provider = x.provider AND x.t_request >= l.t_limited + 100000000
WHERE x.t_request < l.t_limited + CAST(l.backoff_s * 1e9 AS BIGINT) - 50000000;

-- name: provider_return
-- Per provider with a fault acting on its calls (WebSocket-only faults are left out: a
-- router that moved its subscription owes no return), after its last fault window:
-- `before_fault` client exchanges before its first fault, `t_back` the third
-- successful client exchange after the last one ended (not the first: where the router
-- rewrites ids, attribution by time may give a client call one of its own health
-- probes now and then, and a stray one is no return), `tail_s` how long the load went
-- on after it, `come_back_s` how long it took (the tail when it never came back).
-- `judged`: it carried client traffic before, three calls at least, counting only what
-- it carried while every other provider was in service: from another's fault window
-- until that provider served a client again, the calls it got were a stand-in's (the
-- backups of a priority router, used only while the first was out, owe no return).
-- `abandoned`: judged, never served a client call again, and the load went on longer
-- than `expect.come_back_s` after the fault (a breaker that never closes).
CREATE OR REPLACE TABLE provider_return AS
WITH f AS (
    SELECT provider, min(t_from) AS first_from, max(t_to) AS last_to
    FROM fault_windows WHERE kind NOT LIKE 'ws\_%' ESCAPE '\' GROUP BY provider
),
-- Each fault window's provider out of service: from the window's start until it next
-- served a client (the run's end if it never did).
out_of_service AS (
    SELECT w.provider, w.t_from,
           coalesce((SELECT min(x.t_request) FROM serving_exchanges x
                     WHERE x.provider = w.provider AND x.outcome = 'ok'
                       AND x.t_request >= w.t_to),
                    (SELECT t_end FROM run_window)) AS t_back
    FROM fault_windows w WHERE w.kind NOT LIKE 'ws\_%' ESCAPE '\'
),
back AS (
    SELECT x.provider, x.t_request,
           row_number() OVER (PARTITION BY x.provider ORDER BY x.t_request) AS k
    FROM serving_exchanges x JOIN f USING (provider)
    WHERE x.t_request >= f.last_to AND x.outcome = 'ok'
),
c AS (
    SELECT f.*,
           (SELECT count(*) FROM serving_exchanges x
            WHERE x.provider = f.provider AND x.t_request < f.first_from
              AND NOT EXISTS (SELECT 1 FROM out_of_service o
                              WHERE o.provider <> x.provider AND x.t_request >= o.t_from
                                AND x.t_request < o.t_back)) AS before_fault,
           (SELECT b.t_request FROM back b WHERE b.provider = f.provider AND b.k = 3)
               AS t_back
    FROM f
)
SELECT c.provider, c.first_from, c.last_to, c.before_fault, c.t_back,
       (w.t_end - c.last_to) / 1e9 AS tail_s,
       (coalesce(c.t_back, w.t_end) - c.last_to) / 1e9 AS come_back_s,
       c.before_fault >= 3 AS judged,
       c.before_fault >= 3 AND c.t_back IS NULL
           AND (w.t_end - c.last_to) / 1e9 >= expect_s('come_back_s') AS abandoned
FROM c, run_window w;

-- name: majority_traffic
-- Per head lie that runs ahead (a `head_lie` fault in mode `ahead`: a provider on
-- another chain, or misreporting) told by a minority, each honest provider: healthy in
-- the scenario, with no fault window from `expect.come_back_s` before the lie to its
-- end, and more of them than liars then. `before_per_s`: its successful client
-- exchanges per second from t0 to the first fault; `owed`: what that rate carries in the
-- lie's second half (the first is the router's to learn of the lie: a head poll or a
-- head answer away); `kept`: what it carried there. `dropped`: owed 3 at least and kept
-- under a tenth of it. A router that follows the highest head reported takes the calls
-- off the honest majority, which then looks behind; one that spreads its load otherwise
-- keeps far more than a tenth (round robin keeps it all, routing away from the liar
-- raises it).
CREATE OR REPLACE TABLE majority_traffic AS
WITH lies AS (
    SELECT w.fault_id, w.provider AS liar, w.t_from, w.t_to,
           w.t_from + (w.t_to - w.t_from) // 2 AS t_half
    FROM fault_windows w JOIN chaos_events e USING (fault_id)
    WHERE w.kind = 'head_lie' AND json_extract_string(e.params, '$.mode') = 'ahead'
),
honest AS (
    SELECT l.*, p.provider
    FROM lies l, scenario_providers p
    WHERE p.healthy AND NOT EXISTS (
        SELECT 1 FROM fault_windows w
        WHERE w.provider = p.provider AND w.t_from < l.t_to
          AND w.t_to + CAST(expect_s('come_back_s') * 1e9 AS BIGINT) > l.t_from)
),
liars AS (
    SELECT l.fault_id, count(DISTINCT o.liar) AS liars
    FROM lies l JOIN lies o ON o.t_from < l.t_to AND o.t_to > l.t_from
    GROUP BY l.fault_id
),
before AS (
    SELECT w.t_start,
           coalesce((SELECT min(t_from) FROM fault_windows), w.t_end) AS first_from
    FROM run_window w
),
h AS (
    SELECT h.fault_id, h.liar, h.provider, h.t_from, h.t_half, h.t_to,
           (SELECT count(*) FROM serving_exchanges x
            WHERE x.provider = h.provider AND x.outcome = 'ok'
              AND x.t_request >= b.t_start AND x.t_request < b.first_from)
               / greatest((b.first_from - b.t_start) / 1e9, 1e-9) AS before_per_s,
           (SELECT count(*) FROM serving_exchanges x
            WHERE x.provider = h.provider AND x.outcome = 'ok'
              AND x.t_request >= h.t_half AND x.t_request < h.t_to) AS kept
    FROM honest h, before b
    WHERE (SELECT count(*) FROM honest o WHERE o.fault_id = h.fault_id)
          > (SELECT liars FROM liars l WHERE l.fault_id = h.fault_id)
)
SELECT fault_id, liar, provider, t_from, t_half, t_to, before_per_s,
       before_per_s * (t_to - t_half) / 1e9 AS owed, kept,
       before_per_s * (t_to - t_half) / 1e9 >= 3
           AND kept < 0.1 * before_per_s * (t_to - t_half) / 1e9 AS dropped
FROM h;

-- name: success_by_second
-- Client requests per one-second bucket of intended send time (bucket 0 starts at t0):
-- count, successes, success rate and latency percentiles (ms).
CREATE OR REPLACE TABLE success_by_second AS
SELECT (t_intended - (SELECT t_start FROM run_window)) // 1000000000 AS second,
       count(*) AS requests,
       count(*) FILTER (WHERE outcome = 'ok') AS ok,
       avg(CASE WHEN outcome = 'ok' THEN 1.0 ELSE 0.0 END) AS success_rate,
       quantile_cont(t_done - t_intended, [0.5, 0.95, 0.99]) AS q
FROM requests_x GROUP BY ALL;

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

-- name: rate_steps
-- The offered load's steps, taken from the scenario's first HTTP workload: each
-- `RATE@SECONDS` of a `steps:` arrival, back to back from t0, or one step over the
-- whole load for a constant `rate` (other arrival models have no steps). Per step: its
-- `rate` (req/s), interval, the client requests intended in it, their success rate and
-- p95 latency (ms, from the intended send time). A step of rate 0 is left out.
CREATE OR REPLACE TABLE rate_steps AS
WITH wl AS (
    SELECT list_filter(json_extract(parameters, '$.workloads[*]'),
                       lambda x: coalesce(json_extract_string(x, '$.kind'), 'http') = 'http')[1]
               AS w,
           TRY_CAST(json_extract_string(parameters, '$.duration_s') AS DOUBLE) AS duration_s
    FROM runs
),
spec AS (
    SELECT CASE WHEN json_extract_string(w, '$.arrival') LIKE 'steps:%'
                THEN string_split(substr(json_extract_string(w, '$.arrival'), 7), ',')
                WHEN json_extract_string(w, '$.arrival') IS NULL
                 AND json_extract_string(w, '$.rate') IS NOT NULL
                THEN [json_extract_string(w, '$.rate') || '@' || duration_s]
           END AS items
    FROM wl
),
parsed AS (
    SELECT i AS step,
           CAST(trim(split_part(items[i], '@', 1)) AS DOUBLE) AS rate,
           CAST(trim(split_part(items[i], '@', 2)) AS DOUBLE) AS seconds
    FROM spec, range(1, len(items) + 1) AS r(i)
),
steps AS (
    SELECT step, rate,
           w.t_start + CAST((sum(seconds) OVER (ORDER BY step) - seconds) * 1e9 AS BIGINT)
               AS t_from,
           w.t_start + CAST(sum(seconds) OVER (ORDER BY step) * 1e9 AS BIGINT) AS t_to
    FROM parsed, run_window w
)
SELECT s.step, s.rate, s.t_from, s.t_to, count(r.t_intended) AS requests,
       avg(CASE WHEN r.outcome = 'ok' THEN 1.0 ELSE 0.0 END) AS success_rate,
       quantile_cont(r.t_done - r.t_intended, 0.95) / 1e6 AS p95_ms
FROM steps s LEFT JOIN requests r ON r.t_intended >= s.t_from AND r.t_intended < s.t_to
WHERE s.rate > 0
GROUP BY ALL ORDER BY s.step;

-- name: highest_holding_rate
-- The highest rate (req/s) the load reached while the SLOs still held: the rate of the
-- last step before the first step that failed them (success rate below `success_min`,
-- p95 latency at or over `p95_max_ms`, or no request). 0 when the first step failed;
-- NULL when the load had no steps (see rate_steps). A step after a failed one does not
-- count, even if it passed: past the first failure the router was no longer holding.
CREATE OR REPLACE MACRO highest_holding_rate(success_min, p95_max_ms) AS (
    SELECT CASE WHEN count(*) = 0 THEN NULL
                ELSE coalesce(max(rate) FILTER (WHERE step < coalesce(
                         (SELECT min(step) FROM rate_steps
                          WHERE requests = 0 OR success_rate < success_min
                             OR p95_ms >= p95_max_ms), 1e18)), 0) END
    FROM rate_steps
);

-- ===================================================================================
-- Scalar metrics (one row, column `value`)
-- ===================================================================================

-- name: requests_total
SELECT count(*) AS value FROM requests;

-- name: success_rate
-- Share of client requests whose answer was a correct result.
SELECT avg(CASE WHEN outcome = 'ok' THEN 1 ELSE 0 END) AS value FROM requests_x;

-- name: latency_p50_ms
-- Latency is measured from the intended send time (coordinated-omission-correct).
SELECT quantile_cont(t_done - t_intended, 0.50) / 1e6 AS value FROM requests_x;

-- name: latency_p95_ms
SELECT quantile_cont(t_done - t_intended, 0.95) / 1e6 AS value FROM requests_x;

-- name: latency_p99_ms
SELECT quantile_cont(t_done - t_intended, 0.99) / 1e6 AS value FROM requests_x;

-- name: latency_max_ms
SELECT max(t_done - t_intended) / 1e6 AS value FROM requests_x;

-- name: upstream_exchanges
SELECT count(*) AS value FROM upstream;

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
                                        FROM requests_x) span
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

-- name: tags_behind
-- Answers for a tag (safe, finalized; latest) below a block answered for it or for a
-- tag trailing it before they were sent (see tag_checks).
SELECT count(*) FILTER (WHERE behind) AS value FROM tag_checks;

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

-- name: ws_silence_max_s
-- The longest a client subscription heard nothing while the chain had a block it had
-- not got (see ws_silence).
SELECT max(silence_s) AS value FROM ws_silence;

-- name: ws_silence_max_s.witnesses
SELECT worker, connection,
       round((t_from - (SELECT t_start FROM run_window)) / 1e9, 3) AS from_s,
       round((t_to - (SELECT t_start FROM run_window)) / 1e9, 3) AS to_s,
       round(silence_s, 3) AS silence_s, last_block, heard
FROM ws_silence ORDER BY silence_s DESC;

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

-- name: unrescued_failures
-- Client calls that failed with a healthy provider untried (see unrescued).
SELECT count(*) AS value FROM unrescued;

-- name: unrescued_failures.witnesses
SELECT tag, method, transport, round((t_intended - (SELECT t_start FROM run_window)) / 1e9, 3)
           AS at_s, outcome, attempts, served_by AS last_provider, untried,
       round((t_done - t_intended) / 1e6, 1) AS latency_ms
FROM unrescued ORDER BY t_intended;

-- name: wrong_answers
-- Client calls answered with a result that contradicts the chain's truth (a forged
-- value, a `null` where a value exists, a batch element carrying another's answer):
-- worse than an error, counted apart from errors.
SELECT count(*) AS value FROM requests_x WHERE outcome = 'invalid';

-- name: wrong_answers.witnesses
SELECT tag, method, transport, round((t_intended - (SELECT t_start FROM run_window)) / 1e9, 3)
           AS at_s, batch_size, error
FROM requests WHERE outcome = 'invalid' ORDER BY t_intended;

-- name: hung_call_count
-- Client calls answered past the router's declared deadline, or never (see hung_calls).
SELECT count(*) AS value FROM hung_calls;

-- name: hung_call_count.witnesses
SELECT tag, method, transport, round((t_intended - (SELECT t_start FROM run_window)) / 1e9, 3)
           AS at_s, outcome, attempts, served_by AS last_provider,
       round(service_ms, 1) AS service_ms
FROM hung_calls ORDER BY service_ms DESC;

-- name: retry_storm_calls
-- Client calls that failed on one provider more than `expect.max_attempts_per_provider`
-- times (see retry_storms).
SELECT count(DISTINCT tag) AS value FROM retry_storms;

-- name: retry_storm_calls.witnesses
SELECT tag, provider, attempts, failed_attempts,
       round((t_first - (SELECT t_start FROM run_window)) / 1e9, 3) AS first_at_s,
       round((t_last - t_first) / 1e6, 1) AS over_ms, outcomes
FROM retry_storms ORDER BY attempts DESC, t_first;

-- name: retry_after_breach_count
-- Client attempts sent inside a Retry-After (see retry_after_breaches).
SELECT count(*) AS value FROM retry_after_breaches;

-- name: retry_after_breach_count.witnesses
SELECT tag, provider, fault_id,
       round((t_request - (SELECT t_start FROM run_window)) / 1e9, 3) AS at_s,
       round((t_request - t_limited) / 1e9, 3) AS after_limit_s, retry_after_s
FROM retry_after_breaches ORDER BY t_request;

-- name: limit_backoff_breach_count
-- Client attempts sent within the declared back-off of a limit answer that asked none
-- (see limit_backoff_breaches).
SELECT count(*) AS value FROM limit_backoff_breaches;

-- name: limit_backoff_breach_count.witnesses
SELECT tag, provider, fault_id,
       round((t_request - (SELECT t_start FROM run_window)) / 1e9, 3) AS at_s,
       round((t_request - t_limited) / 1e9, 3) AS after_limit_s, backoff_s
FROM limit_backoff_breaches ORDER BY t_request;

-- name: majority_dropped
-- Honest providers that lost their client traffic while a minority lied its head far
-- ahead (see majority_traffic), counted per lie.
SELECT count(*) AS value FROM majority_traffic WHERE dropped;

-- name: majority_dropped.witnesses
SELECT fault_id, liar, provider,
       round((t_half - (SELECT t_start FROM run_window)) / 1e9, 3) AS from_s,
       round((t_to - (SELECT t_start FROM run_window)) / 1e9, 3) AS to_s,
       round(before_per_s, 2) AS calls_per_s_before, round(owed, 1) AS owed, kept
FROM majority_traffic WHERE dropped ORDER BY t_from, provider;

-- name: abandoned_providers
-- Providers that carried client traffic before their fault and never again after it,
-- with the load going on past `expect.come_back_s` (see provider_return).
SELECT count(*) AS value FROM provider_return WHERE abandoned;

-- name: abandoned_providers.witnesses
SELECT provider, before_fault AS calls_before_fault,
       round((last_to - (SELECT t_start FROM run_window)) / 1e9, 3) AS fault_ended_at_s,
       round(tail_s, 1) AS load_after_fault_s
FROM provider_return WHERE abandoned ORDER BY provider;

-- name: success_rate.witnesses
SELECT tag, method, transport, round((t_intended - (SELECT t_start FROM run_window)) / 1e9, 3)
           AS at_s, outcome, attempts, served_by AS last_provider, round(latency_ms, 1) AS latency_ms
FROM requests_x WHERE outcome <> 'ok' ORDER BY t_intended;

-- name: latency_p95_ms.witnesses
SELECT tag, method, transport, round((t_intended - (SELECT t_start FROM run_window)) / 1e9, 3)
           AS at_s, outcome, attempts, served_by AS last_provider, round(latency_ms, 1) AS latency_ms
FROM requests_x
WHERE latency_ms >= (SELECT quantile_cont(latency_ms, 0.95) FROM requests_x)
ORDER BY latency_ms DESC;

-- name: amplification.witnesses
SELECT tag, method, round((t_intended - (SELECT t_start FROM run_window)) / 1e9, 3) AS at_s,
       outcome, attempts, providers, served_by AS last_provider
FROM requests_x WHERE attempts > 1 ORDER BY attempts DESC, t_intended;

-- name: breaker_stop_max_ms.witnesses
SELECT b.fault_id, b.provider, b.kind, round(b.stop_ms / 1e3, 3) AS stopped_after_s,
       round((f.t_to - f.t_from) / 1e9, 3) AS fault_s, b.wasted_attempts
FROM breaker b JOIN fault_windows f USING (fault_id)
ORDER BY coalesce(b.stop_ms, (f.t_to - f.t_from) / 1e6) DESC;

-- name: ws_gap_blocks.witnesses
SELECT worker, connection, subscription, block_number, gap_blocks,
       round((t_received - (SELECT t_start FROM run_window)) / 1e9, 3) AS at_s
FROM ws_checks WHERE gap_blocks > 0 ORDER BY t_received;

-- name: tags_behind.witnesses
SELECT worker, seq, block_tag, round((t_intended - (SELECT t_start FROM run_window)) / 1e9, 3)
           AS at_s, result_block, floor_tag, floor
FROM tag_checks WHERE behind ORDER BY t_intended;

-- name: heads_backwards.witnesses
SELECT worker, seq, method, round((t_intended - (SELECT t_start FROM run_window)) / 1e9, 3)
           AS at_s, result_block, seen_max AS already_answered
FROM head_checks WHERE backwards ORDER BY t_intended;

-- ===================================================================================
-- Policy figures (measured always; the built-ins judge them against `expect`)
-- ===================================================================================

-- name: route_away_max_s
-- The longest a router kept sending client calls to a provider after a fault began
-- (see breaker; the fault's length when it never stopped), over the faults that fail
-- calls: a slow provider that still answers (`latency`) may rightly keep its traffic
-- (moving away is a latency-aware router's policy), and WebSocket faults touch no call.
SELECT max(coalesce(b.stop_ms, (f.t_to - f.t_from) / 1e6)) / 1e3 AS value
FROM breaker b JOIN fault_windows f USING (fault_id)
WHERE f.kind <> 'latency' AND f.kind NOT LIKE 'ws\_%' ESCAPE '\';

-- name: route_away_max_s.witnesses
SELECT b.fault_id, b.provider, b.kind, round(b.stop_ms / 1e3, 3) AS stopped_after_s,
       round((f.t_to - f.t_from) / 1e9, 3) AS fault_s, b.wasted_attempts
FROM breaker b JOIN fault_windows f USING (fault_id)
WHERE f.kind <> 'latency' AND f.kind NOT LIKE 'ws\_%' ESCAPE '\'
ORDER BY coalesce(b.stop_ms, (f.t_to - f.t_from) / 1e6) DESC;

-- name: wasted_attempts_max
-- The most client attempts one fault window drew before the router routed away.
SELECT coalesce(max(wasted_attempts), 0) AS value FROM breaker;

-- name: wasted_attempts_max.witnesses
SELECT fault_id, provider, kind, wasted_attempts, round(stop_ms / 1e3, 3) AS stopped_after_s
FROM breaker ORDER BY wasted_attempts DESC;

-- name: come_back_max_s
-- The longest a provider that carried client traffic before its fault took to serve a
-- client again after its last fault (the rest of the load when it never did).
SELECT max(come_back_s) AS value FROM provider_return WHERE judged;

-- name: come_back_max_s.witnesses
SELECT provider, round(come_back_s, 3) AS come_back_s, t_back IS NOT NULL AS came_back,
       round(tail_s, 1) AS load_after_fault_s
FROM provider_return WHERE judged ORDER BY come_back_s DESC;

-- name: own_exchanges
-- Upstream exchanges no client call is attributed to: the router's own traffic.
SELECT coalesce(sum(exchanges), 0) AS value FROM own_traffic;

-- name: rss_per_call
-- Memory growth of the system under test per client call it served: least-squares
-- slope of its resident memory (KB) against the calls answered so far, over its samples
-- from `warmup_s` after t0, with the slope's standard error, r² and sample count.
-- `low95` (slope - 2 SE) is what the leak check judges: growth shown with confidence,
-- not allocator noise.
CREATE OR REPLACE MACRO rss_per_call(warmup_s) AS TABLE
WITH s AS (
    SELECT t, sum(rss) / 1e3 AS rss_kb FROM system
    WHERE role = 'sut' AND t >= (SELECT t_start FROM run_window) + warmup_s * 1e9
      AND t <= (SELECT t_end FROM run_window)
    GROUP BY t
),
c AS (SELECT t_done, row_number() OVER (ORDER BY t_done) AS n FROM requests_x),
x AS (SELECT s.t, s.rss_kb, coalesce(c.n, 0) AS n FROM s ASOF LEFT JOIN c ON c.t_done <= s.t),
fit AS (
    SELECT regr_slope(rss_kb, n) AS slope, regr_r2(rss_kb, n) AS r2,
           regr_count(rss_kb, n) AS samples, regr_sxx(rss_kb, n) AS sxx,
           regr_syy(rss_kb, n) AS syy
    FROM x
)
SELECT slope AS kb_per_call,
       CASE WHEN samples > 2 AND sxx > 0
            THEN sqrt(greatest(syy * (1 - coalesce(r2, 0)), 0) / (samples - 2) / sxx) END
           AS stderr,
       r2, samples
FROM fit;

-- name: rss_kb_per_call
SELECT kb_per_call AS value FROM rss_per_call(5);

-- name: rss_kb_per_call_low95
-- The lower end of the slope's 95% interval (see rss_per_call), after 5 s of warm-up.
SELECT kb_per_call - 2 * coalesce(stderr, 0) AS value FROM rss_per_call(5);

-- name: host_jitter_p99_ms
-- Host preemption while the load ran: the runner's probe oversleeps a 10 ms sleep by
-- this much (p99 of its per-second p99s). 0 when it recorded none.
SELECT coalesce(quantile_cont(oversleep_p99_ns, 0.99) / 1e6, 0) AS value FROM host_jitter;

-- name: host_jitter_max_ms
SELECT coalesce(max(oversleep_max_ns) / 1e6, 0) AS value FROM host_jitter;

-- name: faults_planned
SELECT count(*) AS value FROM planned_faults;

-- ===================================================================================
-- Validity checks (a failure makes the run invalid)
-- ===================================================================================

-- name: faults_not_applied
-- Faults the instrument failed to arm or apply: a fault of the scenario's plan with no
-- window that started (the proxy never armed it), or a window that met traffic on its
-- provider (an exchange the proxy received in it, or a WebSocket notification it
-- passed) and touched none of it. A window that met no traffic, because the router
-- sent that provider none (its breaker was open, it had moved its subscription away),
-- is evidence about the router and shows in its traffic share and come-back figures:
-- never a failure of the instrument. Nor is a `rate_limit` window that limited nothing
-- while the router kept within its quota: it meets traffic only past what its bucket
-- could admit (`params.quota`: burst + rate x window, at the fewest tokens an exchange
-- takes), nor a notification fault acting on one in `every_k` that met fewer than k
-- (one with a probability under 1 may act on none), nor a `head_lie` window that met
-- no call of the methods its mode lies about. Windows of a fault with a matcher
-- (methods, a probability) are judged only on what they touched, as the traffic they
-- should have met cannot be told from here. A `refuse` window leaves no exchange: its
-- proof is the proxy's `listener_down` lifecycle row for it.
WITH windows AS (
    SELECT fault_id, spec_id, provider, actual_start,
           coalesce(actual_end, (SELECT t_end FROM run_window)) AS actual_end,
           coalesce(match, 'null') = 'null' AS matches_all,
           kind LIKE 'ws\_%' ESCAPE '\' AS socket_fault,
           kind IN ('ws_drop', 'ws_delay', 'ws_duplicate', 'ws_reorder') AS per_notification,
           -- Notifications a window must meet to be sure to act: `every_k` acts on one
           -- in k (ws_reorder: 2 unless told); a probability under 1 may act on none
           -- (NULL: judged only on what it touched).
           CASE WHEN kind NOT IN ('ws_drop', 'ws_delay', 'ws_duplicate', 'ws_reorder')
                THEN 1
                WHEN json_extract(params, '$.every_k') IS NOT NULL
                THEN CAST(json_extract(params, '$.every_k') AS INTEGER)
                WHEN CAST(json_extract(params, '$.probability') AS DOUBLE) < 1 THEN NULL
                WHEN kind = 'ws_reorder' AND json_extract(params, '$.probability') IS NULL
                THEN 2
                ELSE 1 END AS notifications_needed,
           -- The methods whose answers a head lie can act on: the traffic it meets is
           -- theirs (a router that answers eth_chainId itself, or sends a provider only
           -- its head polls, gives a `chain_id` or `tags` lie nothing to act on). NULL:
           -- every exchange.
           CASE WHEN kind <> 'head_lie' THEN NULL
                WHEN json_extract_string(params, '$.mode') = 'chain_id' THEN ['eth_chainId']
                WHEN json_extract_string(params, '$.mode') = 'syncing' THEN ['eth_syncing']
                WHEN json_extract_string(params, '$.mode') = 'tags'
                THEN ['eth_getBlockByNumber']
                ELSE ['eth_blockNumber', 'eth_getBlockByNumber'] END AS lie_methods,
           -- A rate limit's admissible exchanges; NULL for any other fault.
           CASE WHEN kind = 'rate_limit' THEN
               (CAST(json_extract(params, '$.quota.burst') AS DOUBLE)
                + CAST(json_extract(params, '$.quota.rate_per_s') AS DOUBLE)
                  * (coalesce(actual_end, (SELECT t_end FROM run_window)) - actual_start)
                  / 1e9)
               / CAST(json_extract(params, '$.quota.least_cost') AS DOUBLE)
           END AS admissible
    FROM chaos_events
),
touched AS (
    SELECT w.fault_id FROM windows w
    WHERE EXISTS (SELECT 1 FROM upstream u WHERE u.fault_id = w.fault_id)
       OR EXISTS (SELECT 1 FROM upstream u WHERE u.fault_ids IS NOT NULL
                    AND list_contains(string_split(u.fault_ids, ','), w.fault_id))
       OR EXISTS (SELECT 1 FROM upstream_ws x WHERE x.fault_id = w.fault_id)
       -- A `refuse` window's proof: the proxy closed the listener (no exchange exists).
       OR EXISTS (SELECT 1 FROM lifecycle l WHERE l.role = 'proxy'
                    AND l.event = 'listener_down'
                    AND json_extract_string(l.detail, '$.window') = w.fault_id
                    AND coalesce(TRY_CAST(json_extract(l.detail, '$.ok') AS BOOLEAN), false))
),
-- The traffic a window could act on: a WebSocket fault's is the provider's
-- subscription traffic, any other fault's its exchanges (HTTP, or calls over WS).
met AS (
    SELECT w.fault_id FROM windows w
    WHERE (NOT w.socket_fault
           AND (SELECT count(*) FROM upstream u WHERE u.provider = w.provider
                  AND u.t_request >= w.actual_start AND u.t_request < w.actual_end
                  AND (w.lie_methods IS NULL OR list_contains(w.lie_methods, u.method)))
               > coalesce(w.admissible, 0))
       OR (w.socket_fault
           AND (SELECT count(*) FROM upstream_ws x WHERE x.provider = w.provider
                  AND x.t >= w.actual_start AND x.t < w.actual_end
                  AND (NOT w.per_notification
                       OR x.action NOT IN ('open', 'close', 'disconnected', 'duplicated')))
               >= w.notifications_needed)
)
SELECT (SELECT count(*) FROM planned_faults p
        WHERE NOT EXISTS (SELECT 1 FROM windows w WHERE w.actual_start IS NOT NULL
                            AND (w.spec_id = p.fault_id OR w.fault_id = p.fault_id)))
     + (SELECT count(*) FROM windows w
        WHERE w.actual_start IS NULL
           OR (w.matches_all AND w.fault_id IN (SELECT fault_id FROM met)
               AND w.fault_id NOT IN (SELECT fault_id FROM touched)))
       AS value;

-- name: faults_not_applied.witnesses
WITH w AS (SELECT * FROM chaos_events)
SELECT w.fault_id, w.provider, w.kind,
       round((w.actual_start - (SELECT t_start FROM run_window)) / 1e9, 3) AS started_at_s,
       (SELECT count(*) FROM upstream u WHERE u.provider = w.provider
          AND u.t_request >= w.actual_start
          AND u.t_request < coalesce(w.actual_end, (SELECT t_end FROM run_window)))
           AS exchanges_in_window,
       (SELECT count(*) FROM upstream u WHERE u.fault_id = w.fault_id) AS touched
FROM w ORDER BY w.actual_start NULLS FIRST;

-- name: faults_without_traffic
-- Fault windows that met no traffic at all on their provider: the router sent it none
-- (reported; evidence about the router, not an invalid run).
SELECT count(*) AS value FROM chaos_events c
WHERE c.actual_start IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM upstream u WHERE u.provider = c.provider
                    AND u.t_request >= c.actual_start
                    AND u.t_request < coalesce(c.actual_end, (SELECT t_end FROM run_window)))
  AND NOT EXISTS (SELECT 1 FROM upstream_ws x WHERE x.provider = c.provider
                    AND x.t >= c.actual_start
                    AND x.t < coalesce(c.actual_end, (SELECT t_end FROM run_window)));

-- name: requests_not_sent_share
-- Calls the load generator planned but could not send (in-flight cap reached).
SELECT coalesce(sum(CAST(json_extract(detail, '$.not_sent') AS DOUBLE))
       / nullif(sum(CAST(json_extract(detail, '$.planned') AS DOUBLE)), 0), 0) AS value
FROM lifecycle WHERE role = 'loadgen' AND event = 'stopped';

-- name: late_sends_share
-- Calls the load generator sent later after their intended time than the gap between
-- two of their worker's scheduled sends (and at least 1 ms), per call sent: past that
-- the offered load was not the one planned (bunched sends). A send a little late
-- changes nothing measured (latency runs from the intended time); whether lateness
-- could have flipped a latency SLO is judged apart (verdict.py, load_noise).
-- WebSocket call probes are left out: one is in flight at a time, so a probe held up by
-- the one before is sent late by design (its latency still runs from its slot).
WITH r AS (
    SELECT worker, transport, t_intended, t_sent FROM requests
    WHERE t_sent IS NOT NULL AND transport <> 'ws'
),
g AS (
    SELECT worker, transport,
           (max(t_intended) - min(t_intended)) / nullif(count(*) - 1, 0) AS gap_ns
    FROM r GROUP BY ALL
)
SELECT coalesce(avg(CASE WHEN r.t_sent - r.t_intended > greatest(1e6, coalesce(g.gap_ns, 0))
                         THEN 1.0 ELSE 0.0 END), 0) AS value
FROM r JOIN g USING (worker, transport);

-- name: late_sends_share.witnesses
SELECT worker, seq, tag, transport,
       round((t_intended - (SELECT t_start FROM run_window)) / 1e9, 3) AS at_s,
       round((t_sent - t_intended) / 1e6, 3) AS late_ms
FROM requests WHERE t_sent - t_intended > 1e6 AND transport <> 'ws'
ORDER BY t_sent - t_intended DESC;

-- name: clock_skew_ms
-- How far the load generator's clock and the chaos proxy's disagree, in ms: in real
-- time a call is sent before the proxy receives any exchange tagged with it, and ends
-- after the proxy had the first answer that served it, so a call's earliest exchange
-- received before its send, or its first answer after its end, measures a skew. The
-- median over the calls answered through a tagged `ok` exchange, so that a router's
-- hedged or late attempts (answers after the call ended, the first having served it)
-- and answers from its cache (no exchange) do not count. Measured: a worker anchored to
-- the wall clock once fell 5 ms a second behind it on a busy VM; every head it judged
-- near a block boundary came out "ahead of the true head".
WITH c AS (
    SELECT r.tag,
           greatest(min(u.t_response) FILTER (WHERE u.outcome = 'ok') - any_value(r.t_done),
                    any_value(r.t_sent) - min(u.t_request), 0) AS skew_ns
    FROM requests r JOIN upstream u ON u.tag = r.tag
    WHERE r.outcome = 'ok' AND r.t_sent IS NOT NULL
    GROUP BY r.tag
    HAVING count(*) FILTER (WHERE u.outcome = 'ok') > 0
)
SELECT coalesce(median(skew_ns), 0) / 1e6 AS value FROM c;

-- name: clock_skew_ms.witnesses
SELECT r.tag, round((r.t_sent - (SELECT t_start FROM run_window)) / 1e9, 3) AS at_s,
       round((min(u.t_request) - r.t_sent) / 1e6, 3) AS proxy_received_after_send_ms,
       round((any_value(r.t_done) - min(u.t_response) FILTER (WHERE u.outcome = 'ok')) / 1e6, 3)
           AS call_ended_after_answer_ms
FROM requests r JOIN upstream u ON u.tag = r.tag
WHERE r.outcome = 'ok' AND r.t_sent IS NOT NULL
GROUP BY r.tag, r.t_sent
HAVING min(u.t_response) FILTER (WHERE u.outcome = 'ok') > any_value(r.t_done)
    OR min(u.t_request) < r.t_sent
ORDER BY r.t_sent;

-- name: send_lateness_p99_ms
-- How late the load generator sent (p99 of sent minus intended time, ms).
SELECT quantile_cont(t_sent - t_intended, 0.99) / 1e6 AS value FROM requests
WHERE t_sent IS NOT NULL AND transport <> 'ws';

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
-- The chaos proxy's worst sustained event-loop lag while the load ran, in ms: a
-- saturated proxy distorts every exchange. As for its CPU, the lower of the worst lags
-- of two consecutive seconds counts (a first sample pairs with 0), so one stall (a
-- collection pause, the host preempting the process once) is no saturation; start-up
-- and shutdown are left out, as they lag without harm. 0 when the proxy recorded no
-- health samples then.
SELECT coalesce(max(least(x.lag, coalesce(x.prev_lag, 0))) / 1e6, 0) AS value
FROM (SELECT t, loop_lag_ns AS lag,
             lag(loop_lag_ns) OVER (PARTITION BY proxy ORDER BY t) AS prev_lag
      FROM proxy_health) x,
     (SELECT min(t_intended) AS t_a, max(t_done) AS t_b FROM requests_x) w
WHERE x.t BETWEEN w.t_a AND w.t_b;

-- name: proxy_cpu_max
-- The chaos proxy's busiest sustained load while the load ran, in cores: the higher of
-- the samples of any two consecutive seconds is ignored, so one busy second (a
-- collection pause) does not count as saturation; a first sample pairs with 0, as
-- least() would skip a NULL. It runs on one event loop: 1.0 is saturated. 0 when it
-- recorded no health samples then.
SELECT coalesce(max(least(x.cpu, coalesce(x.prev_cpu, 0))), 0) AS value
FROM (SELECT t, cpu, lag(cpu) OVER (PARTITION BY proxy ORDER BY t) AS prev_cpu
      FROM proxy_health) x,
     (SELECT min(t_intended) AS t_a, max(t_done) AS t_b FROM requests_x) w
WHERE x.t BETWEEN w.t_a AND w.t_b;

-- name: loadgen_cpu_max
-- The busiest load-generator process while the load ran, sustained over two
-- consecutive samples as for the proxy, in cores (1.0 = one core saturated).
SELECT coalesce(max(least(x.cpu, coalesce(x.prev_cpu, 0))), 0) AS value
FROM (SELECT t, cpu, lag(cpu) OVER (PARTITION BY pid ORDER BY t) AS prev_cpu
      FROM system WHERE role = 'loadgen') x,
     (SELECT min(t_intended) AS t_a, max(t_done) AS t_b FROM requests_x) w
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
SELECT outcome, count(*) AS requests FROM requests_x GROUP BY outcome ORDER BY requests DESC;

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

-- name: ws_silence_table
-- Per client socket slot: its longest silence while the chain advanced, when it began
-- (s after t0), and whether a notification ended it.
SELECT worker, connection, round(max(silence_s), 3) AS silence_max_s,
       round((arg_max(t_from, silence_s) - (SELECT t_start FROM run_window)) / 1e9, 3)
           AS from_s,
       arg_max(heard, silence_s) AS heard
FROM ws_silence GROUP BY worker, connection ORDER BY silence_max_s DESC, worker, connection;

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
FROM requests_x GROUP BY ALL ORDER BY bucket_ms;

-- name: own_traffic_table
-- The router's own traffic per provider (exchanges no client call is attributed to).
SELECT * FROM own_traffic ORDER BY provider;

-- name: rate_limit_shapes
-- Per rate-limit fault (one answer shape each): the limit answers it gave, the client
-- attempts the router sent to that provider in the fault's window, the back-off the
-- answer asked for and where (`asked_in`: Retry-After, body, none), the attempts the
-- router sent inside it (`in_backoff`: Retry-After breaches where the header asks,
-- else attempts within the declared expect.rate_limit_backoff_s), and how long the
-- router actually stayed away after a limit answer (`away_*_s`, to its next client
-- attempt there; see limit_backoffs). `never_back`: answers after which it sent
-- nothing there again.
WITH b AS (
    SELECT fault_id, count(*) AS in_backoff FROM (
        SELECT fault_id FROM retry_after_breaches
        UNION ALL SELECT fault_id FROM limit_backoff_breaches) GROUP BY fault_id
),
w AS (
    SELECT fw.fault_id, count(x.tag) AS attempts
    FROM fault_windows fw LEFT JOIN client_exchanges x
      ON x.provider = fw.provider AND x.t_request >= fw.t_from AND x.t_request < fw.t_to
    WHERE fw.kind = 'rate_limit' GROUP BY fw.fault_id
),
a AS (
    SELECT fault_id, count(*) AS limit_answers,
           round(quantile_cont((t_next - t_limited) / 1e9, 0.5), 3) AS away_p50_s,
           round(min((t_next - t_limited) / 1e9), 3) AS away_min_s,
           count(*) FILTER (WHERE t_next IS NULL) AS never_back
    FROM limit_backoffs GROUP BY fault_id
)
SELECT f.fault_id, f.provider, f.shape, coalesce(a.limit_answers, 0) AS limit_answers,
       coalesce(w.attempts, 0) AS attempts,
       coalesce(f.retry_after_s, f.body_backoff_s) AS asked_s,
       CASE WHEN f.retry_after_s IS NOT NULL THEN 'Retry-After'
            WHEN f.body_backoff_s IS NOT NULL THEN 'body' ELSE 'none' END AS asked_in,
       coalesce(b.in_backoff, 0) AS in_backoff, a.away_p50_s, a.away_min_s,
       coalesce(a.never_back, 0) AS never_back
FROM rate_limit_faults f LEFT JOIN a USING (fault_id) LEFT JOIN b USING (fault_id)
LEFT JOIN w USING (fault_id)
ORDER BY f.fault_id;

-- name: provider_return_table
-- Per faulted provider: client calls before its first fault (while every other was in
-- service), whether it was judged on coming back, how long that took, whether it was
-- abandoned.
SELECT provider, before_fault, judged, round(come_back_s, 3) AS come_back_s,
       t_back IS NOT NULL AS came_back, round(tail_s, 1) AS tail_s, abandoned
FROM provider_return ORDER BY provider;

-- name: majority_traffic_table
-- Per head lie running ahead and honest provider: its client calls per second before
-- the faults, what it was owed and kept in the lie's second half, whether it was
-- dropped (see majority_traffic).
SELECT fault_id, liar, provider, round(before_per_s, 2) AS before_per_s,
       round(owed, 1) AS owed, kept, dropped
FROM majority_traffic ORDER BY t_from, provider;

-- name: expect_table
-- The router profile the run was judged against (declared, else the default).
SELECT name, value, declared FROM expect ORDER BY name;

-- name: phase_table
-- The run's phases (s after t0).
SELECT phase, (t_from - w.t_start) / 1e9 AS from_s, (t_to - w.t_start) / 1e9 AS to_s
FROM phases, run_window w ORDER BY t_from, phase;
