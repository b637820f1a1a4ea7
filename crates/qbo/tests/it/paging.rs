//! Window paging: against the simulator (more than 1000 rows, exact multiples ending on an empty
//! page, empty windows, inactive list rows, edited rows staying in their window) and against the
//! stub (re-paging a window whose COUNT(*) disagrees, giving up after two re-pages, pages longer
//! than requested).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use qbo::{Entity, Page, QboError, TimeWindow, WindowPager};
use qbo_sim::SimConfig;

use crate::common::{sim_client, sim_client_with, sim_settings, start_sim, ts};
use crate::stub::{Stub, StubResponse};

fn two_days() -> SimConfig {
    SimConfig {
        customers: 300,
        items: 20,
        invoices: 2500,
        from: jiff::civil::date(2026, 1, 1),
        to: jiff::civil::date(2026, 1, 3),
        ..SimConfig::default()
    }
}

fn whole_range() -> TimeWindow {
    TimeWindow::new(ts("2026-01-01T00:00:00Z"), ts("2026-01-03T00:00:00Z"))
}

async fn drain(pager: &mut WindowPager) -> Result<Vec<Page>, QboError> {
    let mut pages = Vec::new();
    while let Some(page) = pager.next_page().await? {
        pages.push(page);
    }
    Ok(pages)
}

#[tokio::test]
async fn a_window_of_more_than_1000_rows_is_paged_completely_and_verified() {
    let sim = start_sim(two_days()).await;
    let (client, _store) = sim_client(&sim);
    let window = whole_range();
    let expected = sim
        .state()
        .ids_created_between("Invoice", window.start, window.end);
    assert_eq!(expected.len(), 2500);
    sim.state().reset_stats();

    let mut pager = client.window_pager(Entity::Invoice, window);
    let pages = drain(&mut pager).await.expect("paging");
    let sizes: Vec<_> = pages.iter().map(|p| p.rows.len()).collect();
    assert_eq!(
        sizes,
        [1000, 999, 501],
        "pages overlap by one row, never returned twice"
    );
    let numbers: Vec<_> = pages
        .iter()
        .map(|p| (p.number, p.start_position, p.page_size))
        .collect();
    assert_eq!(numbers, [(1, 1, 1000), (2, 1000, 1000), (3, 1999, 1000)]);
    let got: Vec<String> = pages
        .iter()
        .flat_map(|p| p.rows.iter().map(|r| r.id.clone()))
        .collect();
    assert_eq!(got, expected, "every row once, in Id order");
    assert_eq!(pager.pages(), 3);
    assert_eq!(pager.rows(), 2500);
    // What a cost estimate says of such a window, before paging it.
    assert_eq!(WindowPager::pages_for(2500, 1000), 3);
    assert_eq!(WindowPager::verifying_counts(3, false), 1);
    assert_eq!(WindowPager::verifying_counts(3, true), 0);

    // What was sent is what the server received (URL encoding round-trips), in order, and the
    // multi-page window was verified with COUNT(*) over the same filter.
    let received = sim.state().queries();
    let sent: Vec<&str> = pages.iter().map(|p| p.query.as_str()).collect();
    assert_eq!(received.len(), 4, "{received:#?}");
    assert_eq!(&received[..3], sent.as_slice());
    assert_eq!(
        received[3],
        "SELECT COUNT(*) FROM Invoice WHERE MetaData.CreateTime >= '2026-01-01T00:00:00+00:00' AND \
         MetaData.CreateTime < '2026-01-03T00:00:00+00:00'"
    );
    assert_eq!(
        pages[1].query,
        "SELECT * FROM Invoice WHERE MetaData.CreateTime >= '2026-01-01T00:00:00+00:00' AND \
         MetaData.CreateTime < '2026-01-03T00:00:00+00:00' ORDERBY Id STARTPOSITION 1000 MAXRESULTS 1000"
    );
    assert!(
        received.iter().all(|q| !q.contains("Active")),
        "no Active clause for transactions"
    );
    for p in &pages {
        assert_eq!(p.entity, Entity::Invoice);
        assert_eq!(p.minor_version, 75);
        assert!(p.intuit_tid.is_some());
    }

    // Rows are the JSON the server rendered, with Id and SyncToken extracted.
    let row = &pages[1].rows[17];
    let raw: serde_json::Value = serde_json::from_str(row.raw.get()).expect("raw json");
    assert_eq!(Some(raw), sim.state().entity_json("Invoice", &row.id));
    assert_eq!(raw_field(row.raw.get(), "SyncToken"), row.sync_token);
}

