//! The web UI's two languages: [`Lang`] (English or Spanish), chosen per request from the `lang`
//! cookie (set by the header's switcher, `GET /lang/{es|en}?next=/path`) or else from the
//! browser's `Accept-Language` (English when it accepts neither), and the message catalog every
//! page, form, flash, banner and error page takes its words from ([`Lang::t`]), with numbers
//! written the language's way ([`Lang::num`]: `12,345` / `12.345`).
//!
//! What stays as it is in both languages: the contract's log lines, pipeline, table and field
//! names (`fecha_inicio`, `fecha_fin`), status codes in URLs and CSS classes, and dates, which are
//! ISO (`YYYY-MM-DD`) because that is what every input of the program takes.

mod catalog;

use std::collections::HashMap;
use std::sync::LazyLock;

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};

use crate::server::AppState;

/// The cookie that remembers the operator's choice (`es` or `en`).
pub const LANG_COOKIE: &str = "lang";

/// A language of the UI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Lang {
    /// English: the default when the browser accepts neither language.
    #[default]
    En,
    /// Spanish, the language of the seed's operators.
    Es,
}

impl Lang {
    /// Both languages, in the switcher's order.
    pub const ALL: [Self; 2] = [Self::Es, Self::En];

    /// The language's code (`<html lang>`, the cookie, `/lang/{code}`).
    #[must_use]
    pub const fn code(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::Es => "es",
        }
    }

    /// The language's name in itself (the switcher's label).
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::En => "English",
            Self::Es => "Español",
        }
    }

    /// The language of a code or language tag (`es`, `es-EC`, `EN-us`); `None` for any other.
    #[must_use]
    pub fn from_tag(tag: &str) -> Option<Self> {
        let primary = tag.trim().split(['-', '_']).next().unwrap_or_default();
        if primary.eq_ignore_ascii_case("es") {
            Some(Self::Es)
        } else if primary.eq_ignore_ascii_case("en") {
            Some(Self::En)
        } else {
            None
        }
    }

    /// The language an `Accept-Language` value prefers most among English and Spanish (by
    /// q-value, the first listed on a tie; `q=0` refuses); `None` when it accepts neither.
    #[must_use]
    pub fn from_accept_language(value: &str) -> Option<Self> {
        let mut best: Option<(Self, f32)> = None;
        for item in value.split(',') {
            let mut parts = item.split(';');
            let tag = parts.next().unwrap_or_default();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            let Some(lang) = Self::from_tag(tag) else {
                continue;
            };
            if q > 0.0 && best.is_none_or(|(_, b)| q > b) {
                best = Some((lang, q));
            }
        }
        best.map(|(lang, _)| lang)
    }

    /// The language of a request: its `lang` cookie, else its `Accept-Language`, else English.
    #[must_use]
    pub fn of_request(headers: &HeaderMap) -> Self {
        super::cookie(headers, LANG_COOKIE)
            .and_then(|c| Self::from_tag(&c))
            .or_else(|| {
                headers
                    .get_all(header::ACCEPT_LANGUAGE)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .find_map(Self::from_accept_language)
            })
            .unwrap_or_default()
    }

    /// The catalog's text for `key` in this language (the key itself when the catalog lacks it,
    /// which the catalog's tests rule out for every key the templates and pages use).
    #[must_use]
    pub fn t(self, key: &'static str) -> &'static str {
        CATALOG.get(key).map_or(key, |&(en, es)| match self {
            Self::En => en,
            Self::Es => es,
        })
    }

    /// The catalog's text for `key` with each `{name}` replaced by its value.
    #[must_use]
    pub fn fill(self, key: &'static str, args: &[(&str, &dyn std::fmt::Display)]) -> String {
        args.iter()
            .fold(self.t(key).to_owned(), |text, (name, value)| {
                text.replace(&format!("{{{name}}}"), &value.to_string())
            })
    }

    /// An integer with thousands separators: `12,345` in English, `12.345` in Spanish.
    #[must_use]
    pub fn num(self, n: impl Count) -> String {
        let n = n.count();
        let digits = n.unsigned_abs().to_string();
        let sep = match self {
            Self::En => ',',
            Self::Es => '.',
        };
        let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
        if n < 0 {
            out.push('-');
        }
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(sep);
            }
            out.push(c);
        }
        out
    }

    /// A number with two decimals: `1.25` in English, `1,25` in Spanish.
    #[must_use]
    pub fn decimal(self, x: f64) -> String {
        let text = format!("{x:.2}");
        match self {
            Self::En => text,
            Self::Es => text.replace('.', ","),
        }
    }

    /// The reconnect banner's first sentence for a company whose token QuickBooks refused.
    #[must_use]
    pub fn refused(self, realm: &str, error: &str) -> String {
        self.fill("banner.refused", &[("realm", &realm), ("error", &error)])
    }

    /// Refused input as shown next to a form: in English the lower layers' message as it is; in
    /// Spanish the catalog's words for the refusal's `code` (an API error code), then that
    /// message, which names the values and fields involved.
    #[must_use]
    pub fn refusal(self, code: &str, message: &str) -> String {
        if self == Self::En {
            return message.to_owned();
        }
        let lead = CATALOG
            .get(format!("refusal.{code}").as_str())
            .or_else(|| CATALOG.get("refusal.other"))
            .map_or("", |&(_, es)| es);
        format!("{lead}: {message}")
    }

    /// The switcher's links: every language, each back to `next` (a path of this site).
    #[must_use]
    pub fn links(self, next: &str) -> Vec<LangLink> {
        let next: String =
            url::form_urlencoded::byte_serialize(local_path(next).as_bytes()).collect();
        Self::ALL
            .iter()
            .map(|&lang| LangLink {
                code: lang.code(),
                name: lang.name(),
                href: format!("/lang/{}?next={next}", lang.code()),
                current: lang == self,
            })
            .collect()
    }

    /// The word for a run's, window's, batch's or trigger's status code (the code itself when
    /// there is none).
    #[must_use]
    pub fn status(self, code: &str) -> String {
        self.coded("status", code)
    }

    /// The words for what started a run or a batch, from its origin code (`cli`, `ui`, …; the
    /// code itself when there are none).
    #[must_use]
    pub fn origin(self, code: &str) -> String {
        self.coded("origin", code)
    }

    /// The catalog's text for `{family}.{code}`, else `code`.
    fn coded(self, family: &str, code: &str) -> String {
        CATALOG
            .get(format!("{family}.{code}").as_str())
            .map_or_else(
                || code.to_owned(),
                |&(en, es)| match self {
                    Self::En => en.to_owned(),
                    Self::Es => es.to_owned(),
                },
            )
    }
}

