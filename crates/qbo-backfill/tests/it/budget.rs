//! The company's request budget shared through PostgreSQL ([`PgBudget`]): several independent
//! budgets (as separate processes hold them) on a fresh database never exceed the per-second,
//! per-minute or in-flight limits, a dead slot expires, a pause is shared; then three processes
//! of the real binary load the three pipelines of one company at once against a simulator that
//! enforces Intuit's limits, without one throttled response.

use std::time::{Duration, Instant};

use qbo::{Counted, RateLimitSettings};
use qbo_backfill::store::connect_options;
use qbo_backfill::store::infra::budget::PgBudget;
use qbo_sim::{FaultConfig, SimLimits};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use crate::harness::{World, sim_config, stderr, stdout};
use crate::support::test_db;

const REALM: &str = "9130350000000001";

fn limits(
    per_minute: Option<u32>,
    per_second: Option<u32>,
    in_flight: Option<u32>,
) -> RateLimitSettings {
    RateLimitSettings {
        requests_per_minute: per_minute,
        requests_per_second: per_second,
        max_in_flight: in_flight,
    }
}

/// A second pool on the same database, as another process would have (connected as the
/// binary connects: no TLS on loopback).
async fn other_pool(url: &str) -> PgPool {
    PgPoolOptions::new()
        .max_connections(4)
        .connect_with(connect_options(url).expect("url"))
        .await
        .expect("second pool")
}

/// One request's life, in seconds from a common origin: `[start, end]`.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: f64,
    end: f64,
}

/// The most requests any window of `width` seconds could have seen arrive: the requests whose
/// `[start, end]` intersects `[t, t + width)`, maximised over `t` (the maximum is reached at
/// some request's end).
fn max_in_any_window(spans: &[Span], width: f64) -> usize {
    spans
        .iter()
        .map(|j| {
            spans
                .iter()
                .filter(|i| i.start < j.end + width && i.end >= j.end)
                .count()
        })
        .max()
        .unwrap_or(0)
}

/// The most requests in flight at once.
fn max_in_flight(spans: &[Span]) -> usize {
    spans
        .iter()
        .map(|j| {
            spans
                .iter()
                .filter(|i| i.start <= j.start && j.start < i.end)
                .count()
        })
        .max()
        .unwrap_or(0)
}

/// Every slot recorded in `ops.budget_slots`, by the database clock, in seconds from the first
/// start (`end` is the completion, or the lease expiry of a slot never released).
///
/// Good for the rolling windows, not for overlaps: `started_at` is the decision's clock reading,
/// taken just before it counts, so a release committed during the decision (its `completed_at`
/// a moment after that reading) was rightly not counted in flight, yet its recorded span
/// overlaps the new one by that moment. The requests themselves did not overlap: the new one is
/// sent only after the decision commits. In-flight limits are checked on the spans the callers
/// saw, and on what the simulator saw.
async fn recorded_spans(pool: &PgPool) -> Vec<Span> {
    recorded(pool, "ends_at").await
}

/// [`recorded_spans`] as the rolling second counts them: a slot counted from its start
/// (`from_start`, a warm connection) reaches the server a steady delay after it, so its span is
/// that instant alone.
async fn second_spans(pool: &PgPool) -> Vec<Span> {
    recorded(
        pool,
        "CASE WHEN from_start THEN started_at ELSE ends_at END",
    )
    .await
}

async fn recorded(pool: &PgPool, end: &str) -> Vec<Span> {
    let rows: Vec<(f64, f64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT extract(epoch FROM started_at)::float8, extract(epoch FROM {end})::float8 \
         FROM ops.budget_slots ORDER BY started_at"
    )))
    .fetch_all(pool)
    .await
    .expect("slots");
    let origin = rows.first().map_or(0.0, |r| r.0);
    rows.into_iter()
        .map(|(s, e)| Span {
            start: s - origin,
            end: e - origin,
        })
        .collect()
}

