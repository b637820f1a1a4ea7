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

/// A client of `stub` with pages of `page_size` rows and no client-side rate limits.
fn unlimited_client(stub: &Stub, page_size: u32) -> (qbo::QboClient, qbo::MemoryTokenStore) {
    stub.client_with(|s| {
        s.page_size = page_size;
        s.limits = qbo::RateLimitSettings::unlimited();
    })
}

/// Permits for `n` pages requested ahead.
fn permits(n: usize) -> Arc<tokio::sync::Semaphore> {
    Arc::new(tokio::sync::Semaphore::new(n))
}

/// The `STARTPOSITION`s (0 for a `COUNT(*)`) of `requests`, sorted: pages fetched ahead may be
/// answered in any order.
fn sorted_starts(requests: &[crate::stub::StubRequest]) -> Vec<u32> {
    let mut starts: Vec<u32> = requests
        .iter()
        .map(|r| {
            if r.is_count() {
                0
            } else {
                r.start_position().unwrap_or(0)
            }
        })
        .collect();
    starts.sort_unstable();
    starts
}

#[tokio::test]
async fn pages_fetched_ahead_are_the_pages_a_sequential_pass_asks_for() {
    // Every count from 0 to 13 rows, pages of 1, 2 and 3 rows: fetching ahead sends exactly the
    // requests one page at a time sends, and yields the same pages in the same order.
    for page_size in [1_u32, 2, 3] {
        for n in 0_u32..=13 {
            let ids: Vec<u32> = (1..=n).collect();
            let data = ids.clone();
            let stub = Stub::start(move |req| {
                if req.is_token() {
                    StubResponse::token_ok()
                } else if req.is_count() {
                    StubResponse::count(u64::from(n))
                } else {
                    let start = req.start_position().unwrap_or(1);
                    StubResponse::customers(&window_of(&data, start, page_size as usize), start)
                }
            })
            .await;
            let (client, _store) = unlimited_client(&stub, page_size);
            let mut runs = Vec::new();
            for ahead in [None, Some(permits(4))] {
                let before = stub.api_requests().len();
                let mut pager = client.window_pager(Entity::Customer, whole_range());
                pager.expect_count(u64::from(n));
                if let Some(ahead) = ahead {
                    pager.fetch_ahead(ahead);
                }
                let pages = drain(&mut pager).await.expect("paging");
                let got: Vec<(u32, u32, Vec<String>)> = pages
                    .iter()
                    .map(|p| {
                        let ids = p.rows.iter().map(|r| r.id.clone()).collect();
                        (p.number, p.start_position, ids)
                    })
                    .collect();
                let seen: Vec<String> = got.iter().flat_map(|(_, _, ids)| ids.clone()).collect();
                let want: Vec<String> = ids.iter().map(u32::to_string).collect();
                assert_eq!(seen, want, "{n} rows, pages of {page_size}: every row once");
                runs.push((got, sorted_starts(&stub.api_requests()[before..])));
            }
            assert_eq!(runs[0], runs[1], "{n} rows, pages of {page_size}");
        }
    }
}

#[tokio::test]
async fn pages_fetched_ahead_are_requested_at_once_and_read_in_order() {
    let sim = start_sim(two_days()).await;
    let (client, _store) = sim_client(&sim);
    sim.state().set_faults(qbo_sim::FaultConfig {
        latency: std::time::Duration::from_millis(100),
        ..qbo_sim::FaultConfig::default()
    });
    let window = whole_range();
    let expected = sim
        .state()
        .ids_created_between("Invoice", window.start, window.end);
    sim.state().reset_stats();
    let mut pager = client.window_pager(Entity::Invoice, window);
    pager.expect_count(expected.len() as u64);
    let ahead = permits(2);
    pager.fetch_ahead(Arc::clone(&ahead));
    let first = pager.next_page().await.expect("page").expect("rows");
    assert_eq!((first.number, first.start_position), (1, 1));
    // While page 1 is read, pages 2 and 3 were requested together with it.
    assert_eq!(sim.state().stats().max_in_flight_seen, 3);
    let mut pages = vec![first];
    pages.extend(drain(&mut pager).await.expect("paging"));
    let got: Vec<String> = pages
        .iter()
        .flat_map(|p| p.rows.iter().map(|r| r.id.clone()))
        .collect();
    assert_eq!(got, expected, "every row once, in Id order");
    let numbers: Vec<_> = pages.iter().map(|p| (p.number, p.start_position)).collect();
    assert_eq!(numbers, [(1, 1), (2, 1000), (3, 1999)]);
    // The count was known: no verifying COUNT(*), three requests as one page at a time.
    assert_eq!(sim.state().stats().query_requests, 3);
    assert_eq!(ahead.available_permits(), 2, "every permit is back");
}

