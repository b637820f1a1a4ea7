//! The web UI in the operators' language, in a real browser: a browser that asks for Spanish
//! (`Accept-Language: es-EC,es`) gets every page in Spanish (`<html lang="es">`, the catalog's
//! words, the contract's log lines and the pipeline and field names as they are); the header's
//! switcher changes to English and the choice is remembered across pages; error pages and
//! refused forms speak the chosen language. Screenshots go to `target/ui-screenshots/` (`3x-es-*`).

use serde_json::json;

use crate::browser::{Browser, Ui};
use crate::harness::{World, sim_config};

/// English words of the UI that a Spanish page must not show (pipeline names, which contain
/// English, are checked by whole phrases only).
const ENGLISH: &[&str] = &[
    "Run once",
    "Load history",
    "Last run",
    "Next trigger",
    "Log out",
    "Retry failed",
    "Windows",
    "Started by",
    "New trigger",
    "Time zone",
    "Replace a value",
    "Connect QuickBooks",
    "All times are shown",
];

/// The text the page shows (not its markup).
async fn page_text(browser: &Browser) -> String {
    browser.text("body").await
}

/// Asserts the page is Spanish: its `lang`, `words` in it, none of [`ENGLISH`].
async fn assert_spanish(browser: &Browser, words: &[&str]) {
    assert_eq!(browser.count("html[lang=es]").await, 1, "not lang=es");
    let text = page_text(browser).await;
    for word in words {
        assert!(text.contains(word), "`{word}` missing from: {text}");
    }
    for english in ENGLISH {
        assert!(
            !text.contains(english),
            "`{english}` left in English: {text}"
        );
    }
}

/// What sticks out of the page sideways (tag, class and width of each element whose right edge
/// passes the window's), empty when nothing does.
async fn overflows(browser: &Browser) -> String {
    let script = "if (document.documentElement.scrollWidth <= window.innerWidth + 1) { return ''; } \
        return Array.from(document.querySelectorAll('body *')) \
          .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1) \
          .slice(0, 8).map(e => e.tagName + '.' + e.className + ' ' + \
            Math.round(e.getBoundingClientRect().right) + ' ' + e.textContent.slice(0, 40)).join(' | ');";
    browser
        .cmd(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
        .as_str()
        .unwrap_or("?")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spanish_browser_gets_spanish_pages_and_the_switch_to_english_is_remembered() {
    let mut world = World::new(sim_config(40)).await;
    let ui = Ui::start(&mut world).await;
    let browser = Browser::start_with_language("es-EC,es").await;

    browser.goto(&format!("{}/login", ui.base)).await;
    assert_spanish(&browser, &["Usuario", "Contraseña", "Entrar"]).await;
    browser.screenshot("30-es-login").await;
    ui.login(&browser).await;

    // The dashboard in Spanish, readable at 390 px.
    browser.goto(&format!("{}/", ui.base)).await;
    assert_spanish(
        &browser,
        &["Panel", "Filas", "Frescura", "Solicitudes este mes"],
    )
    .await;
    browser.screenshot("36-es-dashboard").await;
    browser.resize(390, 844).await;
    assert_eq!(overflows(&browser).await, "", "the dashboard at 390 px");
    browser.resize(1280, 1000).await;

    // Pipelines: the page's words in Spanish, pipeline and field names as they are.
    browser.goto(&format!("{}/pipelines", ui.base)).await;
    assert_spanish(
        &browser,
        &[
            "Cargar historial",
            "Ejecutar una vez",
            "Ejecuciones",
            "Cerrar sesión",
            "qb_customers_backfill",
            "fecha_inicio",
        ],
    )
    .await;
    browser.screenshot("31-es-pipelines").await;
    browser.resize(390, 844).await;
    browser.screenshot("34-es-pipelines-390").await;
    assert_eq!(
        overflows(&browser).await,
        "",
        "the Pipelines page at 390 px"
    );
    browser.resize(1280, 1000).await;

    // A refused form: the refusal leads in Spanish and keeps the detail.
    browser
        .click("#load-history form button[type=submit]")
        .await;
    browser.wait_for("p.error[role=alert]", 1, 20).await;
    let refusal = browser.text("p.error[role=alert]").await;
    assert!(refusal.starts_with("Faltan datos"), "{refusal}");

    // A run: statuses and labels in Spanish; the contract's log lines stay as they are.
    let run = ui.run_once(&browser, "2026-01-01", "2026-01-04").await;
    browser
        .wait_for(".run-head .status.s-succeeded", 1, 60)
        .await;
    browser.wait_for("#log span", 1, 20).await;
    assert_spanish(
        &browser,
        &["completada", "Ventanas", "Lanzada por", "Filas"],
    )
    .await;
    assert!(browser.text("#log").await.contains("Window completed"));
    browser.screenshot("32-es-run").await;
    browser.resize(390, 844).await;
    browser.screenshot("35-es-run-390").await;
    assert_eq!(overflows(&browser).await, "", "the run page at 390 px");
    browser.resize(1280, 1000).await;

    browser.goto(&format!("{}/triggers", ui.base)).await;
    assert_spanish(
        &browser,
        &["Nuevo trigger", "Zona horaria", "Crear trigger"],
    )
    .await;
    browser.screenshot("33-es-triggers").await;
    browser.goto(&format!("{}/secrets", ui.base)).await;
    assert_spanish(&browser, &["Secretos", "Reemplazar un valor", "Guardar"]).await;
    browser.goto(&format!("{}/runs/not-a-run", ui.base)).await;
    assert_spanish(&browser, &["No encontrado"]).await;

    // The switcher: English on this page and the next, until Spanish is chosen again.
    browser.goto(&run).await;
    browser.click("nav.langs a[hreflang=en]").await;
    assert_eq!(browser.url().await, run, "the switcher came back elsewhere");
    assert_eq!(browser.count("html[lang=en]").await, 1);
    assert!(page_text(&browser).await.contains("Windows"));
    browser.goto(&format!("{}/triggers", ui.base)).await;
    assert!(page_text(&browser).await.contains("New trigger"));
    browser.click("nav.langs a[hreflang=es]").await;
    assert_spanish(&browser, &["Nuevo trigger"]).await;
}