/// A whole number a page shows (templates hand over references, hence the impl for them).
pub trait Count {
    /// The number as an `i64` (saturating).
    fn count(&self) -> i64;
}

impl Count for i64 {
    fn count(&self) -> i64 {
        *self
    }
}

impl Count for i32 {
    fn count(&self) -> i64 {
        i64::from(*self)
    }
}

impl Count for usize {
    fn count(&self) -> i64 {
        i64::try_from(*self).unwrap_or(i64::MAX)
    }
}

impl<T: Count + ?Sized> Count for &T {
    fn count(&self) -> i64 {
        (**self).count()
    }
}

/// A link of the language switcher.
#[derive(Debug, Clone)]
pub struct LangLink {
    /// `es` or `en`.
    pub code: &'static str,
    /// The language's name in itself.
    pub name: &'static str,
    /// `/lang/{code}?next=…`.
    pub href: String,
    /// The page is in this language.
    pub current: bool,
}

/// `next` when it is a path of this site (`/…`, not `//host`, no backslash or control
/// character), else `/`.
#[must_use]
pub fn local_path(next: &str) -> &str {
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && !next.chars().any(|c| c.is_control() || c == '\\');
    if local { next } else { "/" }
}

/// `GET /lang/{es|en}?next=/path`: remembers the language in the `lang` cookie (a year) and goes
/// back to `next` (only a path of this site). It changes nothing but how pages are worded, so it
/// needs no CSRF token; an unknown language is a 404.
pub async fn switch(
    State(state): State<AppState>,
    Path(code): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let Some(lang) = Lang::from_tag(&code).filter(|l| l.code() == code) else {
        return super::not_found();
    };
    let next = local_path(query.get("next").map_or("/", String::as_str));
    let mut response = Redirect::to(next).into_response();
    let secure = if state.web.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{LANG_COOKIE}={}; Path=/; Max-Age=31536000; SameSite=Lax{secure}",
        lang.code()
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

/// Which error page a response is (set by [`error_page`], read by [`localize_errors`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorPage {
    /// 403: a form that did not come from this site.
    Forbidden,
    /// 500: the cause is in the server log.
    Failure,
    /// 404.
    NotFound,
}

/// An error page in `lang`.
#[must_use]
pub fn error_page(lang: Lang, page: ErrorPage) -> Response {
    let back = lang.t("error.back");
    let (status, title, body) = match page {
        ErrorPage::Forbidden => (
            StatusCode::FORBIDDEN,
            lang.t("error.refused_title"),
            format!(
                "{} <a href=\"/\">{}</a> {}",
                lang.t("error.refused"),
                lang.t("error.reload"),
                lang.t("error.try_again")
            ),
        ),
        ErrorPage::Failure => (
            StatusCode::INTERNAL_SERVER_ERROR,
            lang.t("error.failure_title"),
            format!("{} <a href=\"/\">{back}</a>", lang.t("error.failure")),
        ),
        ErrorPage::NotFound => (
            StatusCode::NOT_FOUND,
            lang.t("error.not_found"),
            format!("<a href=\"/\">{back}</a>"),
        ),
    };
    let html = format!(
        "<!doctype html><html lang=\"{}\"><title>{title}</title><h1>{title}</h1><p>{body}</p></html>",
        lang.code()
    );
    let mut response = (status, Html(html)).into_response();
    response.extensions_mut().insert(page);
    response
}