/// A stub of customers `1..=n`, pages of 3; once the page starting at `trigger` has been served
/// (whichever order pages are served in), `change` edits the rows.
fn changing_stub(
    n: u32,
    trigger: u32,
    change: impl Fn(&mut Vec<u32>) + Send + Sync + 'static,
) -> (
    impl Fn(&crate::stub::StubRequest) -> StubResponse + Send + Sync + 'static,
    Arc<std::sync::Mutex<Vec<u32>>>,
) {
    let rows = Arc::new(std::sync::Mutex::new((1..=n).collect::<Vec<u32>>()));
    let changed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let r = Arc::clone(&rows);
    let handler = move |req: &crate::stub::StubRequest| {
        if req.is_token() {
            return StubResponse::token_ok();
        }
        let mut ids = r.lock().expect("rows");
        if req.is_count() {
            return StubResponse::count(ids.len() as u64);
        }
        let start = req.start_position().unwrap_or(1);
        let page = window_of(&ids, start, 3);
        if start == trigger && !changed.swap(true, Ordering::SeqCst) {
            change(&mut ids);
        }
        StubResponse::customers(&page, start)
    };
    (handler, rows)
}

#[tokio::test]
async fn rows_that_change_while_pages_are_fetched_ahead_are_never_lost() {
    // 13 customers, pages of 3 (starts 1, 3, 5, 7, 9, 11, 13), all requested at once. Right
    // after one page is served, rows are deleted or added before or after it: whatever order
    // the stub serves the other pages in, every row there all along is returned.
    type Change = fn(&mut Vec<u32>);
    let changes: [(&str, Change); 4] = [
        ("delete 2", |ids| ids.retain(|id| *id != 2)),
        ("delete 2 and 8", |ids| {
            ids.retain(|id| *id != 2 && *id != 8)
        }),
        // Row 100 sorts fifth (the stub serves rows in list order).
        ("insert at 5", |ids| ids.insert(4, 100)),
        ("append 14 and 15", |ids| ids.extend([14, 15])),
    ];
    let mut repaged = 0;
    for trigger in [1, 5, 9, 13] {
        for (label, change) in changes {
            let (handler, rows) = changing_stub(13, trigger, change);
            let stub = Stub::start(handler).await;
            let (client, _store) = unlimited_client(&stub, 3);
            let mut pager = client.window_pager(Entity::Customer, whole_range());
            pager.expect_count(13);
            pager.fetch_ahead(permits(8));
            let pages = drain(&mut pager).await.expect("paging");
            let seen: BTreeSet<u32> = pages
                .iter()
                .flat_map(|p| p.rows.iter().map(|r| r.id.parse::<u32>().expect("id")))
                .collect();
            // A row there all along is returned; a row deleted or added meanwhile may be.
            let now: Vec<u32> = rows.lock().expect("rows").clone();
            for id in now.iter().filter(|id| **id <= 13) {
                assert!(
                    seen.contains(id),
                    "{label} after page {trigger}: row {id} slipped through ({seen:?})"
                );
            }
            assert!(seen.iter().all(|id| *id <= 15 || *id == 100), "{seen:?}");
            // Never more than a sequential pass and its re-page, plus the pages fetched
            // ahead that a change made useless.
            let requests = stub.api_requests().len();
            assert!(requests <= 7 + 8 + 1 + 8, "{label}: {requests} requests");
            if sorted_starts(&stub.api_requests())
                .iter()
                .filter(|s| **s == 1)
                .count()
                > 1
            {
                repaged += 1;
            }
        }
    }
    assert!(repaged > 0, "no change was ever seen mid-pass");
}

/// `(STARTPOSITION, MAXRESULTS)` of every page request of `stub`, in order.
fn page_requests(stub: &Stub) -> Vec<(u32, u32)> {
    stub.api_requests()
        .iter()
        .filter(|r| !r.is_count())
        .map(|r| {
            (
                r.start_position().unwrap_or(0),
                r.max_results().unwrap_or(0),
            )
        })
        .collect()
}

