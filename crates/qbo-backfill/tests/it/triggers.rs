//! Triggers against a real PostgreSQL: the store round trip, one-time triggers that fire exactly
//! once (on time, after a restart, after edits, with schedulers racing), missed triggers, cron
//! triggers with relative params, and the scheduler loop driven by a test clock.

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use qbo_backfill::orchestrator::scheduler::{Clock as _, TestClock, fire_step, run_scheduler};
use qbo_backfill::orchestrator::triggers::{
    DEFAULT_GRACE, NewTrigger, TriggerKind, TriggerPatch, TriggerState,
};
use qbo_backfill::service::triggers::fire_due;
use qbo_backfill::store::runs::triggers::{self, TriggerStoreError};
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::{test_db, ts};

const REALM: &str = "9130357766900000";

fn params(inicio: &str, fin: &str) -> serde_json::Value {
    serde_json::json!({"fecha_inicio": inicio, "fecha_fin": fin})
}

fn once(local_time: &str) -> NewTrigger {
    NewTrigger {
        pipeline: Some("qb_customers_backfill".to_owned()),
        kind: Some("once".to_owned()),
        local_time: Some(local_time.to_owned()),
        time_zone: Some("America/Guayaquil".to_owned()),
        params: Some(params("2026-01-01", "2026-01-31")),
        ..NewTrigger::default()
    }
}

fn cron(expr: &str, inicio: &str, fin: &str) -> NewTrigger {
    NewTrigger {
        pipeline: Some("qb_invoices_backfill".to_owned()),
        kind: Some("cron".to_owned()),
        cron: Some(expr.to_owned()),
        time_zone: Some("America/Guayaquil".to_owned()),
        params: Some(params(inicio, fin)),
        ..NewTrigger::default()
    }
}

/// A run as the tests look at it.
#[derive(Debug, PartialEq, Eq, sqlx::FromRow)]
struct RunRow {
    id: Uuid,
    pipeline: String,
    realm_id: String,
    fecha_inicio: String,
    fecha_fin: String,
    status: String,
    trigger: String,
    trigger_id: Option<Uuid>,
    windows: i64,
}

async fn runs(pool: &PgPool) -> Vec<RunRow> {
    sqlx::query_as(
        "SELECT r.id, r.pipeline, r.realm_id, r.fecha_inicio::text AS fecha_inicio, \
           r.fecha_fin::text AS fecha_fin, r.status, r.trigger, r.trigger_id, \
           (SELECT COUNT(*) FROM ops.run_windows w WHERE w.run_id = r.id) AS windows \
         FROM ops.runs r ORDER BY r.created_at, r.id",
    )
    .fetch_all(pool)
    .await
    .expect("runs")
}

async fn run_count(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM ops.runs")
        .fetch_one(pool)
        .await
        .expect("count")
}

fn minutes(n: i64) -> SignedDuration {
    SignedDuration::from_mins(n)
}

#[tokio::test]
async fn store_round_trip() {
    let db = test_db().await;
    let now = ts("2026-01-15T12:00:00Z");
    let one = triggers::create(&db.pool, &once("2026-02-02T10:00"), now)
        .await
        .expect("create once");
    assert_eq!(one.kind, TriggerKind::Once);
    assert_eq!(one.state, TriggerState::Scheduled);
    assert_eq!(one.next_fire_utc, Some(ts("2026-02-02T15:00:00Z")));
    let mut daily = cron("0 10 * * *", "yesterday", "today");
    daily.realm_id = Some(REALM.to_owned());
    let two = triggers::create(&db.pool, &daily, now)
        .await
        .expect("create cron");
    assert_eq!(two.next_fire_utc, Some(ts("2026-01-15T15:00:00Z")));

    let view = serde_json::to_value(one.view()).expect("json");
    assert_eq!(view["id"], one.id.to_string());
    assert_eq!(view["pipeline"], "qb_customers_backfill");
    assert_eq!(view["kind"], "once");
    assert_eq!(view["enabled"], true);
    assert_eq!(view["local_time"], "2026-02-02T10:00");
    assert!(view.get("cron").is_none(), "{view}");
    assert_eq!(view["time_zone"], "America/Guayaquil");
    assert_eq!(view["params"], params("2026-01-01", "2026-01-31"));
    assert_eq!(view["next_fire_utc"], "2026-02-02T15:00:00Z");
    assert_eq!(view["next_fire_local"], "2026-02-02T10:00:00-05:00");
    assert_eq!(view["last_fired_utc"], serde_json::Value::Null);
    assert_eq!(view["last_run_id"], serde_json::Value::Null);
    assert_eq!(view["state"], "scheduled");
    assert_eq!(view["realm_id"], serde_json::Value::Null);
    assert_eq!(view["missed_count"], 0);
    let view = serde_json::to_value(two.view()).expect("json");
    assert_eq!(view["cron"], "0 10 * * *");
    assert!(view.get("local_time").is_none(), "{view}");
    assert_eq!(view["params"], params("yesterday", "today"));
    assert_eq!(view["realm_id"], REALM);

    let listed = triggers::list(&db.pool).await.expect("list");
    assert_eq!(
        listed.iter().map(|t| t.id).collect::<Vec<_>>(),
        [one.id, two.id]
    );
    assert_eq!(triggers::get(&db.pool, two.id).await.expect("get"), two);
    update_and_delete(&db.pool, one.id, two.id, now).await;
}

