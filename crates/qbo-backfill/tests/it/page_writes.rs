//! The bound on the page writes of one process (`QBO_BACKFILL_PAGE_WRITES`), against real
//! PostgreSQL and `qbo-sim`: a load never has more page-writing transactions open at once than
//! the bound, and without a tight bound the same load does have several (so the measure sees them).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use qbo_backfill::pipeline::Pipeline;
use qbo_backfill::settings::ClientTuning;

use crate::preview::{run, tuning, world_with_company};

/// Loads January's customers in small pages (so that many pages are ready to be written
/// together), ten days or spans at once, spans of `span_max_pages` (0: day by day), with
/// `page_writes`; the most transactions seen writing `raw.qb_customers` at the same instant.
async fn most_writers_at_once(page_writes: usize, span_max_pages: u64) -> i64 {
    let (world, key) = world_with_company(6000).await;
    let tuning = ClientTuning {
        page_writes,
        ..tuning(50, span_max_pages)
    };
    let most = Arc::new(AtomicI64::new(0));
    let watching = tokio_util::sync::CancellationToken::new();
    let watcher = {
        let (pool, most, watching) = (world.pool().clone(), Arc::clone(&most), watching.clone());
        tokio::spawn(async move {
            // A page write holds ROW EXCLUSIVE on the raw table until it commits; nothing else
            // in a load writes that table.
            while !watching.is_cancelled() {
                let writers: i64 = sqlx::query_scalar(
                    "SELECT count(DISTINCT pid) FROM pg_locks \
                     WHERE relation = 'raw.qb_customers'::regclass AND mode = 'RowExclusiveLock'",
                )
                .fetch_one(&pool)
                .await
                .expect("pg_locks");
                most.fetch_max(writers, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    let (_, rows) = run(&world, &key, Pipeline::CUSTOMERS, &tuning).await;
    watching.cancel();
    watcher.await.expect("watcher");
    assert_eq!(rows, 6000, "every customer loaded");
    most.load(Ordering::Relaxed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_process_writes_no_more_pages_at_once_than_its_bound() {
    for span_max_pages in [0, 20] {
        assert_eq!(most_writers_at_once(1, span_max_pages).await, 1);
        let unbounded = most_writers_at_once(10, span_max_pages).await;
        assert!(
            unbounded > 1,
            "with ten places (spans of {span_max_pages} pages) the load wrote {unbounded} page(s) \
             at once at most: the measure sees nothing"
        );
    }
}