fn raw_field(raw: &str, field: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(raw).expect("json");
    v[field].as_str().expect("string field").to_owned()
}

#[tokio::test]
async fn a_window_whose_last_page_holds_only_the_overlapping_row_ends_there() {
    // 2500 rows, pages of 500 overlapping by one: starts 1, 500, 999, 1498, 1997 (rows up to
    // 2496), then 2496 answers 5 rows, the last short page.
    let sim = start_sim(two_days()).await;
    let mut settings = sim_settings(&sim);
    settings.page_size = 500;
    let (client, _store) = sim_client_with(&sim, settings);
    sim.state().reset_stats();
    let mut pager = client.window_pager(Entity::Invoice, whole_range());
    let pages = drain(&mut pager).await.expect("paging");
    assert_eq!(pages.len(), 6);
    assert_eq!(pager.pages(), 6);
    assert_eq!(WindowPager::pages_for(2500, 500), 6);
    assert_eq!(
        pager.rows(),
        2500,
        "the overlapping rows are not returned twice"
    );
    let distinct: BTreeSet<_> = pages
        .iter()
        .flat_map(|p| p.rows.iter().map(|r| r.id.clone()))
        .collect();
    assert_eq!(distinct.len(), 2500);
    let queries = sim.state().queries();
    assert_eq!(queries.len(), 7);
    assert!(queries[5].contains("STARTPOSITION 2496 MAXRESULTS 500"));
    assert!(queries[6].starts_with("SELECT COUNT(*)"));
}

#[tokio::test]
async fn empty_windows_cost_one_query_and_no_count() {
    let sim = start_sim(two_days()).await;
    let (client, _store) = sim_client(&sim);
    sim.state().reset_stats();
    let before = TimeWindow::new(ts("2025-06-01T00:00:00Z"), ts("2025-06-02T00:00:00Z"));
    for entity in [Entity::Invoice, Entity::Customer] {
        let mut pager = client.window_pager(entity, before);
        assert!(pager.next_page().await.expect("paging").is_none());
        assert!(pager.next_page().await.expect("still done").is_none());
        assert_eq!((pager.pages(), pager.rows()), (1, 0));
    }
    assert_eq!(WindowPager::pages_for(0, 1000), 1);
    assert_eq!(WindowPager::verifying_counts(1, false), 0);
    assert_eq!(sim.state().stats().query_requests, 2);
    // A window with no instant in it is not even queried.
    let inverted = TimeWindow::new(before.end, before.start);
    let mut pager = client.window_pager(Entity::Item, inverted);
    assert!(pager.next_page().await.expect("paging").is_none());
    assert_eq!(pager.pages(), 0);
    assert_eq!(sim.state().stats().query_requests, 2);
}

#[tokio::test]
async fn list_entity_windows_include_inactive_rows() {
    let sim = start_sim(two_days()).await;
    let (client, _store) = sim_client(&sim);
    let window = whole_range();
    let ids = sim
        .state()
        .ids_created_between("Customer", window.start, window.end);
    let is_active =
        |id: &str| sim.state().entity_json("Customer", id).expect("customer")["Active"] == true;
    let inactive = ids
        .iter()
        .find(|id| is_active(id))
        .expect("an active customer")
        .clone();
    sim.state()
        .deactivate("Customer", &inactive)
        .expect("deactivate");
    let hidden = ids.iter().filter(|id| !is_active(id)).count();
    assert!(hidden >= 1);
    sim.state().reset_stats();

    let mut pager = client.window_pager(Entity::Customer, window);
    let pages = drain(&mut pager).await.expect("paging");
    let rows: Vec<_> = pages.iter().flat_map(|p| p.rows.iter()).collect();
    let got: Vec<_> = rows.iter().map(|r| r.id.clone()).collect();
    assert_eq!(got, ids, "inactive rows are part of the window");
    let row = rows
        .iter()
        .find(|r| r.id == inactive)
        .expect("inactive row returned");
    assert!(
        row.raw.get().contains("\"Active\":false"),
        "{}",
        row.raw.get()
    );
    assert!(
        sim.state()
            .queries()
            .iter()
            .all(|q| q.contains("AND Active IN (true, false)"))
    );

    // Without the clause QBO (and the simulator) hide it: the reason the clause exists.
    let plain = format!(
        "SELECT * FROM Customer WHERE MetaData.CreateTime >= '{}' AND MetaData.CreateTime < '{}' MAXRESULTS 1000",
        qbo::format_datetime(window.start),
        qbo::format_datetime(window.end)
    );
    let page = client.query(&plain).await.expect("plain query");
    assert_eq!(page.rows.len(), ids.len() - hidden);
    assert!(page.rows.iter().all(|r| r.id != inactive));
}