/// The second half of [`store_round_trip`]: edits and deletion.
async fn update_and_delete(pool: &PgPool, once_id: Uuid, cron_id: Uuid, now: Timestamp) {
    let off = TriggerPatch {
        enabled: Some(false),
        ..TriggerPatch::default()
    };
    let two = triggers::update(pool, cron_id, &off, now)
        .await
        .expect("disable");
    assert_eq!((two.enabled, two.state), (false, TriggerState::Disabled));
    assert_eq!(two.next_fire_utc, None);
    let edit = TriggerPatch {
        enabled: Some(true),
        cron: Some("30 6 * * 1-5".to_owned()),
        time_zone: Some("Europe/Madrid".to_owned()),
        params: Some(params("today-7d", "today")),
        pipeline: Some("qb_items_backfill".to_owned()),
        realm_id: Some(None),
        ..TriggerPatch::default()
    };
    let two = triggers::update(pool, cron_id, &edit, now)
        .await
        .expect("edit");
    assert_eq!(two.state, TriggerState::Scheduled);
    assert_eq!(two.pipeline, "qb_items_backfill");
    assert_eq!(two.realm_id, None);
    assert_eq!(two.cron.as_deref(), Some("30 6 * * 1-5"));
    // Friday 2026-01-16 06:30 in Madrid (CET) is 05:30Z.
    assert_eq!(two.next_fire_utc, Some(ts("2026-01-16T05:30:00Z")));

    let bad = TriggerPatch {
        time_zone: Some("Mars/Base".to_owned()),
        ..TriggerPatch::default()
    };
    let err = triggers::update(pool, cron_id, &bad, now)
        .await
        .expect_err("bad zone");
    assert_eq!(err.code(), "invalid_time_zone");
    assert_eq!(triggers::get(pool, cron_id).await.expect("get"), two);

    triggers::delete(pool, once_id).await.expect("delete");
    let gone = triggers::get(pool, once_id).await.expect_err("gone");
    assert!(matches!(gone, TriggerStoreError::NotFound(_)), "{gone}");
    assert_eq!(gone.code(), "trigger_not_found");
    let again = triggers::delete(pool, once_id).await.expect_err("gone");
    assert_eq!(again.code(), "trigger_not_found");
    assert_eq!(triggers::list(pool).await.expect("list").len(), 1);
}

#[tokio::test]
async fn invalid_triggers_are_not_stored() {
    let db = test_db().await;
    let now = ts("2026-01-15T12:00:00Z");
    let mut bad_zone = once("2026-02-02T10:00");
    bad_zone.time_zone = Some("America/Atlantis".to_owned());
    let mut bad_pipeline = once("2026-02-02T10:00");
    bad_pipeline.pipeline = Some("qb_widgets_backfill".to_owned());
    let cases = [
        (bad_zone, "invalid_time_zone"),
        (once("2026-02-02T25:00"), "invalid_local_time"),
        (once("2026-01-02T10:00"), "invalid_local_time"),
        (cron("0 10 * *", "yesterday", "today"), "invalid_cron"),
        (cron("0 10 * * *", "today", "yesterday"), "invalid_params"),
        (
            cron("0 10 * * *", "2026-01-01", "2226-01-01"),
            "invalid_params",
        ),
        (bad_pipeline, "unknown_pipeline"),
    ];
    for (new, code) in cases {
        let err = triggers::create(&db.pool, &new, now)
            .await
            .expect_err("invalid");
        assert_eq!(err.code(), code, "{err}");
        assert!(!err.to_string().contains('\n'), "{err}");
    }
    assert!(triggers::list(&db.pool).await.expect("list").is_empty());
}