/// Middleware: an error page (made in English where the request's language is not at hand) is
/// made again in the request's language.
pub async fn localize_errors(request: Request, next: Next) -> Response {
    let lang = Lang::of_request(request.headers());
    let response = next.run(request).await;
    match response.extensions().get::<ErrorPage>() {
        Some(&page) if lang != Lang::En => error_page(lang, page),
        _ => response,
    }
}

/// The catalog as a map from key to (English, Spanish).
static CATALOG: LazyLock<HashMap<&'static str, (&'static str, &'static str)>> =
    LazyLock::new(|| {
        catalog::entries()
            .map(|(k, en, es)| (k, (en, es)))
            .collect()
    });

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_has_both_languages_and_appears_once() {
        assert_eq!(catalog::malformed_lines(), Vec::<&str>::new());
        let mut seen = std::collections::HashSet::new();
        for (key, en, es) in catalog::entries() {
            assert!(seen.insert(key), "`{key}` is in the catalog twice");
            assert!(!en.trim().is_empty(), "`{key}` has no English text");
            assert!(!es.trim().is_empty(), "`{key}` has no Spanish text");
            let holes = |t: &str| {
                let mut h: Vec<String> = t
                    .split('{')
                    .skip(1)
                    .filter_map(|p| p.split_once('}').map(|(n, _)| n.to_owned()))
                    .collect();
                h.sort();
                h
            };
            assert_eq!(holes(en), holes(es), "`{key}` has other holes in Spanish");
        }
    }

    /// Every `t("key")`, `fill("key"` and `status.` code the templates and the web layer use.
    fn used_keys() -> Vec<String> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut texts = Vec::new();
        for dir in ["templates", "src/server/web", "src/server/web/pages"] {
            for entry in std::fs::read_dir(root.join(dir)).expect("dir").flatten() {
                if entry.path().is_file() {
                    texts.push(std::fs::read_to_string(entry.path()).expect("read"));
                }
            }
        }
        let mut keys = Vec::new();
        for text in texts {
            for opener in [".t(\"", "fill(\""] {
                for piece in text.split(opener).skip(1) {
                    if let Some((key, _)) = piece.split_once('"') {
                        keys.push(key.to_owned());
                    }
                }
            }
        }
        keys
    }

    #[test]
    fn every_run_origin_has_words_in_both_languages() {
        for origin in crate::domain::run::RunOrigin::ALL {
            let code = origin.as_str();
            let (en, es) = (Lang::En.origin(code), Lang::Es.origin(code));
            assert!(
                CATALOG.contains_key(format!("origin.{code}").as_str()),
                "`origin.{code}` is not in the catalog"
            );
            assert!(!en.is_empty() && !es.is_empty(), "{code}");
        }
        assert_eq!(Lang::Es.origin("cli"), "línea de comandos");
        assert_eq!(Lang::Es.origin("nobody"), "nobody");
    }

    #[test]
    fn every_key_the_pages_use_is_in_the_catalog() {
        let keys = used_keys();
        assert!(keys.len() > 100, "only {} keys found", keys.len());
        for key in keys {
            assert!(
                CATALOG.contains_key(key.as_str()),
                "`{key}` is not in the catalog"
            );
        }
    }

    /// The words a template shows outside `{{ … }}`, `{% … %}` and tags.
    fn raw_words(template: &str) -> Vec<String> {
        let mut text = String::new();
        let mut rest = template;
        while let Some(i) = rest.find(['{', '<']) {
            text.push_str(&rest[..i]);
            text.push(' ');
            let close = match rest[i..].chars().nth(1) {
                Some('{') => "}}",
                Some('%') => "%}",
                Some('#') => "#}",
                _ if rest[i..].starts_with('<') => ">",
                _ => "",
            };
            let skip = rest[i + 1..].find(close).map_or(1, |j| j + 1 + close.len());
            rest = &rest[i + skip.max(1)..];
        }
        text.push_str(rest);
        text.split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .filter(|w| w.chars().filter(|c| c.is_alphabetic()).count() >= 2)
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn templates_show_no_words_of_their_own() {
        // Names that are the same in every language: the product, field and pipeline names,
        // the contract's counters, the API's path.
        let same = [
            "qbo",
            "backfill",
            "fecha_inicio",
            "fecha_fin",
            "all_backfill",
            "all_incremental",
            "Cron",
            "intuit_tid",
            "inserted",
            "updated",
            "unchanged",
            "GET",
            "api",
            "v1",
            "runs",
            "logs",
            "00Z",
        ];
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
        for entry in std::fs::read_dir(dir).expect("templates").flatten() {
            let text = std::fs::read_to_string(entry.path()).expect("read");
            for word in raw_words(&text) {
                assert!(
                    same.contains(&word.as_str()),
                    "{}: `{word}` is not from the catalog",
                    entry.path().display()
                );
            }
        }
        assert_eq!(raw_words("<p>Run {{ x }} once</p>"), ["Run", "once"]);
    }

    #[test]
    fn the_switcher_only_goes_back_to_this_site() {
        assert_eq!(local_path("/runs?status=failed"), "/runs?status=failed");
        for outside in [
            "//evil.example/",
            "/\\evil.example",
            "https://evil.example",
            "",
            "runs",
        ] {
            assert_eq!(local_path(outside), "/", "{outside}");
        }
        let links = Lang::Es.links("/runs?status=failed&pipeline=qb_items_backfill");
        assert_eq!(links.len(), 2);
        assert!(links[0].current && links[0].code == "es");
        assert_eq!(
            links[1].href,
            "/lang/en?next=%2Fruns%3Fstatus%3Dfailed%26pipeline%3Dqb_items_backfill"
        );
    }

    #[test]
    fn refusals_keep_the_detail_and_lead_in_spanish() {
        let detail = "fecha_fin must be after fecha_inicio";
        assert_eq!(Lang::En.refusal("invalid_range", detail), detail);
        assert_eq!(
            Lang::Es.refusal("invalid_range", detail),
            format!("Rango no válido: {detail}")
        );
        assert!(Lang::Es.refusal("whatever", "x").starts_with("Rechazado: "));
    }

    #[test]
    fn accept_language_picks_by_q_value_and_defaults_to_english() {
        let pick = |v: &str| Lang::from_accept_language(v);
        assert_eq!(pick("es-EC,es;q=0.9,en;q=0.8"), Some(Lang::Es));
        assert_eq!(pick("en-US"), Some(Lang::En));
        assert_eq!(pick("en-US,en;q=0.9,es;q=0.8"), Some(Lang::En));
        assert_eq!(pick("fr-FR,fr;q=0.9,es;q=0.5,en;q=0.4"), Some(Lang::Es));
        assert_eq!(pick("en;q=0.2, es-419;q=0.7"), Some(Lang::Es));
        assert_eq!(pick("es;q=0, en;q=0.1"), Some(Lang::En));
        assert_eq!(pick("fr"), None);
        assert_eq!(pick(""), None);
        assert_eq!(pick("*"), None);
        let request = |pairs: &[(&'static str, &str)]| {
            let mut h = HeaderMap::new();
            for &(k, v) in pairs {
                let name = axum::http::HeaderName::from_static(k);
                h.append(name, v.parse().expect("header"));
            }
            Lang::of_request(&h)
        };
        assert_eq!(request(&[("accept-language", "fr")]), Lang::En);
        assert_eq!(request(&[]), Lang::En);
        assert_eq!(request(&[("accept-language", "es-EC")]), Lang::Es);
        // The switcher's cookie wins over the browser.
        let both = [("accept-language", "es-EC"), ("cookie", "a=1; lang=en")];
        assert_eq!(request(&both), Lang::En);
        let bad_cookie = [("accept-language", "es"), ("cookie", "lang=fr")];
        assert_eq!(request(&bad_cookie), Lang::Es);
    }

    #[test]
    fn numbers_are_grouped_the_languages_way() {
        assert_eq!(Lang::En.num(12_345), "12,345");
        assert_eq!(Lang::Es.num(12_345), "12.345");
        assert_eq!(Lang::Es.num(1_234_567), "1.234.567");
        assert_eq!(Lang::En.num(999), "999");
        assert_eq!(Lang::En.num(0), "0");
        assert_eq!(Lang::En.num(-1000), "-1,000");
        assert_eq!(Lang::Es.num(i64::MIN), "-9.223.372.036.854.775.808");
        assert_eq!(Lang::Es.decimal(1.045), "1,04");
        assert_eq!(Lang::En.decimal(37.109), "37.11");
    }

    #[test]
    fn statuses_and_holes_are_translated() {
        assert_eq!(Lang::Es.status("succeeded"), "completada");
        assert_eq!(Lang::En.status("succeeded"), "succeeded");
        assert_eq!(Lang::Es.status("no_such_status"), "no_such_status");
        let text = Lang::Es.fill("flash.secret_replaced", &[("name", &"QBO_REFRESH_TOKEN")]);
        assert_eq!(text, "QBO_REFRESH_TOKEN reemplazado.");
    }
}