#[tokio::test]
async fn an_edited_row_stays_in_its_creation_window() {
    let sim = start_sim(two_days()).await;
    let (client, _store) = sim_client(&sim);
    let window = TimeWindow::new(ts("2026-01-02T00:00:00Z"), ts("2026-01-03T00:00:00Z"));
    let ids = sim
        .state()
        .ids_created_between("Invoice", window.start, window.end);
    let edited = ids[0].clone();
    let before: serde_json::Value = sim.state().entity_json("Invoice", &edited).expect("row");
    sim.state().mutate("Invoice", &edited).expect("mutate");
    let pages = drain(&mut client.window_pager(Entity::Invoice, window))
        .await
        .expect("paging");
    let row = pages
        .iter()
        .flat_map(|p| p.rows.iter())
        .find(|r| r.id == edited)
        .expect("edited row still in window");
    assert_ne!(
        Some(row.sync_token.as_str()),
        before["SyncToken"].as_str(),
        "the edit is visible"
    );
}

#[tokio::test]
async fn a_window_whose_count_disagrees_is_paged_again() {
    let counts = Arc::new(AtomicU32::new(0));
    let c = Arc::clone(&counts);
    let stub = Stub::start(move |req| {
        if req.is_token() {
            return StubResponse::token_ok();
        }
        if req.is_count() {
            // The first COUNT(*) says a row appeared meanwhile; the second agrees.
            return StubResponse::count(if c.fetch_add(1, Ordering::SeqCst) == 0 {
                6
            } else {
                5
            });
        }
        let start = req.start_position().unwrap_or(1);
        StubResponse::customers(&window_of(&[1, 2, 3, 4, 5], start, 3), start)
    })
    .await;
    let (client, _store) = stub.client(3);
    let mut pager = client.window_pager(Entity::Customer, whole_range());
    let pages = drain(&mut pager).await.expect("paging");
    let numbers: Vec<_> = pages
        .iter()
        .map(|p| (p.number, p.start_position, p.rows.len()))
        .collect();
    assert_eq!(
        numbers,
        [(1, 1, 3), (2, 3, 2), (4, 1, 3), (5, 3, 2)],
        "numbers keep increasing across re-pages (3 and 6 held only the overlapping row)"
    );
    assert_eq!(pager.rows(), 10);
    let kinds: Vec<_> = stub
        .api_requests()
        .iter()
        .map(|r| {
            if r.is_count() {
                "count".to_owned()
            } else {
                format!("p{}", r.start_position().unwrap_or(0))
            }
        })
        .collect();
    assert_eq!(
        kinds,
        ["p1", "p3", "p5", "count", "p1", "p3", "p5", "count"]
    );
}