#[tokio::test]
async fn a_one_time_trigger_fires_once_at_its_time() {
    let db = test_db().await;
    let clock = TestClock::new(ts("2026-02-01T00:00:00Z"));
    let t = triggers::create(&db.pool, &once("2026-02-02T10:00"), clock.now())
        .await
        .expect("create");

    clock.set(ts("2026-02-02T14:59:59Z"));
    let fired = fire_step(&db.pool, &clock, DEFAULT_GRACE, REALM)
        .await
        .expect("step");
    assert!(fired.is_empty(), "{fired:?}");
    assert_eq!(run_count(&db.pool).await, 0);

    clock.set(ts("2026-02-02T15:00:00Z"));
    let fired = fire_step(&db.pool, &clock, DEFAULT_GRACE, REALM)
        .await
        .expect("step");
    assert_eq!(fired.len(), 1, "{fired:?}");
    let run_id = fired[0].run_id.expect("a run");
    assert_eq!(fired[0].occurrence_utc, ts("2026-02-02T15:00:00Z"));
    assert_eq!(fired[0].occurrence_local, "2026-02-02T10:00:00-05:00");
    assert_eq!(
        runs(&db.pool).await,
        [RunRow {
            id: run_id,
            pipeline: "qb_customers_backfill".to_owned(),
            realm_id: REALM.to_owned(),
            fecha_inicio: "2026-01-01".to_owned(),
            fecha_fin: "2026-01-31".to_owned(),
            status: "queued".to_owned(),
            trigger: "trigger".to_owned(),
            trigger_id: Some(t.id),
            windows: 30,
        }]
    );
    let t = triggers::get(&db.pool, t.id).await.expect("get");
    assert_eq!((t.enabled, t.state), (false, TriggerState::Fired));
    assert_eq!(t.last_run_id, Some(run_id));
    assert_eq!(t.last_fired_utc, Some(ts("2026-02-02T15:00:00Z")));
    assert_eq!(t.next_fire_utc, None);

    // Again, and later: nothing more.
    for at in [
        "2026-02-02T15:00:00Z",
        "2026-02-02T15:00:01Z",
        "2026-03-01T00:00:00Z",
    ] {
        clock.set(ts(at));
        let fired = fire_step(&db.pool, &clock, DEFAULT_GRACE, REALM)
            .await
            .expect("step");
        assert!(fired.is_empty(), "{fired:?}");
    }
    // A restart: another pool and another clock on the same database.
    let restarted = qbo_backfill::store::connect(&db.url).await.expect("pool");
    let clock = TestClock::new(ts("2026-02-02T15:05:00Z"));
    let fired = fire_step(&restarted, &clock, DEFAULT_GRACE, REALM)
        .await
        .expect("step");
    assert!(fired.is_empty(), "{fired:?}");
    assert_eq!(run_count(&db.pool).await, 1);
    let occurrences = triggers::occurrences(&db.pool, t.id, 10)
        .await
        .expect("occurrences");
    assert_eq!(occurrences.len(), 1);
    assert_eq!(occurrences[0].outcome, "fired");
    assert_eq!(occurrences[0].run_id, Some(run_id));
    restarted.close().await;
}