#[tokio::test]
async fn pages_that_time_out_are_asked_for_in_halves_and_later_windows_start_small() {
    // Intuit has timed out pages of 1,000 rows that it served 100 at a time: here every page
    // of more than 250 rows is a 504 with Intuit's XML body, over a window of 1,100 rows.
    let ids: Vec<u32> = (1..=1100).collect();
    let stub = Stub::start(move |req| {
        if req.is_token() {
            StubResponse::token_ok()
        } else if req.is_count() {
            StubResponse::count(ids.len() as u64)
        } else if req.max_results().unwrap_or(0) > 250 {
            StubResponse::gateway_timeout()
        } else {
            let start = req.start_position().unwrap_or(1);
            let size = usize::try_from(req.max_results().unwrap_or(1)).expect("usize");
            StubResponse::customers(&window_of(&ids, start, size), start)
        }
    })
    .await;
    let (client, _store) = unlimited_client(&stub, 1000);
    let mut pager = client.window_pager(Entity::Customer, whole_range());
    let pages = drain(&mut pager).await.expect("smaller pages succeed");
    let got: Vec<u32> = pages
        .iter()
        .flat_map(|p| p.rows.iter().map(|r| r.id.parse::<u32>().expect("id")))
        .collect();
    assert_eq!(
        got,
        (1..=1100).collect::<Vec<_>>(),
        "every row once, in order"
    );
    assert!(
        pages.iter().all(|p| p.page_size == 250),
        "pages say the size sent"
    );
    assert_eq!(
        page_requests(&stub),
        [
            (1, 1000),
            (1, 1000),
            (1, 500),
            (1, 250),
            (250, 250),
            (499, 250),
            (748, 250),
            (997, 250)
        ],
        "one retry at the first size, then half the size at the same start after each failure"
    );
    let before = page_requests(&stub).len();
    let mut next = client.window_pager(Entity::Customer, whole_range());
    drain(&mut next).await.expect("paging again");
    assert_eq!(
        page_requests(&stub).get(before),
        Some(&(1, 250)),
        "a later window of the entity starts at the size that worked"
    );
}

/// A stub that answers every query with Intuit's 504, and its client: pages of 1,000 rows,
/// `max_retries` retries, no client-side rate limits.
async fn always_timing_out(max_retries: u32) -> (Stub, qbo::QboClient, qbo::MemoryTokenStore) {
    let stub = Stub::start(|req| {
        if req.is_token() {
            StubResponse::token_ok()
        } else {
            StubResponse::gateway_timeout()
        }
    })
    .await;
    let (client, store) = stub.client_with(|s| {
        s.page_size = 1000;
        s.limits = qbo::RateLimitSettings::unlimited();
        s.retry.max_retries = max_retries;
    });
    (stub, client, store)
}

#[tokio::test]
async fn at_the_smallest_page_a_failure_has_every_retry_then_is_an_error() {
    let (stub, client, _store) = always_timing_out(6).await;
    let mut pager = client.window_pager(Entity::Customer, whole_range());
    let err = drain(&mut pager).await.expect_err("always 504");
    assert_eq!(err.status(), Some(504), "{err:?}");
    assert!(err.is_retryable());
    let sizes: Vec<u32> = page_requests(&stub).iter().map(|&(_, size)| size).collect();
    assert_eq!(
        sizes,
        [1000, 1000, 500, 250, 125, 100, 100],
        "halved down to the smallest page, within the settings' 6 retries"
    );
    let before = page_requests(&stub).len();
    let mut next = client.window_pager(Entity::Customer, whole_range());
    drain(&mut next).await.expect_err("still 504");
    assert_eq!(
        page_requests(&stub)[before].1,
        1000,
        "no smaller page worked, so nothing was remembered"
    );
}

#[tokio::test]
async fn without_retries_a_failed_page_is_not_halved() {
    let (stub, client, _store) = always_timing_out(0).await;
    let mut pager = client.window_pager(Entity::Customer, whole_range());
    let err = drain(&mut pager).await.expect_err("504");
    assert_eq!(err.status(), Some(504), "{err:?}");
    assert_eq!(page_requests(&stub), [(1, 1000)], "one attempt, as asked");
}