/// `budgets` × `tasks_each` tasks each send `requests_each` requests of 0..`max_ms` ms; the
/// spans they saw, by the local clock.
async fn hammer(
    budgets: &[PgBudget],
    tasks_each: usize,
    requests_each: usize,
    max_ms: u64,
) -> Vec<Span> {
    let origin = Instant::now();
    let mut tasks = Vec::new();
    for (b, budget) in budgets.iter().enumerate() {
        for t in 0..tasks_each {
            let budget = budget.clone();
            // Request times spread over 0..=max_ms, differently in every task.
            let mut seed = (b * 31 + t * 7 + 1) as u64;
            tasks.push(tokio::spawn(async move {
                let mut spans = Vec::new();
                for _ in 0..requests_each {
                    let slot = budget
                        .acquire_slot(Counted::FromCompletion)
                        .await
                        .expect("slot");
                    let start = origin.elapsed().as_secs_f64();
                    seed = seed
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    let ms = (seed >> 33) % (max_ms + 1);
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    let end = origin.elapsed().as_secs_f64();
                    slot.complete().await.expect("release");
                    spans.push(Span { start, end });
                }
                spans
            }));
        }
    }
    let mut spans = Vec::new();
    for t in tasks {
        spans.extend(t.await.expect("task"));
    }
    spans.sort_by(|a, b| a.start.total_cmp(&b.start));
    spans
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn independent_budgets_never_exceed_the_per_second_or_in_flight_limit() {
    let db = test_db().await;
    let second_pool = other_pool(&db.url).await;
    let third_pool = other_pool(&db.url).await;
    let rules = limits(None, Some(6), Some(3));
    // Three "processes", each with its own pool and gate.
    let budgets = [
        PgBudget::new(db.pool.clone(), REALM, &rules),
        PgBudget::new(second_pool, REALM, &rules),
        PgBudget::new(third_pool, REALM, &rules),
    ];
    let spans = hammer(&budgets, 4, 3, 150).await;
    assert_eq!(spans.len(), 36);
    let by_server = max_in_any_window(&spans, 1.0);
    let in_flight = max_in_flight(&spans);
    assert!(by_server <= 6, "{by_server} requests in one second");
    assert!(in_flight <= 3, "{in_flight} requests in flight");
    // The database's own record holds the rule with the guard: 6 per 1.1 s.
    let recorded = recorded_spans(&db.pool).await;
    assert_eq!(recorded.len(), 36);
    assert!(max_in_any_window(&recorded, 1.1) <= 6);
    // The budget is used, not just respected: the server's rule would let the 36 start in
    // 6 batches of 6, 1 s apart.
    let elapsed = spans.last().map_or(0.0, |s| s.start);
    let use_ = 5.0 / elapsed;
    eprintln!(
        "36 requests over 3 budgets started within {elapsed:.2} s: {:.0}% of the per-second budget",
        use_ * 100.0
    );
    assert!(use_ > 0.6, "too slow: {elapsed:.2} s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_flight_limit_alone_is_shared_and_a_release_lets_a_waiter_in_at_once() {
    let db = test_db().await;
    let rules = limits(None, None, Some(2));
    let a = PgBudget::new(db.pool.clone(), REALM, &rules);
    let b = PgBudget::new(other_pool(&db.url).await, REALM, &rules);
    let spans = hammer(&[a.clone(), b.clone()], 4, 5, 30).await;
    assert_eq!(spans.len(), 40);
    assert!(max_in_flight(&spans) <= 2);
    assert_eq!(recorded_spans(&db.pool).await.len(), 40);

    let first = a.acquire_slot(Counted::FromCompletion).await.expect("slot");
    let second = a.acquire_slot(Counted::FromCompletion).await.expect("slot");
    let waiter = tokio::spawn(async move {
        let slot = b.acquire_slot(Counted::FromCompletion).await.expect("slot");
        let at = Instant::now();
        slot.complete().await.expect("release");
        at
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiter.is_finished(), "a third request started");
    let released = Instant::now();
    first.complete().await.expect("release");
    let started = waiter.await.expect("task");
    let lag = started.saturating_duration_since(released);
    assert!(
        lag < Duration::from_millis(150),
        "waited {lag:?} after a release"
    );
    second.complete().await.expect("release");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_slot_counts_until_its_lease_expires_then_as_completed() {
    let db = test_db().await;
    let lease = Duration::from_millis(1500);
    let dead = PgBudget::new(db.pool.clone(), REALM, &limits(None, Some(1), Some(1)))
        .with_slot_lease(lease);
    let alive = PgBudget::new(
        other_pool(&db.url).await,
        REALM,
        &limits(None, Some(1), Some(1)),
    );
    let t0 = Instant::now();
    // A process takes a slot and dies before releasing it.
    dead.acquire_slot(Counted::FromCompletion)
        .await
        .expect("slot")
        .leak();
    let slot = alive
        .acquire_slot(Counted::FromCompletion)
        .await
        .expect("slot");
    let waited = t0.elapsed();
    // In flight until the lease expires, then completed at the expiry: 1.5 s + 1.1 s.
    assert!(
        waited >= Duration::from_millis(2500),
        "started after {waited:?}"
    );
    assert!(
        waited < Duration::from_millis(3500),
        "started after {waited:?}"
    );
    slot.complete().await.expect("release");
    let open: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM ops.budget_slots WHERE completed_at IS NULL AND expires_at > now()",
    )
    .fetch_one(&db.pool)
    .await
    .expect("count");
    assert_eq!(open, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_slot_is_released_in_the_background() {
    let db = test_db().await;
    let budget = PgBudget::new(db.pool.clone(), REALM, &limits(None, None, Some(1)));
    let slot = budget
        .acquire_slot(Counted::FromCompletion)
        .await
        .expect("slot");
    let id = slot.id().expect("id");
    drop(slot);
    let t0 = Instant::now();
    let again = budget
        .acquire_slot(Counted::FromCompletion)
        .await
        .expect("slot");
    assert!(t0.elapsed() < Duration::from_secs(1));
    let completed: bool =
        sqlx::query_scalar("SELECT completed_at IS NOT NULL FROM ops.budget_slots WHERE id = $1")
            .bind(id)
            .fetch_one(&db.pool)
            .await
            .expect("slot row");
    assert!(completed);
    again.complete().await.expect("release");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_holds_back_every_budget_and_is_never_shortened() {
    let db = test_db().await;
    let a = PgBudget::new(
        db.pool.clone(),
        REALM,
        &limits(Some(500), Some(10), Some(10)),
    );
    let b = PgBudget::new(
        other_pool(&db.url).await,
        REALM,
        &limits(Some(500), Some(10), Some(10)),
    );
    let t0 = Instant::now();
    a.pause(Duration::from_millis(1200)).await.expect("pause");
    a.pause(Duration::from_millis(100)).await.expect("pause");
    // Another company is not paused.
    let other = PgBudget::new(db.pool.clone(), "other-realm", &limits(None, None, None));
    other
        .acquire_slot(Counted::FromCompletion)
        .await
        .expect("slot")
        .complete()
        .await
        .expect("release");
    assert!(t0.elapsed() < Duration::from_millis(500));
    b.acquire_slot(Counted::FromCompletion)
        .await
        .expect("slot")
        .complete()
        .await
        .expect("release");
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(1150),
        "started after {waited:?}"
    );
    assert!(
        waited < Duration::from_millis(2000),
        "started after {waited:?}"
    );
    // Through the trait, as the client calls it after a 429.
    qbo::SharedBudget::pause_for(&b, Duration::from_millis(400)).await;
    let t1 = Instant::now();
    let slot = qbo::SharedBudget::acquire(&a, Counted::FromStart)
        .await
        .expect("slot");
    assert!(t1.elapsed() >= Duration::from_millis(350));
    slot.release().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_the_second_a_warm_slot_counts_from_its_start_and_a_cold_one_from_its_completion() {
    let db = test_db().await;
    let a = PgBudget::new(db.pool.clone(), REALM, &limits(None, Some(1), None));
    let b = PgBudget::new(
        other_pool(&db.url).await,
        REALM,
        &limits(None, Some(1), None),
    );
    let span = Duration::from_secs(1) + qbo::SECOND_GUARD;
    let answer = Duration::from_millis(400);
    // A warm request answered after 400 ms: the next may start a span after its start.
    let t0 = Instant::now();
    let warm = a.acquire_slot(Counted::FromStart).await.expect("slot");
    tokio::time::sleep(answer).await;
    warm.complete().await.expect("release");
    let cold = b.acquire_slot(Counted::FromCompletion).await.expect("slot");
    let waited = t0.elapsed();
    assert!(
        waited >= span - Duration::from_millis(20),
        "started after {waited:?}"
    );
    assert!(
        waited < span + answer / 2,
        "started after {waited:?}: counted from completion"
    );
    // A cold request in flight holds the second until it completes, then for a span.
    let other = tokio::spawn(async move {
        let slot = a.acquire_slot(Counted::FromStart).await.expect("slot");
        let at = Instant::now();
        slot.complete().await.expect("release");
        at
    });
    tokio::time::sleep(span + answer).await;
    assert!(
        !other.is_finished(),
        "started while a cold slot was in flight"
    );
    let completed = Instant::now();
    cold.complete().await.expect("release");
    let started = other.await.expect("task");
    let after = started.saturating_duration_since(completed);
    assert!(
        after >= span - Duration::from_millis(20),
        "started {after:?} after the completion"
    );
    assert!(
        after < span + Duration::from_millis(300),
        "started {after:?} after the completion"
    );
    let counted: Vec<bool> =
        sqlx::query_scalar("SELECT from_start FROM ops.budget_slots ORDER BY started_at")
            .fetch_all(&db.pool)
            .await
            .expect("slots");
    assert_eq!(counted, [true, false, true]);
}

/// One call of the decision function for `REALM` with `per_minute`, as `PgBudget` makes it.
async fn decide(pool: &PgPool, per_minute: i32) -> (Option<i64>, f64) {
    sqlx::query_as(
        "SELECT slot_id, wait_ms FROM ops.budget_acquire($1, $2, NULL, NULL, 60500000, 1100000, 150000000)",
    )
    .bind(REALM)
    .bind(per_minute)
    .fetch_one(pool)
    .await
    .expect("decision")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_minute_window_waits_for_the_oldest_completion_plus_60_5_s() {
    let db = test_db().await;
    let pool = &db.pool;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (id, _) = decide(pool, 3).await;
        ids.push(id.expect("granted"));
    }
    // Full while all three are in flight: poll (no exact wait).
    assert_eq!(decide(pool, 3).await, (None, 0.0));
    for id in &ids {
        sqlx::query("SELECT ops.budget_release($1)")
            .bind(id)
            .execute(pool)
            .await
            .expect("release");
    }
    let (id, wait_ms) = decide(pool, 3).await;
    assert_eq!(id, None);
    // The first completion leaves the window 60.5 s after it happened, a moment ago.
    assert!(
        (59_000.0..=60_500.0).contains(&wait_ms),
        "wait {wait_ms} ms"
    );
    // Pretend that minute has passed.
    sqlx::query(
        "UPDATE ops.budget_slots SET started_at = started_at - interval '61 s', \
         completed_at = completed_at - interval '61 s' WHERE id = $1",
    )
    .bind(ids[0])
    .execute(pool)
    .await
    .expect("age");
    assert!(decide(pool, 3).await.0.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_slots_are_pruned() {
    let db = test_db().await;
    sqlx::query(
        "INSERT INTO ops.budget_slots (realm_id, started_at, completed_at, expires_at) \
         SELECT $1, now() - interval '10 min', now() - interval '10 min', now() \
         FROM generate_series(1, 100)",
    )
    .bind(REALM)
    .execute(&db.pool)
    .await
    .expect("old slots");
    let budget = PgBudget::new(db.pool.clone(), REALM, &RateLimitSettings::default());
    budget
        .acquire_slot(Counted::FromCompletion)
        .await
        .expect("slot")
        .complete()
        .await
        .expect("release");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM ops.budget_slots")
        .fetch_one(&db.pool)
        .await
        .expect("count");
    assert_eq!(left, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_on_a_closed_pool_fails_instead_of_granting() {
    let db = test_db().await;
    let budget = PgBudget::new(db.pool.clone(), REALM, &RateLimitSettings::default());
    db.pool.close().await;
    let err = qbo::SharedBudget::acquire(&budget, Counted::FromStart)
        .await
        .err()
        .expect("no slot without the database");
    assert!(err.to_string().contains("shared request budget"), "{err}");
}

// ---- End to end: three processes of the binary, one company, qbo-sim enforcing the limits ----

/// Starts the three pipelines of the world's company at once over `[from, to)`; returns their
/// outputs and the wall time.
async fn three_pipelines_at_once(
    world: &World,
    from: &str,
    to: &str,
) -> (Vec<std::process::Output>, Duration) {
    let t0 = Instant::now();
    let mut children = Vec::new();
    for pipeline in [
        "qb_customers_backfill",
        "qb_items_backfill",
        "qb_invoices_backfill",
    ] {
        let mut cmd = world.command(&["run", pipeline, "--fecha-inicio", from, "--fecha-fin", to]);
        cmd.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        children.push(cmd.spawn().expect("the binary starts"));
    }
    let mut outputs = Vec::new();
    for child in children {
        let out = tokio::time::timeout(Duration::from_secs(180), child.wait_with_output())
            .await
            .expect("the run finished in time")
            .expect("the binary runs");
        outputs.push(out);
    }
    (outputs, t0.elapsed())
}

fn assert_all_succeeded(outputs: &[std::process::Output]) {
    for out in outputs {
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}\n{}",
            stdout(out),
            stderr(out)
        );
        assert!(stdout(out).contains("throttled_waits=0"), "{}", stdout(out));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_share_one_company_budget_without_a_single_429() {
    // Intuit's per-second and in-flight limits; the per-minute limit lowered to 50 on both sides
    // so that 57 requests need it (the 51st waits for the first to leave the rolling minute).
    let per_minute = 50;
    let mut config = sim_config(400);
    config.limits = SimLimits {
        requests_per_minute: Some(per_minute),
        requests_per_second: Some(10),
        max_in_flight: Some(10),
    };
    config.faults = FaultConfig {
        latency: Duration::from_millis(20),
        latency_jitter: Duration::from_millis(80),
        ..FaultConfig::default()
    };
    let mut world = World::new(config).await;
    world
        .extra_env
        .push(("QBO_REQUESTS_PER_MINUTE".into(), per_minute.to_string()));
    // 19 daily windows per pipeline, one page each (days asked for one by one): 57 requests.
    world
        .extra_env
        .push(("QBO_SPAN_MAX_PAGES".into(), "0".into()));
    let (outputs, wall) = three_pipelines_at_once(&world, "2026-01-01", "2026-01-20").await;
    assert_all_succeeded(&outputs);

    let stats = world.sim.state().stats();
    let spans = recorded_spans(world.pool()).await;
    let n = spans.len();
    assert_eq!(stats.throttled, 0, "{stats:?}");
    assert_eq!(stats.query_requests, n as u64, "{stats:?}");
    assert!(n > per_minute as usize, "{n} requests");
    assert!(stats.max_in_flight_seen <= 10, "{stats:?}");
    assert!(max_in_any_window(&second_spans(world.pool()).await, 1.0) <= 10);
    assert!(max_in_any_window(&spans, 60.0) <= per_minute as usize);

    // How much of the budget was used. Per second: the server's rule (10 in any second) would
    // let the first `per_minute` requests start in batches of 10, 1 s apart.
    let burst = &spans[..per_minute as usize];
    let burst_s = burst[burst.len() - 1].start - burst[0].start;
    let per_second_use = (burst.len().div_ceil(10) - 1) as f64 / burst_s;
    // Per minute: the next request started as soon as our rule allows, 60.5 s after the first
    // completion.
    let next = spans[per_minute as usize].start;
    let allowed_at = burst.iter().map(|s| s.end).fold(f64::INFINITY, f64::min) + 60.5;
    eprintln!(
        "{n} requests by 3 processes in {:.1} s, 0 throttled; per-second budget used {:.0}% \
         ({} requests in {burst_s:.2} s); request {} started {:.2} s after the rule allowed it; \
         max in flight at the simulator {}",
        wall.as_secs_f64(),
        per_second_use * 100.0,
        burst.len(),
        per_minute + 1,
        next - allowed_at,
        stats.max_in_flight_seen,
    );
    assert!(per_second_use > 0.6, "{per_second_use}");
    assert!(next >= allowed_at - 0.001, "{next} vs {allowed_at}");
    assert!(next - allowed_at < 2.0, "{next} vs {allowed_at}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_share_the_in_flight_limit_without_a_single_429() {
    // Only the in-flight limit, with slow answers: 3 processes × 10 windows at once would put 30
    // requests in flight; the simulator throttles the 11th.
    let mut config = sim_config(400);
    config.limits = SimLimits {
        requests_per_minute: None,
        requests_per_second: None,
        max_in_flight: Some(10),
    };
    config.faults = FaultConfig {
        latency: Duration::from_millis(100),
        latency_jitter: Duration::from_millis(100),
        ..FaultConfig::default()
    };
    let mut world = World::new(config).await;
    for (k, v) in [
        ("QBO_REQUESTS_PER_MINUTE", "0"),
        ("QBO_REQUESTS_PER_SECOND", "0"),
        ("QBO_MAX_IN_FLIGHT", "10"),
        ("QBO_SPAN_MAX_PAGES", "0"),
    ] {
        world.extra_env.push((k.into(), v.into()));
    }
    // 59 daily windows per pipeline (February's are empty pages): 177 requests.
    let (outputs, wall) = three_pipelines_at_once(&world, "2026-01-01", "2026-03-01").await;
    assert_all_succeeded(&outputs);
    let stats = world.sim.state().stats();
    let spans = recorded_spans(world.pool()).await;
    assert_eq!(stats.throttled, 0, "{stats:?}");
    assert_eq!(stats.query_requests, spans.len() as u64, "{stats:?}");
    assert!(stats.max_in_flight_seen <= 10, "{stats:?}");
    // Utilisation: the average number in flight while any was, against the 10 allowed.
    let busy = spans.iter().map(|s| s.end).fold(0.0, f64::max) - spans[0].start;
    let held: f64 = spans.iter().map(|s| s.end - s.start).sum();
    let use_ = held / busy / 10.0;
    eprintln!(
        "{} requests by 3 processes in {:.1} s, 0 throttled, max in flight at the simulator {}, \
         in-flight budget used {:.0}% over {busy:.2} s",
        spans.len(),
        wall.as_secs_f64(),
        stats.max_in_flight_seen,
        use_ * 100.0
    );
    assert_eq!(stats.max_in_flight_seen, 10, "the limit was reached");
    assert!(use_ > 0.6, "{use_}");
}

#[test]
fn window_counting_helpers_count_what_a_server_could_see() {
    let spans = [
        Span {
            start: 0.0,
            end: 0.1,
        },
        Span {
            start: 0.5,
            end: 2.0,
        },
        Span {
            start: 1.05,
            end: 1.1,
        },
        Span {
            start: 3.0,
            end: 3.1,
        },
    ];
    // [0.1, 1.1) meets the first three; no window meets the first and the last.
    assert_eq!(max_in_any_window(&spans, 1.0), 3);
    assert_eq!(max_in_any_window(&spans, 0.5), 2);
    assert_eq!(max_in_flight(&spans), 2);
}