#[tokio::test]
async fn a_window_that_keeps_changing_fails_after_two_repages() {
    let stub = Stub::start(|req| {
        if req.is_token() {
            StubResponse::token_ok()
        } else if req.is_count() {
            StubResponse::count(9)
        } else {
            let start = req.start_position().unwrap_or(1);
            StubResponse::customers(&window_of(&[1, 2, 3, 4], start, 3), start)
        }
    })
    .await;
    let (client, _store) = stub.client(3);
    let mut pager = client.window_pager(Entity::Customer, whole_range());
    let mut yielded = 0;
    let err = loop {
        match pager.next_page().await {
            Ok(Some(_)) => yielded += 1,
            Ok(None) => panic!("an unstable window must not finish quietly"),
            Err(e) => break e,
        }
    };
    assert_eq!(yielded, 6, "three passes of two pages");
    let QboError::WindowUnstable {
        count,
        seen,
        passes,
        entity,
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(
        (*count, *seen, *passes, *entity),
        (9, 4, 3, Entity::Customer)
    );
    assert!(err.to_string().contains("kept changing"), "{err}");
    assert!(!err.is_retryable());
    assert_eq!(
        stub.api_requests().iter().filter(|r| r.is_count()).count(),
        3
    );
    assert!(
        pager
            .next_page()
            .await
            .expect("done after the error")
            .is_none()
    );
}

#[tokio::test]
async fn a_page_longer_than_requested_is_not_short_and_nothing_is_deduplicated() {
    // QBO has answered 101 rows to MAXRESULTS 100: here 4 rows to MAXRESULTS 3.
    let stub = Stub::start(|req| {
        if req.is_token() {
            StubResponse::token_ok()
        } else if req.is_count() {
            StubResponse::count(5)
        } else if req.start_position() == Some(1) {
            StubResponse::customers(&[1, 2, 3, 4], 1)
        } else {
            let start = req.start_position().unwrap_or(1);
            StubResponse::customers(&window_of(&[1, 2, 3, 4, 5], start, 3), start)
        }
    })
    .await;
    let (client, _store) = stub.client(3);
    let mut pager = client.window_pager(Entity::Customer, whole_range());
    let pages = drain(&mut pager).await.expect("paging");
    let ids: Vec<_> = pages
        .iter()
        .flat_map(|p| p.rows.iter().map(|r| r.id.as_str()))
        .collect();
    assert_eq!(ids, ["1", "2", "3", "4", "4", "5"], "rows as returned");
    assert_eq!(pager.rows(), 6);
    let starts: Vec<_> = stub
        .api_requests()
        .iter()
        .map(|r| (r.is_count(), r.start_position()))
        .collect();
    assert_eq!(
        starts,
        [
            (false, Some(1)),
            (false, Some(3)),
            (false, Some(5)),
            (true, None)
        ],
        "next start = start + page size - 1 (one row of overlap)"
    );
}

/// The rows at 1-based positions `start..start + size` of `ids`.
fn window_of(ids: &[u32], start: u32, size: usize) -> Vec<u32> {
    let from = usize::try_from(start.max(1) - 1).expect("usize");
    ids.iter().skip(from).take(size).copied().collect()
}

#[tokio::test]
async fn a_row_deleted_between_two_pages_never_makes_a_later_row_slip_through() {
    // Ids 1..=7, pages of 3. After the first page, row 2 is deleted: every later offset moves
    // down by one. Paging on by offset alone would ask positions 4..6 and get 5, 6, 7, skipping
    // 4, while COUNT(*) (6) would still match the distinct ids seen (1, 2, 3, 5, 6, 7).
    let rows = Arc::new(std::sync::Mutex::new(vec![1, 2, 3, 4, 5, 6, 7]));
    let pages_served = Arc::new(AtomicU32::new(0));
    let (r, served) = (Arc::clone(&rows), Arc::clone(&pages_served));
    let stub = Stub::start(move |req| {
        if req.is_token() {
            return StubResponse::token_ok();
        }
        let ids = r.lock().expect("rows").clone();
        if req.is_count() {
            return StubResponse::count(ids.len() as u64);
        }
        let start = req.start_position().unwrap_or(1);
        let page = window_of(&ids, start, 3);
        if served.fetch_add(1, Ordering::SeqCst) == 0 {
            r.lock().expect("rows").retain(|id| *id != 2);
        }
        StubResponse::customers(&page, start)
    })
    .await;
    let (client, _store) = stub.client(3);
    let mut pager = client.window_pager(Entity::Customer, whole_range());
    let pages = drain(&mut pager).await.expect("paging");
    let seen: BTreeSet<u32> = pages
        .iter()
        .flat_map(|p| p.rows.iter().map(|r| r.id.parse::<u32>().expect("id")))
        .collect();
    for id in [1, 3, 4, 5, 6, 7] {
        assert!(seen.contains(&id), "row {id} slipped through: {seen:?}");
    }
    let starts: Vec<_> = stub
        .api_requests()
        .iter()
        .map(|r| {
            if r.is_count() {
                0
            } else {
                r.start_position().unwrap_or(0)
            }
        })
        .collect();
    assert_eq!(
        starts,
        [1, 3, 1, 3, 5, 0],
        "the shift is seen at the first boundary, the window paged again and verified"
    );
}