#[tokio::test]
async fn a_late_one_time_trigger_fires_within_the_grace_and_is_missed_beyond() {
    let db = test_db().await;
    let now = ts("2026-02-01T00:00:00Z");
    let late = triggers::create(&db.pool, &once("2026-02-02T10:00"), now)
        .await
        .expect("create");
    let mut within = once("2026-02-02T10:10");
    within.realm_id = Some("4620816365000000".to_owned());
    let within = triggers::create(&db.pool, &within, now)
        .await
        .expect("create");

    // The scheduler was down from before 15:00Z until 15:20Z.
    let clock = TestClock::new(ts("2026-02-02T15:20:00Z"));
    let fired = fire_step(&db.pool, &clock, DEFAULT_GRACE, REALM)
        .await
        .expect("step");
    assert_eq!(fired.len(), 2, "{fired:?}");
    let missed = fired
        .iter()
        .find(|f| f.trigger_id == late.id)
        .expect("late");
    assert_eq!(missed.run_id, None);
    assert!(
        missed.reason.as_deref().is_some_and(|r| r.contains("late")),
        "{missed:?}"
    );
    let ran = fired
        .iter()
        .find(|f| f.trigger_id == within.id)
        .expect("within");
    assert!(ran.run_id.is_some(), "{ran:?}");

    let late = triggers::get(&db.pool, late.id).await.expect("get");
    assert_eq!((late.enabled, late.state), (false, TriggerState::Missed));
    assert_eq!(late.missed_count, 1);
    assert_eq!(late.last_run_id, None);
    assert_eq!(
        serde_json::to_value(late.view()).expect("json")["state"],
        "missed"
    );
    let occ = triggers::occurrences(&db.pool, late.id, 10)
        .await
        .expect("occurrences");
    assert_eq!(occ.len(), 1);
    assert_eq!(occ[0].outcome, "missed");
    assert_eq!(occ[0].scheduled_utc, "2026-02-02T15:00:00Z");

    let all = runs(&db.pool).await;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].trigger_id, Some(within.id));
    assert_eq!(all[0].realm_id, "4620816365000000");
    // Enabling the missed trigger again needs a new local time.
    let on = TriggerPatch {
        enabled: Some(true),
        ..TriggerPatch::default()
    };
    let err = triggers::update(&db.pool, late.id, &on, clock.now())
        .await
        .expect_err("finished");
    assert_eq!(err.code(), "trigger_finished");
}

#[tokio::test]
async fn a_cron_trigger_enqueues_relative_dates_and_skips_late_occurrences() {
    let db = test_db().await;
    let clock = TestClock::new(ts("2026-01-10T00:00:00Z"));
    let t = triggers::create(
        &db.pool,
        &cron("0 10 * * *", "yesterday", "today"),
        clock.now(),
    )
    .await
    .expect("create");
    assert_eq!(t.next_fire_utc, Some(ts("2026-01-10T15:00:00Z")));

    clock.set(ts("2026-01-10T15:00:00.250Z"));
    let fired = fire_step(&db.pool, &clock, DEFAULT_GRACE, REALM)
        .await
        .expect("step");
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].next_fire_utc, Some(ts("2026-01-11T15:00:00Z")));
    // Down from the 11th to the 13th at 10:05 local: the 11th and 12th are missed, the 13th runs.
    clock.set(ts("2026-01-13T15:05:00Z"));
    let fired = fire_step(&db.pool, &clock, DEFAULT_GRACE, REALM)
        .await
        .expect("step");
    assert_eq!(fired.len(), 1, "one run, no burst: {fired:?}");
    assert_eq!(fired[0].missed, 2);
    assert_eq!(fired[0].occurrence_utc, ts("2026-01-13T15:00:00Z"));
    // Down for three days past the grace: nothing runs, the next occurrence is scheduled.
    clock.set(ts("2026-01-16T16:00:00Z"));
    let fired = fire_step(&db.pool, &clock, DEFAULT_GRACE, REALM)
        .await
        .expect("step");
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].run_id, None);
    assert_eq!(fired[0].missed, 3);

    let got: Vec<(String, String, String)> = runs(&db.pool)
        .await
        .into_iter()
        .map(|r| (r.pipeline, r.fecha_inicio, r.fecha_fin))
        .collect();
    let run = |a: &str, b: &str| {
        (
            "qb_invoices_backfill".to_owned(),
            a.to_owned(),
            b.to_owned(),
        )
    };
    assert_eq!(
        got,
        [
            run("2026-01-09", "2026-01-10"),
            run("2026-01-12", "2026-01-13")
        ]
    );
    let t = triggers::get(&db.pool, t.id).await.expect("get");
    assert_eq!((t.enabled, t.state), (true, TriggerState::Scheduled));
    assert_eq!(t.missed_count, 5);
    assert_eq!(t.next_fire_utc, Some(ts("2026-01-17T15:00:00Z")));
    assert_eq!(t.last_fired_utc, Some(ts("2026-01-13T15:05:00Z")));
    assert_eq!(t.last_missed_utc, Some(ts("2026-01-16T16:00:00Z")));
    let occ = triggers::occurrences(&db.pool, t.id, 10)
        .await
        .expect("occurrences");
    let outcomes: Vec<&str> = occ.iter().map(|o| o.outcome.as_str()).collect();
    assert_eq!(outcomes, ["missed", "fired", "fired"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_racing_schedulers_fire_fifty_triggers_exactly_once() {
    let db = test_db().await;
    let other = qbo_backfill::store::connect(&db.url).await.expect("pool");
    for round in 0..4i64 {
        let created_at = ts("2026-03-01T00:00:00Z");
        let local_time = format!("2026-03-02T1{round}:00");
        let mut ids = Vec::new();
        for _ in 0..50 {
            let t = triggers::create(&db.pool, &once(&local_time), created_at)
                .await
                .expect("create");
            ids.push(t.id);
        }
        let due = ts(&format!("2026-03-02T{}:00:00Z", 15 + round));
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let tasks = [db.pool.clone(), other.clone()].map(|pool| {
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                let mut fired = 0;
                for _ in 0..3 {
                    let got = fire_due(&pool, due, DEFAULT_GRACE, REALM)
                        .await
                        .expect("fire");
                    fired += got.iter().filter(|f| f.run_id.is_some()).count();
                }
                fired
            })
        });
        let mut total = 0;
        for task in tasks {
            total += task.await.expect("task");
        }
        assert_eq!(total, 50, "round {round}");
        let per_trigger: Vec<i64> = sqlx::query_scalar(
            "SELECT COUNT(r.id) FROM unnest($1::uuid[]) AS t(id) \
             LEFT JOIN ops.runs r ON r.trigger_id = t.id GROUP BY t.id",
        )
        .bind(&ids)
        .fetch_all(&db.pool)
        .await
        .expect("per trigger");
        assert_eq!(per_trigger, vec![1; 50], "round {round}");
        assert_eq!(run_count(&db.pool).await, 50 * (round + 1));
    }
    other.close().await;
}

#[tokio::test]
async fn editing_a_fired_trigger_does_not_fire_it_again() {
    let db = test_db().await;
    let clock = TestClock::new(ts("2026-02-01T00:00:00Z"));
    let t = triggers::create(&db.pool, &once("2026-02-02T10:00"), clock.now())
        .await
        .expect("create");
    clock.set(ts("2026-02-02T15:00:30Z"));
    let fired = fire_step(&db.pool, &clock, DEFAULT_GRACE, REALM)
        .await
        .expect("step");
    assert_eq!(fired.len(), 1);

    clock.advance(minutes(1));
    let edits = [
        TriggerPatch {
            params: Some(params("2026-01-05", "2026-01-06")),
            ..TriggerPatch::default()
        },
        TriggerPatch {
            time_zone: Some("America/Los_Angeles".to_owned()),
            pipeline: Some("qb_items_backfill".to_owned()),
            ..TriggerPatch::default()
        },
        TriggerPatch {
            enabled: Some(false),
            ..TriggerPatch::default()
        },
    ];
    for patch in &edits {
        let after = triggers::update(&db.pool, t.id, patch, clock.now())
            .await
            .expect("edit");
        assert_eq!((after.enabled, after.state), (false, TriggerState::Fired));
        assert_eq!(after.next_fire_utc, None);
        let fired = fire_step(&db.pool, &clock, DEFAULT_GRACE, REALM)
            .await
            .expect("step");
        assert!(fired.is_empty(), "{fired:?}");
    }
    let on = TriggerPatch {
        enabled: Some(true),
        ..TriggerPatch::default()
    };
    let err = triggers::update(&db.pool, t.id, &on, clock.now())
        .await
        .expect_err("finished");
    assert_eq!(err.code(), "trigger_finished");
    let past = TriggerPatch {
        local_time: Some("2026-02-02T07:00".to_owned()),
        ..TriggerPatch::default()
    };
    let err = triggers::update(&db.pool, t.id, &past, clock.now())
        .await
        .expect_err("past");
    assert_eq!(err.code(), "invalid_local_time");
    clock.advance(minutes(60));
    let fired = fire_step(&db.pool, &clock, DEFAULT_GRACE, REALM)
        .await
        .expect("step");
    assert!(fired.is_empty(), "{fired:?}");
    assert_eq!(run_count(&db.pool).await, 1);

    // Setting a new future local time re-arms it on purpose: it fires once more, then stops.
    let rearm = TriggerPatch {
        local_time: Some("2026-02-03T08:00".to_owned()),
        ..TriggerPatch::default()
    };
    let after = triggers::update(&db.pool, t.id, &rearm, clock.now())
        .await
        .expect("re-arm");
    assert_eq!(after.state, TriggerState::Scheduled);
    // 08:00 in Los Angeles (the zone set above) is 16:00Z.
    assert_eq!(after.next_fire_utc, Some(ts("2026-02-03T16:00:00Z")));
    clock.set(ts("2026-02-03T16:00:00Z"));
    for _ in 0..3 {
        fire_step(&db.pool, &clock, DEFAULT_GRACE, REALM)
            .await
            .expect("step");
    }
    let all = runs(&db.pool).await;
    assert_eq!(all.len(), 2);
    assert_eq!(all[1].pipeline, "qb_items_backfill");
    assert_eq!(
        (all[1].fecha_inicio.as_str(), all[1].fecha_fin.as_str()),
        ("2026-01-05", "2026-01-06")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduler_loop_fires_with_an_injected_clock() {
    let db = test_db().await;
    let clock = Arc::new(TestClock::new(ts("2026-02-01T00:00:00Z")));
    let t = triggers::create(&db.pool, &once("2026-02-02T10:00"), clock.now())
        .await
        .expect("create");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let scheduler = tokio::spawn({
        let (pool, clock) = (db.pool.clone(), clock.clone());
        async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            run_scheduler(
                pool,
                clock,
                Duration::from_millis(20),
                DEFAULT_GRACE,
                REALM,
                shutdown,
            )
            .await;
        }
    });
    // Until the clock moves nothing fires, however many ticks pass.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(run_count(&db.pool).await, 0);
    clock.set(ts("2026-02-02T15:00:05Z"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while run_count(&db.pool).await == 0 {
        assert!(tokio::time::Instant::now() < deadline, "never fired");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), scheduler)
        .await
        .expect("stops on shutdown")
        .expect("task");
    let t = triggers::get(&db.pool, t.id).await.expect("get");
    assert_eq!(t.state, TriggerState::Fired);
    assert_eq!(run_count(&db.pool).await, 1);
}

#[tokio::test]
async fn a_daily_batch_trigger_enqueues_every_entity_as_one_batch_once() {
    let db = test_db().await;
    let clock = TestClock::new(ts("2026-02-01T00:00:00Z"));
    let daily = NewTrigger {
        pipeline: Some("all_incremental".to_owned()),
        kind: Some("cron".to_owned()),
        cron: Some("0 10 * * *".to_owned()),
        time_zone: Some("America/Guayaquil".to_owned()),
        params: Some(params("yesterday", "today")),
        ..NewTrigger::default()
    };
    let t = triggers::create(&db.pool, &daily, clock.now())
        .await
        .expect("create");
    assert_eq!(t.pipeline, "all_incremental");
    clock.set(ts("2026-02-01T15:00:00Z"));
    let fired = fire_step(&db.pool, &clock, DEFAULT_GRACE, REALM)
        .await
        .expect("step");
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert!(fired[0].run_id.is_some(), "{fired:?}");
    let all = runs(&db.pool).await;
    assert_eq!(all.len(), 26, "{all:?}");
    assert!(all.iter().all(|r| r.pipeline.ends_with("_incremental")
        && r.trigger_id == Some(t.id)
        && (r.fecha_inicio.as_str(), r.fecha_fin.as_str()) == ("2026-01-31", "2026-02-01")));
    let (batches, members): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM ops.batches WHERE name = 'all_incremental' AND trigger_id = $1), \
                (SELECT count(*) FROM ops.runs WHERE batch_id IS NOT NULL)",
    )
    .bind(t.id)
    .fetch_one(&db.pool)
    .await
    .expect("batches");
    assert_eq!((batches, members), (1, 26));
    // The same occurrence again: nothing more.
    let fired = fire_step(&db.pool, &clock, DEFAULT_GRACE, REALM)
        .await
        .expect("step");
    assert!(fired.is_empty(), "{fired:?}");
    assert_eq!(run_count(&db.pool).await, 26);
}
