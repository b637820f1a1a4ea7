//! Static checks of the container files at the workspace root: `Dockerfile`, `.dockerignore`,
//! `docker-compose.yml`, `docker-compose.demo.yml`, `.env.example` and
//! `deploy/pgadmin/servers.json`. Nothing here builds an image or starts a container; the checks
//! read the files and compare them with each other and with the code (binaries, settings, the
//! simulator's defaults, the health route).
//!
//! Each check is a function from the files' text to a list of problems. The `*_catches_*` tests
//! feed it a broken copy of the real files to show that it can fail.
//!
//! Whether the compose files are valid YAML is asked of PyYAML (`python3`), which also cross-checks
//! the small outline reader used by the other checks; without python3 and PyYAML that one check is
//! skipped with a note. The outline reader understands the block style these files use (block
//! mappings and sequences, flow sequences, block scalars, `&anchor` / `<<: *anchor` merges).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const COMPOSE: &str = "docker-compose.yml";
const COMPOSE_DEMO: &str = "docker-compose.demo.yml";
const DOCKERFILE: &str = "Dockerfile";
const DOCKERIGNORE: &str = ".dockerignore";
const ENV_EXAMPLE: &str = ".env.example";
const SERVERS_JSON: &str = "deploy/pgadmin/servers.json";

const APP_PORT: u16 = 6789;
const PGADMIN_PORT: u16 = 5050;
const POSTGRES_PORT: u16 = 5432;

// ---------------------------------------------------------------------------------------------
// The files

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(root: &Path, rel: &str) -> String {
    let path = root.join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

#[derive(Clone)]
struct Files {
    root: PathBuf,
    compose: String,
    compose_demo: String,
    dockerfile: String,
    dockerignore: String,
    env_example: String,
    servers_json: String,
    cargo_toml: String,
    /// `crates/qbo-sim/src/main.rs`, for the simulator's default credentials.
    sim_main: String,
    /// Every `.rs` file under `crates/qbo-backfill/src`, concatenated.
    app_source: String,
}

impl Files {
    fn load() -> Self {
        let root = workspace_root();
        let mut app_source = String::new();
        collect_rust_sources(&root.join("crates/qbo-backfill/src"), &mut app_source);
        Self {
            compose: read(&root, COMPOSE),
            compose_demo: read(&root, COMPOSE_DEMO),
            dockerfile: read(&root, DOCKERFILE),
            dockerignore: read(&root, DOCKERIGNORE),
            env_example: read(&root, ENV_EXAMPLE),
            servers_json: read(&root, SERVERS_JSON),
            cargo_toml: read(&root, "Cargo.toml"),
            sim_main: read(&root, "crates/qbo-sim/src/main.rs"),
            app_source,
            root,
        }
    }

    fn composes(&self) -> [(&'static str, &str); 2] {
        [(COMPOSE, &self.compose), (COMPOSE_DEMO, &self.compose_demo)]
    }
}

fn collect_rust_sources(dir: &Path, out: &mut String) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect_rust_sources(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push_str(&std::fs::read_to_string(&path).expect("readable source"));
            out.push('\n');
        }
    }
}

/// Asserts that `problems` is empty, listing them otherwise.
fn assert_clean(what: &str, problems: &[String]) {
    assert!(
        problems.is_empty(),
        "{what}:\n  - {}",
        problems.join("\n  - ")
    );
}

/// Replaces `from` by `to` in `text`, asserting that `from` is there (so a mutation test cannot
/// silently test the unmodified file).
fn mutate(text: &str, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "the mutation target {from:?} is not in the file"
    );
    text.replacen(from, to, 1)
}

// ---------------------------------------------------------------------------------------------
// A small outline reader for the compose files

#[derive(Debug)]
struct YamlLine<'a> {
    indent: usize,
    /// The line without indentation and without a trailing comment (block scalar lines keep
    /// their text as is).
    text: &'a str,
    in_block_scalar: bool,
}

struct Yaml<'a> {
    lines: Vec<YamlLine<'a>>,
    /// `&name` → the line that defines it.
    anchors: BTreeMap<&'a str, usize>,
}

/// `text` up to a `#` that starts a comment (outside quotes, at the start or after a space).
fn strip_comment(text: &str) -> &str {
    let (mut single, mut double) = (false, false);
    let mut previous = ' ';
    for (i, c) in text.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single && previous != '\\' => double = !double,
            '#' if !single && !double && previous.is_whitespace() => return &text[..i],
            _ => {}
        }
        previous = c;
    }
    text
}

/// `key: value` → (`key`, `value`); `None` for list items and plain scalars.
fn split_key(text: &str) -> Option<(&str, &str)> {
    if text.starts_with("- ") || text == "-" {
        return None;
    }
    let (mut single, mut double) = (false, false);
    let bytes = text.as_bytes();
    for (i, c) in text.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            ':' if !single && !double && (i + 1 == text.len() || bytes[i + 1] == b' ') => {
                return Some((unquote(text[..i].trim()), text[i + 1..].trim()));
            }
            _ => {}
        }
    }
    None
}

fn unquote(s: &str) -> &str {
    let s = s.trim();
    for q in ['"', '\''] {
        if s.len() >= 2 && s.starts_with(q) && s.ends_with(q) {
            return &s[1..s.len() - 1];
        }
    }
    s
}

fn is_block_scalar_indicator(value: &str) -> bool {
    let v = value.trim_start_matches('&');
    let v = v.rsplit(' ').next().unwrap_or(v);
    matches!(v, "|" | "|-" | "|+" | ">" | ">-" | ">+")
}

fn parse_yaml(text: &str) -> Yaml<'_> {
    let mut lines = Vec::new();
    let mut scalar_parent: Option<usize> = None;
    for raw in text.lines() {
        let trimmed = raw.trim_start();
        if trimmed.is_empty() {
            continue;
        }
        let indent = raw.len() - trimmed.len();
        if let Some(parent) = scalar_parent {
            if indent > parent {
                lines.push(YamlLine {
                    indent,
                    text: trimmed.trim_end(),
                    in_block_scalar: true,
                });
                continue;
            }
            scalar_parent = None;
        }
        if trimmed.starts_with('#') {
            continue;
        }
        let text = strip_comment(trimmed).trim_end();
        let value = split_key(text)
            .map(|(_, v)| v)
            .or_else(|| text.strip_prefix("- "));
        if value.is_some_and(is_block_scalar_indicator) {
            scalar_parent = Some(indent);
        }
        lines.push(YamlLine {
            indent,
            text,
            in_block_scalar: false,
        });
    }
    let mut anchors = BTreeMap::new();
    for (i, line) in lines.iter().enumerate() {
        if line.in_block_scalar {
            continue;
        }
        if let Some(name) = split_key(line.text).and_then(|(_, v)| v.strip_prefix('&')) {
            anchors.insert(name.trim(), i);
        }
    }
    Yaml { lines, anchors }
}

/// A block of sibling entries: `yaml.lines[start..end]`, whose first line has the block's indent.
#[derive(Clone, Copy)]
struct Block<'y, 'a> {
    yaml: &'y Yaml<'a>,
    start: usize,
    end: usize,
}

impl<'y, 'a> Block<'y, 'a> {
    fn document(yaml: &'y Yaml<'a>) -> Self {
        Self {
            yaml,
            start: 0,
            end: yaml.lines.len(),
        }
    }

    /// The lines nested under line `i`.
    fn children_of(yaml: &'y Yaml<'a>, i: usize) -> Self {
        let indent = yaml.lines[i].indent;
        let mut end = i + 1;
        while end < yaml.lines.len() && yaml.lines[end].indent > indent {
            end += 1;
        }
        Self {
            yaml,
            start: i + 1,
            end,
        }
    }

    fn lines(&self) -> &'y [YamlLine<'a>] {
        &self.yaml.lines[self.start..self.end]
    }

    fn base_indent(&self) -> Option<usize> {
        self.lines().first().map(|l| l.indent)
    }

    /// `(key, value, children)` of the block's own entries, then those merged with `<<: *name`
    /// (own keys win, as in YAML).
    fn entries(&self) -> Vec<(&'a str, &'a str, Block<'y, 'a>)> {
        let Some(base) = self.base_indent() else {
            return Vec::new();
        };
        let mut own = Vec::new();
        let mut merged = Vec::new();
        for i in self.start..self.end {
            let line = &self.yaml.lines[i];
            if line.indent != base || line.in_block_scalar {
                continue;
            }
            let Some((key, value)) = split_key(line.text) else {
                continue;
            };
            if key == "<<" {
                if let Some(&at) = value
                    .strip_prefix('*')
                    .and_then(|name| self.yaml.anchors.get(name.trim()))
                {
                    merged.extend(Block::children_of(self.yaml, at).entries());
                }
            } else {
                own.push((key, value, Block::children_of(self.yaml, i)));
            }
        }
        for entry in merged {
            if !own.iter().any(|(k, _, _)| *k == entry.0) {
                own.push(entry);
            }
        }
        own
    }

    /// The value and children of `key`, following an `*alias` value to its anchor.
    fn get(&self, key: &str) -> Option<(&'a str, Block<'y, 'a>)> {
        let (_, value, children) = self.entries().into_iter().find(|(k, _, _)| *k == key)?;
        if let Some(&at) = value
            .strip_prefix('*')
            .and_then(|name| self.yaml.anchors.get(name.trim()))
        {
            return Some(("", Block::children_of(self.yaml, at)));
        }
        let value = value.strip_prefix('&').map_or(value, |v| {
            // `key: &anchor` keeps its children; `key: &anchor scalar` keeps the scalar.
            v.split_once(' ').map_or("", |(_, rest)| rest.trim())
        });
        Some((value, children))
    }

    fn path(&self, keys: &[&str]) -> Option<(&'a str, Block<'y, 'a>)> {
        let (first, rest) = keys.split_first()?;
        let (value, children) = self.get(first)?;
        if rest.is_empty() {
            Some((value, children))
        } else {
            children.path(rest)
        }
    }

    /// The items of a block sequence (`- item`) at the block's indent, unquoted.
    fn items(&self) -> Vec<String> {
        let Some(base) = self.base_indent() else {
            return Vec::new();
        };
        self.lines()
            .iter()
            .filter(|l| l.indent == base && !l.in_block_scalar)
            .filter_map(|l| l.text.strip_prefix("- ").or((l.text == "-").then_some("")))
            .map(|item| unquote(item).to_owned())
            .collect()
    }

    /// The whole text of the block (for searches inside a block scalar).
    fn text(&self) -> String {
        self.lines()
            .iter()
            .map(|l| l.text)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A list given either as a flow sequence in `value` or as a block sequence in `children`.
fn list(value: &str, children: Block<'_, '_>) -> Vec<String> {
    let value = value.trim();
    if let Some(inner) = value.strip_prefix('[').and_then(|v| v.strip_suffix(']')) {
        let mut items = Vec::new();
        let mut current = String::new();
        let (mut single, mut double, mut escaped) = (false, false, false);
        for c in inner.chars() {
            if escaped {
                current.push(c);
                escaped = false;
                continue;
            }
            match c {
                '\\' if double => escaped = true,
                '"' if !single => double = !double,
                '\'' if !double => single = !single,
                ',' if !single && !double => {
                    items.push(current.trim().to_owned());
                    current.clear();
                }
                _ => current.push(c),
            }
        }
        if !current.trim().is_empty() {
            items.push(current.trim().to_owned());
        }
        return items;
    }
    if value.is_empty() || value.starts_with('&') {
        return children.items();
    }
    vec![unquote(value).to_owned()]
}

/// `services:` → name → body.
fn services<'y, 'a>(yaml: &'y Yaml<'a>) -> Vec<(&'a str, Block<'y, 'a>)> {
    Block::document(yaml)
        .get("services")
        .map(|(_, body)| {
            body.entries()
                .into_iter()
                .map(|(name, _, service)| (name, service))
                .collect()
        })
        .unwrap_or_default()
}

fn service<'y, 'a>(yaml: &'y Yaml<'a>, name: &str) -> Option<Block<'y, 'a>> {
    services(yaml)
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, s)| s)
}

/// The name of the service running the `postgres` image.
fn postgres_service<'a>(yaml: &Yaml<'a>) -> Option<&'a str> {
    services(yaml).into_iter().find_map(|(name, body)| {
        let (image, _) = body.get("image")?;
        let image = unquote(image);
        (image == "postgres" || image.starts_with("postgres:")).then_some(name)
    })
}

/// `environment:` of a service as name → value (`None` = passed through from .env / the shell).
fn environment(body: Block<'_, '_>) -> BTreeMap<String, Option<String>> {
    let Some((value, children)) = body.get("environment") else {
        return BTreeMap::new();
    };
    let mut env = BTreeMap::new();
    if value.is_empty() || value.starts_with('&') {
        let items = children.items();
        if items.is_empty() {
            for (k, v, _) in children.entries() {
                let v = unquote(v);
                env.insert(k.to_owned(), (!v.is_empty()).then(|| v.to_owned()));
            }
        } else {
            for item in items {
                match item.split_once('=') {
                    Some((k, v)) => env.insert(k.to_owned(), Some(v.to_owned())),
                    None => env.insert(item, None),
                };
            }
        }
    }
    env
}

/// A published port `[ip:]host:container[/proto]` → (host, container).
fn port_mapping(item: &str) -> Option<(u16, u16)> {
    let item = item.split('/').next().unwrap_or(item);
    let parts: Vec<&str> = item.rsplitn(3, ':').collect();
    match parts.as_slice() {
        [container, host, ..] => Some((host.parse().ok()?, container.parse().ok()?)),
        _ => None,
    }
}

/// Variables Compose interpolates in `text`: `$NAME`, `${NAME}`, `${NAME:-x}`, `${NAME:?x}`, …
/// (`$$` is a literal dollar sign).
fn interpolated_variables(text: &str) -> BTreeSet<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '$' {
            i += 1;
            continue;
        }
        match chars.get(i + 1) {
            Some('$') => i += 2,
            Some('{') => {
                let name: String = chars[i + 2..]
                    .iter()
                    .take_while(|c| c.is_ascii_alphanumeric() || **c == '_')
                    .collect();
                i += 2 + name.len();
                if !name.is_empty() {
                    names.insert(name);
                }
            }
            Some(c) if c.is_ascii_alphabetic() || *c == '_' => {
                let name: String = chars[i + 1..]
                    .iter()
                    .take_while(|c| c.is_ascii_alphanumeric() || **c == '_')
                    .collect();
                i += 1 + name.len();
                names.insert(name);
            }
            _ => i += 1,
        }
    }
    names
}

/// `KEY:` lines with no value in environment blocks: variables passed through from .env.
fn pass_through_variables(yaml: &Yaml<'_>) -> BTreeSet<String> {
    let lines = &yaml.lines;
    let mut names = BTreeSet::new();
    for (i, line) in lines.iter().enumerate() {
        let has_children = lines
            .get(i + 1)
            .is_some_and(|next| next.indent > line.indent);
        if line.in_block_scalar || has_children {
            continue;
        }
        if let Some((key, "")) = split_key(line.text)
            && is_env_name(key)
        {
            names.insert(key.to_owned());
        }
    }
    names
}

fn is_env_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && s.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

// ---------------------------------------------------------------------------------------------
// .env.example

struct EnvEntry {
    name: String,
    value: String,
    commented_out: bool,
    line: usize,
}

/// `NAME=value` and `# NAME=value` lines.
fn env_entries(text: &str) -> Vec<EnvEntry> {
    let mut entries = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let (commented_out, body) = match line.strip_prefix('#') {
            Some(rest) => (true, rest.trim()),
            None => (false, line),
        };
        let Some((name, value)) = body.split_once('=') else {
            continue;
        };
        if is_env_name(name) {
            entries.push(EnvEntry {
                name: name.to_owned(),
                value: value.trim().to_owned(),
                commented_out,
                line: i + 1,
            });
        }
    }
    entries
}

fn env_example_names(text: &str) -> BTreeSet<String> {
    env_entries(text).into_iter().map(|e| e.name).collect()
}

/// The settings the app reads from the environment: `env = "X"` (clap), `const …: &str = "X"`
/// and `var("X")` / `env_var("X")` in `crates/qbo-backfill/src`, for names starting with `QBO_`
/// and `DATABASE_URL`.
fn app_settings(source: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (i, _) in source.match_indices('"') {
        let rest = &source[i + 1..];
        let Some(end) = rest.find('"') else { continue };
        let name = &rest[..end];
        if !(name.starts_with("QBO_") || name == "DATABASE_URL") || !is_env_name(name) {
            continue;
        }
        let before = source[..i].trim_end();
        let is_env = ["env =", "&str =", "var(", "var_os(", "env_var("]
            .iter()
            .any(|p| before.ends_with(p));
        if is_env {
            names.insert(name.to_owned());
        }
    }
    names
}

/// Settings read through clap (`env = "X"`): an empty value is a parse error for them.
fn clap_settings(source: &str) -> BTreeSet<String> {
    source
        .match_indices("env = \"")
        .filter_map(|(i, m)| {
            let rest = &source[i + m.len()..];
            rest.find('"').map(|end| rest[..end].to_owned())
        })
        .filter(|n| is_env_name(n))
        .collect()
}

/// A run of 20+ key-like characters with both letters and digits: what a real token, key or
/// password looks like. `/` splits runs, so URL paths do not count (a base64 key keeps long runs
/// between its rare slashes).
fn looks_like_a_secret(value: &str) -> bool {
    value
        .split(|c: char| !(c.is_ascii_alphanumeric() || "+=_-".contains(c)))
        .any(|run| {
            run.len() >= 20
                && run.chars().any(|c| c.is_ascii_digit())
                && run.chars().any(|c| c.is_ascii_alphabetic())
        })
}

fn is_placeholder(value: &str) -> bool {
    let v = value.to_ascii_lowercase();
    v.is_empty() || v.contains("change-me") || v.contains("changeme")
}

fn is_sensitive(name: &str) -> bool {
    ["SECRET", "PASSWORD", "TOKEN"]
        .iter()
        .any(|w| name.contains(w))
        || name.ends_with("_KEY")
}

// ---------------------------------------------------------------------------------------------
// Dockerfile

#[derive(Debug)]
struct Instruction {
    keyword: String,
    args: String,
}

/// Instructions with continuation lines joined; comments dropped.
fn dockerfile_instructions(text: &str) -> Vec<Vec<Instruction>> {
    let mut stages: Vec<Vec<Instruction>> = vec![Vec::new()];
    let mut current = String::new();
    for raw in text.lines() {
        let line = raw.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
            continue;
        }
        let (part, continues) = match line.strip_suffix('\\') {
            Some(p) => (p, true),
            None => (line, false),
        };
        current.push_str(part.trim());
        current.push(' ');
        if continues {
            continue;
        }
        let full = std::mem::take(&mut current);
        let full = full.trim();
        let (keyword, args) = full.split_once(char::is_whitespace).unwrap_or((full, ""));
        let keyword = keyword.to_ascii_uppercase();
        if keyword == "FROM" && !stages.last().is_some_and(Vec::is_empty) {
            stages.push(Vec::new());
        }
        stages.last_mut().expect("a stage").push(Instruction {
            keyword,
            args: args.trim().to_owned(),
        });
    }
    stages
}

/// Exec form (`["a", "b"]`) or shell form split on whitespace.
fn exec_or_shell_words(args: &str) -> Vec<String> {
    if args.trim_start().starts_with('[') {
        serde_json::from_str::<Vec<String>>(args.trim()).unwrap_or_default()
    } else {
        args.split_whitespace().map(str::to_owned).collect()
    }
}

fn stage_args<'s>(stage: &'s [Instruction], keyword: &str) -> Vec<&'s str> {
    stage
        .iter()
        .filter(|i| i.keyword == keyword)
        .map(|i| i.args.as_str())
        .collect()
}

/// `rust-version = "…"` of the workspace.
fn workspace_rust_version(cargo_toml: &str) -> Option<String> {
    cargo_toml.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == "rust-version").then(|| v.trim().trim_matches('"').to_owned())
    })
}

/// `(package, binary)` for every `[[bin]]` of the workspace members (or the package itself when
/// it has `src/main.rs` and no `[[bin]]`).
fn workspace_binaries(root: &Path, cargo_toml: &str) -> Vec<(String, String)> {
    let members_line = cargo_toml
        .split_once("members")
        .and_then(|(_, rest)| rest.split_once('['))
        .and_then(|(_, rest)| rest.split_once(']'))
        .map(|(inside, _)| inside)
        .unwrap_or_default();
    let mut bins = Vec::new();
    for member in members_line.split(',').map(|m| m.trim().trim_matches('"')) {
        if member.is_empty() {
            continue;
        }
        let manifest = read(root, &format!("{member}/Cargo.toml"));
        let mut package = None;
        let mut section = String::new();
        let mut member_bins = Vec::new();
        for line in manifest.lines().map(str::trim) {
            if line.starts_with('[') {
                section = line.to_owned();
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            let v = v.trim().trim_matches('"').to_owned();
            match (section.as_str(), k.trim()) {
                ("[package]", "name") => package = Some(v),
                ("[[bin]]", "name") => member_bins.push(v),
                _ => {}
            }
        }
        let package = package.unwrap_or_else(|| panic!("{member}/Cargo.toml has no name"));
        if member_bins.is_empty() && root.join(member).join("src/main.rs").exists() {
            member_bins.push(package.clone());
        }
        bins.extend(member_bins.into_iter().map(|b| (package.clone(), b)));
    }
    bins
}

/// Minimal `.dockerignore` semantics (last matching pattern wins, `!` re-includes, a pattern
/// matching a parent directory matches its contents, `*` `?` `**` globs).
fn dockerignore_excludes(ignore: &str, path: &str) -> bool {
    let components: Vec<&str> = path.split('/').collect();
    let mut excluded = false;
    for raw in ignore.lines() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (negated, pattern) = match line.strip_prefix('!') {
            Some(p) => (true, p.trim()),
            None => (false, line),
        };
        let pattern = pattern.trim_start_matches("./").trim_matches('/');
        let pattern: Vec<&str> = pattern.split('/').collect();
        let matches = (1..=components.len()).any(|n| glob_path(&pattern, &components[..n]));
        if matches {
            excluded = !negated;
        }
    }
    excluded
}

fn glob_path(pattern: &[&str], path: &[&str]) -> bool {
    match (pattern.split_first(), path.split_first()) {
        (None, None) => true,
        (Some((&"**", rest)), _) => {
            glob_path(rest, path) || (!path.is_empty() && glob_path(pattern, &path[1..]))
        }
        (Some((p, prest)), Some((s, srest))) => glob_segment(p, s) && glob_path(prest, srest),
        _ => false,
    }
}

fn glob_segment(pattern: &str, s: &str) -> bool {
    fn go(p: &[char], s: &[char]) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some(('*', rest)) => (0..=s.len()).any(|k| go(rest, &s[k..])),
            Some(('?', rest)) => !s.is_empty() && go(rest, &s[1..]),
            Some((c, rest)) => s.first() == Some(c) && go(rest, &s[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = s.chars().collect();
    go(&p, &s)
}

// ---------------------------------------------------------------------------------------------
// The checks

/// The document as JSON, parsed by PyYAML (`Ok(None)` when python3 or PyYAML is missing, with a
/// note; `Err` with the parser's message when the text is not valid YAML).
fn yaml_to_json(name: &str, text: &str) -> Result<Option<serde_json::Value>, String> {
    const SCRIPT: &str = r#"
import json, sys
try:
    import yaml
except ImportError:
    sys.exit(3)
class Loader(yaml.SafeLoader):
    pass
def tagged(loader, node):
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node)
    return loader.construct_scalar(node)
for tag in ("!reset", "!override"):
    Loader.add_constructor(tag, tagged)
try:
    doc = yaml.load(sys.stdin.read(), Loader=Loader)
except yaml.YAMLError as e:
    print(" ".join(str(e).split()))
    sys.exit(1)
json.dump(doc, sys.stdout)
"#;
    let child = Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        println!("note: python3 is not available; skipping the YAML parse of {name}");
        return Ok(None);
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to python3");
    let out = child.wait_with_output().expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    match out.status.code() {
        Some(0) => serde_json::from_str(&stdout)
            .map(Some)
            .map_err(|e| format!("{name}: unreadable YAML → JSON: {e}")),
        Some(3) => {
            println!("note: PyYAML is not installed; skipping the YAML parse of {name}");
            Ok(None)
        }
        _ => Err(format!(
            "{name} is not valid YAML: {}{}",
            stdout.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}

/// The parsed document has a `services` mapping of mappings, and the outline reader (used by
/// the other checks) sees the same services with the same keys in `text`.
fn outline_problems(name: &str, text: &str, doc: &serde_json::Value) -> Vec<String> {
    let Some(parsed) = doc.get("services").and_then(|s| s.as_object()) else {
        return vec![format!("{name} has no `services` mapping")];
    };
    let mut problems = Vec::new();
    let yaml = parse_yaml(text);
    let outline: BTreeMap<&str, BTreeSet<&str>> = services(&yaml)
        .into_iter()
        .map(|(n, body)| (n, body.entries().into_iter().map(|(k, _, _)| k).collect()))
        .collect();
    for (service_name, body) in parsed {
        let Some(keys) = body.as_object() else {
            problems.push(format!("{name}: service {service_name} is not a mapping"));
            continue;
        };
        let keys: BTreeSet<&str> = keys.keys().map(String::as_str).collect();
        match outline.get(service_name.as_str()) {
            Some(seen) if *seen == keys => {}
            seen => problems.push(format!(
                "{name}: service {service_name}: the outline reader sees keys {seen:?}, YAML has {keys:?}"
            )),
        }
    }
    for service_name in outline.keys() {
        if !parsed.contains_key(*service_name) {
            problems.push(format!(
                "{name}: the outline reader sees a service {service_name} that YAML does not"
            ));
        }
    }
    problems
}

/// Every file the compose files name exists: build contexts, Dockerfiles, bind-mounted files;
/// every named volume is declared.
fn named_files_problems(files: &Files) -> Vec<String> {
    let mut problems = Vec::new();
    let (mut contexts, mut binds) = (0, 0);
    let base = parse_yaml(&files.compose);
    let declared_volumes: BTreeSet<&str> = Block::document(&base)
        .get("volumes")
        .map(|(_, b)| b.entries().into_iter().map(|(k, _, _)| k).collect())
        .unwrap_or_default();
    for (name, text) in files.composes() {
        let yaml = parse_yaml(text);
        for (service_name, body) in services(&yaml) {
            if let Some((value, children)) = body.get("build") {
                let (context, dockerfile) = if value.is_empty() {
                    (
                        children.get("context").map_or(".", |(v, _)| unquote(v)),
                        children
                            .get("dockerfile")
                            .map_or(DOCKERFILE, |(v, _)| unquote(v)),
                    )
                } else {
                    (unquote(value), DOCKERFILE)
                };
                contexts += 1;
                let dir = files.root.join(context);
                if !dir.is_dir() {
                    problems.push(format!(
                        "{name}: {service_name}: build context {context} is not a directory"
                    ));
                } else if !dir.join(dockerfile).is_file() {
                    problems.push(format!(
                        "{name}: {service_name}: {context}/{dockerfile} does not exist"
                    ));
                }
            }
            let volumes = body
                .get("volumes")
                .map(|(v, c)| list(v, c))
                .unwrap_or_default();
            for volume in volumes {
                let source = volume.split(':').next().unwrap_or_default();
                if source.starts_with('.') || source.starts_with('/') {
                    binds += 1;
                    if source.starts_with('/') {
                        problems.push(format!(
                            "{name}: {service_name}: {source} is an absolute host path"
                        ));
                    } else if !files.root.join(source).exists() {
                        problems.push(format!(
                            "{name}: {service_name}: mounted file {source} does not exist"
                        ));
                    }
                } else if !declared_volumes.contains(source) {
                    problems.push(format!(
                        "{name}: {service_name}: volume {source} is not declared under `volumes:` in {COMPOSE}"
                    ));
                }
            }
            for env_file in body
                .get("env_file")
                .map(|(v, c)| list(v, c))
                .unwrap_or_default()
            {
                if !files.root.join(&env_file).exists() {
                    problems.push(format!(
                        "{name}: {service_name}: env_file {env_file} is missing"
                    ));
                }
            }
        }
    }
    if contexts == 0 || binds == 0 {
        problems.push(format!(
            "found {contexts} build contexts and {binds} bind mounts: the compose files should build the image and mount the pgAdmin servers file"
        ));
    }
    problems
}

/// Every variable the compose files use is in `.env.example`; every setting the app reads is in
/// `.env.example` and reaches the app and the workers (or is given on their command lines).
fn variables_problems(files: &Files) -> Vec<String> {
    let mut problems = Vec::new();
    let documented = env_example_names(&files.env_example);
    for (name, text) in files.composes() {
        let yaml = parse_yaml(text);
        let used = interpolated_variables(text)
            .into_iter()
            .chain(pass_through_variables(&yaml));
        for var in used {
            if !documented.contains(&var) {
                problems.push(format!(
                    "{name} uses {var}, which {ENV_EXAMPLE} does not list"
                ));
            }
        }
    }
    let settings = app_settings(&files.app_source);
    if !settings.contains("DATABASE_URL") || !settings.contains("QBO_CLIENT_ID") {
        problems.push(format!(
            "found only {settings:?} in crates/qbo-backfill/src: the settings scan is broken"
        ));
    }
    let yaml = parse_yaml(&files.compose);
    let mut passed: BTreeSet<String> = BTreeSet::new();
    let mut commands = String::new();
    for service_name in ["app", "worker"] {
        let Some(body) = service(&yaml, service_name) else {
            problems.push(format!("{COMPOSE} has no {service_name} service"));
            continue;
        };
        passed.extend(environment(body).into_keys());
        if let Some((v, c)) = body.get("command") {
            commands.push_str(&list(v, c).join(" "));
            commands.push('\n');
        }
    }
    for setting in &settings {
        if !documented.contains(setting) {
            problems.push(format!(
                "the app reads {setting}, which {ENV_EXAMPLE} does not list"
            ));
        }
        let flag = match setting.as_str() {
            "QBO_BACKFILL_BIND" => Some("--bind"),
            "QBO_BACKFILL_WORKERS" => Some("--workers"),
            _ => None,
        };
        let on_command_line = flag.is_some_and(|f| commands.contains(f));
        if !passed.contains(setting) && !on_command_line {
            problems.push(format!(
                "the app reads {setting}, which {COMPOSE} passes neither to app nor to worker"
            ));
        }
    }
    problems
}

/// `.env.example`: well formed, one comment per setting, no duplicates, nothing that looks like
/// a real secret, a URL-safe database password placeholder, no empty numeric setting.
fn env_example_problems(files: &Files) -> Vec<String> {
    let text = &files.env_example;
    let mut problems = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    for (i, raw) in lines.iter().enumerate() {
        let line = raw.trim();
        let is_assignment = line
            .split_once('=')
            .is_some_and(|(name, _)| is_env_name(name));
        if !(line.is_empty() || line.starts_with('#') || is_assignment) {
            problems.push(format!("{ENV_EXAMPLE}:{}: not NAME=value: {line}", i + 1));
        }
    }
    let entries = env_entries(text);
    let mut seen = BTreeSet::new();
    let clap = clap_settings(&files.app_source);
    for entry in &entries {
        let at = format!("{ENV_EXAMPLE}:{}", entry.line);
        if !seen.insert(entry.name.clone()) {
            problems.push(format!("{at}: {} is listed twice", entry.name));
        }
        let previous = entry
            .line
            .checked_sub(2)
            .and_then(|i| lines.get(i))
            .map(|l| l.trim());
        let described = previous
            .is_some_and(|p| p.starts_with('#') && !env_entries(p).iter().any(|e| e.commented_out));
        if !described {
            problems.push(format!(
                "{at}: {} has no one-line comment right above it",
                entry.name
            ));
        }
        if is_sensitive(&entry.name) && !is_placeholder(&entry.value) {
            problems.push(format!(
                "{at}: {} must be empty or a placeholder such as change-me",
                entry.name
            ));
        }
        if url_password(&entry.value).is_some_and(|p| !is_placeholder(p)) {
            problems.push(format!("{at}: the URL in {} holds a password", entry.name));
        }
        if !entry.commented_out && entry.value.is_empty() && clap.contains(&entry.name) {
            problems.push(format!(
                "{at}: {} is empty, which the app rejects; comment it out to keep the default",
                entry.name
            ));
        }
        if entry.name == "POSTGRES_PASSWORD"
            && !entry
                .value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._~-".contains(c))
        {
            problems.push(format!(
                "{at}: POSTGRES_PASSWORD goes into DATABASE_URL: use only A-Z a-z 0-9 . _ ~ -"
            ));
        }
    }
    for (i, line) in lines.iter().enumerate() {
        // Values, and the text of comments; not the names.
        let checked = env_entries(line).first().map_or(*line, |e| {
            line.split_once(&format!("{}=", e.name))
                .map_or("", |(_, v)| v)
        });
        if looks_like_a_secret(checked) {
            problems.push(format!(
                "{ENV_EXAMPLE}:{}: looks like a real key or token: {line}",
                i + 1
            ));
        }
    }
    if !entries.iter().any(|e| e.name == "POSTGRES_PASSWORD") {
        problems.push(format!("{ENV_EXAMPLE} does not set POSTGRES_PASSWORD"));
    }
    problems
}

/// The password of `scheme://user:password@host…`, if any.
fn url_password(value: &str) -> Option<&str> {
    let rest = value.split_once("://")?.1;
    let userinfo = rest.rsplit_once('@')?.0;
    userinfo.split_once(':').map(|(_, p)| p)
}

/// The Dockerfile builds the workspace's binaries with `--locked` on the workspace's Rust, and
/// its runtime stage is the one the compose files expect; `.dockerignore` keeps secrets and build
/// output out of the context but not what the Dockerfile copies.
fn dockerfile_problems(files: &Files) -> Vec<String> {
    let mut problems = Vec::new();
    let stages = dockerfile_instructions(&files.dockerfile);
    let (Some(builder), Some(runtime)) = (stages.first(), stages.last()) else {
        return vec![format!("{DOCKERFILE} has no stages")];
    };
    if stages.len() < 2 {
        problems.push(format!("{DOCKERFILE} is not multi-stage"));
    }
    // A `# syntax=` directive makes BuildKit pull a frontend image before the first step, which
    // fails where Docker Hub cannot be reached; the built-in frontend has all this file uses
    // (docs/DEPLOY.md).
    if files
        .dockerfile
        .lines()
        .take_while(|line| line.starts_with('#'))
        .any(|line| {
            line.trim_start_matches('#')
                .trim_start()
                .starts_with("syntax=")
        })
    {
        problems.push(format!(
            "{DOCKERFILE} starts with a `# syntax=` directive (BuildKit would pull a frontend image)"
        ));
    }

    // Rust version.
    let expected = workspace_rust_version(&files.cargo_toml);
    let from = stage_args(builder, "FROM")
        .first()
        .copied()
        .unwrap_or_default();
    let image = from.split_whitespace().next().unwrap_or_default();
    let tag_version = image
        .strip_prefix("rust:")
        .map(|tag| tag.split('-').next().unwrap_or_default().to_owned());
    match (&expected, &tag_version) {
        (Some(want), Some(have))
            if have == want
                || have
                    .strip_prefix(want.as_str())
                    .is_some_and(|r| r.starts_with('.')) => {}
        _ => problems.push(format!(
            "the builder is `{image}`; the workspace's rust-version is {expected:?}"
        )),
    }

    // The build command.
    let runs = stage_args(builder, "RUN");
    let Some(build) = runs.iter().find(|r| r.contains("cargo build")) else {
        problems.push(format!(
            "the builder stage of {DOCKERFILE} runs no `cargo build`"
        ));
        return problems;
    };
    let words: Vec<&str> = build.split_whitespace().collect();
    for flag in ["--locked", "--release"] {
        if !words.contains(&flag) {
            problems.push(format!("`cargo build` in {DOCKERFILE} lacks {flag}"));
        }
    }
    let binaries = workspace_binaries(&files.root, &files.cargo_toml);
    if binaries.is_empty() {
        problems.push("the workspace has no binaries: the manifest scan is broken".to_owned());
    }
    let named = |flag: &str, value: &str| words.windows(2).any(|w| w[0] == flag && w[1] == value);
    let copies = stage_args(runtime, "COPY").join("\n");
    for (package, binary) in &binaries {
        if !named("-p", package) && !named("--package", package) && !named("--bin", binary) {
            problems.push(format!(
                "`cargo build` in {DOCKERFILE} does not build {binary}"
            ));
        }
        let built_path = format!("release/{binary}");
        let taken_out =
            runs.iter().any(|r| r.contains(&built_path)) || copies.contains(&built_path);
        if !taken_out {
            problems.push(format!(
                "nothing takes target/{built_path} out of the builder"
            ));
        }
        let copied = copies.lines().any(|c| {
            c.starts_with("--from=")
                && c.split_whitespace()
                    .any(|w| w.ends_with(&format!("/{binary}")))
                && c.split_whitespace().last() == Some("/usr/local/bin/")
        });
        if !copied {
            problems.push(format!("{binary} is not copied to /usr/local/bin/"));
        }
    }

    // What the builder copies exists and is not ignored.
    for copy in stage_args(builder, "COPY") {
        let words: Vec<&str> = copy
            .split_whitespace()
            .filter(|w| !w.starts_with("--"))
            .collect();
        let Some((_, sources)) = words.split_last() else {
            continue;
        };
        for source in sources {
            if !files.root.join(source).exists() {
                problems.push(format!(
                    "{DOCKERFILE} copies {source}, which does not exist"
                ));
            }
            if dockerignore_excludes(&files.dockerignore, source) {
                problems.push(format!(
                    "{DOCKERFILE} copies {source}, which {DOCKERIGNORE} excludes"
                ));
            }
        }
    }
    for member in [
        "crates/qbo-backfill/Cargo.toml",
        "crates/qbo-backfill/src/main.rs",
    ] {
        if dockerignore_excludes(&files.dockerignore, member) {
            problems.push(format!("{DOCKERIGNORE} excludes {member}"));
        }
    }
    for secret_or_junk in [".env", "target", ".git", "target/release/qbo-backfill"] {
        if !dockerignore_excludes(&files.dockerignore, secret_or_junk) {
            problems.push(format!(
                "{DOCKERIGNORE} lets {secret_or_junk} into the build context"
            ));
        }
    }

    // The runtime stage.
    let user = stage_args(runtime, "USER")
        .last()
        .copied()
        .unwrap_or("root");
    let user_name = user.split(':').next().unwrap_or(user);
    if user_name == "root" || user_name == "0" {
        problems.push(format!("the image runs as root (USER {user})"));
    }
    if !stage_args(runtime, "EXPOSE").iter().any(|e| {
        e.split_whitespace()
            .any(|p| p.split('/').next() == Some("6789"))
    }) {
        problems.push(format!("the runtime stage does not EXPOSE {APP_PORT}"));
    }
    let installs = stage_args(runtime, "RUN")
        .into_iter()
        .filter(|r| r.contains("apt-get install"))
        .collect::<Vec<_>>()
        .join(" ");
    let installed: BTreeSet<&str> = installs.split_whitespace().collect();
    if !installed.contains("ca-certificates") {
        problems.push("the runtime stage does not install ca-certificates".to_owned());
    }
    match stage_args(runtime, "HEALTHCHECK").last() {
        None => problems.push(format!("{DOCKERFILE} has no HEALTHCHECK")),
        Some(check) => {
            let command = check.split_once("CMD").map_or("", |(_, c)| c.trim());
            let words = exec_or_shell_words(command);
            let url = words
                .iter()
                .find(|w| w.contains("://"))
                .cloned()
                .unwrap_or_default();
            let expected = format!("http://127.0.0.1:{APP_PORT}/healthz");
            if url != expected {
                problems.push(format!("the HEALTHCHECK asks {url:?}, not {expected}"));
            }
            let tool = words.first().map(String::as_str).unwrap_or_default();
            if !installed.contains(tool) {
                problems.push(format!(
                    "the HEALTHCHECK runs {tool:?}, which the runtime stage does not install"
                ));
            }
        }
    }
    if !files.app_source.contains(".route(\"/healthz\"") {
        problems.push("the server has no /healthz route (crates/qbo-backfill/src)".to_owned());
    }
    let entrypoint = stage_args(runtime, "ENTRYPOINT")
        .last()
        .map(|e| exec_or_shell_words(e))
        .unwrap_or_default();
    if entrypoint != ["qbo-backfill"] {
        problems.push(format!(
            "ENTRYPOINT is {entrypoint:?}, not [\"qbo-backfill\"]"
        ));
    }
    let cmd = stage_args(runtime, "CMD")
        .last()
        .map(|c| exec_or_shell_words(c))
        .unwrap_or_default();
    if cmd.first().map(String::as_str) != Some("serve")
        || !cmd.iter().any(|w| w == &format!("0.0.0.0:{APP_PORT}"))
    {
        problems.push(format!(
            "CMD is {cmd:?}, not serve --bind 0.0.0.0:{APP_PORT}"
        ));
    }
    let env = stage_args(runtime, "ENV").join(" ");
    let key_file = env
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("QBO_BACKFILL_KEY_FILE="));
    let volumes = stage_args(runtime, "VOLUME")
        .iter()
        .flat_map(|v| exec_or_shell_words(v))
        .collect::<Vec<_>>();
    match key_file.and_then(|k| Path::new(k).parent()) {
        Some(dir) if volumes.iter().any(|v| Path::new(v) == dir) => {}
        _ => problems.push(format!(
            "QBO_BACKFILL_KEY_FILE ({key_file:?}) is not in a VOLUME ({volumes:?})"
        )),
    }
    problems
}

/// The pgAdmin servers file points at the compose database service, its port, user and
/// database, and so does the app's DATABASE_URL.
fn servers_problems(files: &Files) -> Vec<String> {
    let mut problems = Vec::new();
    let yaml = parse_yaml(&files.compose);
    let Some(db_service) = postgres_service(&yaml) else {
        return vec![format!(
            "{COMPOSE} has no service running the postgres image"
        )];
    };
    let db = service(&yaml, db_service).expect("the service just found");
    let db_env = environment(db);
    let user = db_env
        .get("POSTGRES_USER")
        .cloned()
        .flatten()
        .unwrap_or_else(|| "postgres".to_owned());
    let database = db_env
        .get("POSTGRES_DB")
        .cloned()
        .flatten()
        .unwrap_or_else(|| user.clone());
    if db_env.contains_key("PGPORT")
        || db
            .get("command")
            .is_some_and(|(v, c)| list(v, c).iter().any(|w| w.contains("port")))
    {
        problems.push(format!("{db_service} does not listen on {POSTGRES_PORT}"));
    }

    let servers: serde_json::Value = match serde_json::from_str(&files.servers_json) {
        Ok(v) => v,
        Err(e) => return vec![format!("{SERVERS_JSON} is not JSON: {e}")],
    };
    let list_of_servers = servers
        .get("Servers")
        .and_then(|s| s.as_object())
        .filter(|s| !s.is_empty());
    let Some(list_of_servers) = list_of_servers else {
        return vec![format!("{SERVERS_JSON} lists no Servers")];
    };
    let pgadmin = service(&yaml, "pgadmin");
    let pgadmin_text = pgadmin.map(|p| p.text()).unwrap_or_default();
    for (id, server) in list_of_servers {
        let field = |name: &str| server.get(name).cloned().unwrap_or_default();
        if field("Host") != db_service {
            problems.push(format!(
                "{SERVERS_JSON} server {id}: Host {} is not the database service {db_service}",
                field("Host")
            ));
        }
        if field("Port") != POSTGRES_PORT {
            problems.push(format!(
                "{SERVERS_JSON} server {id}: Port {} is not {POSTGRES_PORT}",
                field("Port")
            ));
        }
        if field("Username") != user.as_str() {
            problems.push(format!(
                "{SERVERS_JSON} server {id}: Username {} is not POSTGRES_USER {user}",
                field("Username")
            ));
        }
        if field("MaintenanceDB") != database.as_str() {
            problems.push(format!(
                "{SERVERS_JSON} server {id}: MaintenanceDB {} is not POSTGRES_DB {database}",
                field("MaintenanceDB")
            ));
        }
        let passfile = server
            .pointer("/ConnectionParameters/passfile")
            .and_then(|p| p.as_str());
        if let Some(passfile) = passfile {
            if !pgadmin_text.contains(&format!("> {passfile}")) {
                problems.push(format!(
                    "{SERVERS_JSON} server {id}: nothing in the pgadmin service writes {passfile}"
                ));
            }
            if !pgadmin_text.contains(&format!("{db_service}:{POSTGRES_PORT}:")) {
                problems.push(format!(
                    "the pgpass line written by pgadmin does not name {db_service}:{POSTGRES_PORT}"
                ));
            }
        }
    }
    let mounted = pgadmin
        .and_then(|p| p.get("volumes").map(|(v, c)| list(v, c)))
        .unwrap_or_default();
    if !mounted
        .iter()
        .any(|m| m.starts_with(&format!("./{SERVERS_JSON}:/pgadmin4/servers.json")))
    {
        problems.push(format!(
            "pgadmin does not mount ./{SERVERS_JSON} at /pgadmin4/servers.json"
        ));
    }

    // The app's DATABASE_URL names the same server, user and database.
    for service_name in ["app", "worker"] {
        let url = service(&yaml, service_name)
            .and_then(|s| environment(s).get("DATABASE_URL").cloned().flatten())
            .unwrap_or_default();
        let expected_user = format!("postgres://{user}:");
        // TLS is off on the compose network, and must be said (the default off loopback is
        // verify-full).
        let expected_tail = format!("@{db_service}:{POSTGRES_PORT}/{database}?sslmode=disable");
        if !url.starts_with(&expected_user) || !url.ends_with(&expected_tail) {
            problems.push(format!(
                "{service_name}: DATABASE_URL {url:?} is not {expected_user}…{expected_tail}"
            ));
        }
    }
    problems
}

/// Ports 5050 (pgAdmin) and 6789 (the app), a scalable worker, health and start order.
fn services_problems(files: &Files) -> Vec<String> {
    let mut problems = Vec::new();
    let yaml = parse_yaml(&files.compose);
    let ports_of = |name: &str| -> Vec<(u16, u16)> {
        service(&yaml, name)
            .and_then(|s| s.get("ports").map(|(v, c)| list(v, c)))
            .unwrap_or_default()
            .iter()
            .filter_map(|p| port_mapping(p))
            .collect()
    };
    if !ports_of("pgadmin").contains(&(PGADMIN_PORT, 80)) {
        problems.push(format!("pgadmin does not publish {PGADMIN_PORT}:80"));
    }
    if !ports_of("app").contains(&(APP_PORT, APP_PORT)) {
        problems.push(format!("app does not publish {APP_PORT}:{APP_PORT}"));
    }
    if let Some(app) = service(&yaml, "app") {
        let command = app
            .get("command")
            .map(|(v, c)| list(v, c))
            .unwrap_or_default();
        let bind = command
            .windows(2)
            .find(|w| w[0] == "--bind")
            .map(|w| w[1].clone());
        if command.first().map(String::as_str) != Some("serve")
            || bind != Some(format!("0.0.0.0:{APP_PORT}"))
        {
            problems.push(format!(
                "app's command {command:?} is not serve --bind 0.0.0.0:{APP_PORT}"
            ));
        }
        let healthy_db = app
            .path(&[
                "depends_on",
                postgres_service(&yaml).unwrap_or("postgres"),
                "condition",
            ])
            .map(|(v, _)| unquote(v));
        if healthy_db != Some("service_healthy") {
            problems.push("app does not wait for a healthy database".to_owned());
        }
    } else {
        problems.push(format!("{COMPOSE} has no app service"));
    }
    if let Some(db) = postgres_service(&yaml).and_then(|n| service(&yaml, n)) {
        let test = db
            .path(&["healthcheck", "test"])
            .map(|(v, c)| list(v, c).join(" "))
            .unwrap_or_default();
        if !test.contains("pg_isready") {
            problems.push("the database has no pg_isready healthcheck".to_owned());
        }
    }
    for (name, text) in files.composes() {
        let yaml = parse_yaml(text);
        let Some(worker) = service(&yaml, "worker") else {
            problems.push(format!("{name} has no worker service"));
            continue;
        };
        for fixed in ["container_name", "ports", "hostname"] {
            if worker.get(fixed).is_some() {
                problems.push(format!(
                    "{name}: worker sets {fixed}, so `--scale worker=N` cannot start N of them"
                ));
            }
        }
    }
    if let Some(worker) = service(&yaml, "worker") {
        let command = worker
            .get("command")
            .map(|(v, c)| list(v, c))
            .unwrap_or_default();
        if command.first().map(String::as_str) != Some("worker") {
            problems.push(format!("worker's command is {command:?}"));
        }
        // The image's HEALTHCHECK probes the web server, which a worker does not run.
        let disabled = worker
            .path(&["healthcheck", "disable"])
            .is_some_and(|(v, _)| v == "true");
        let own_test = worker.path(&["healthcheck", "test"]).is_some();
        if !disabled && !own_test {
            problems.push("worker inherits the web server's HEALTHCHECK".to_owned());
        }
    }
    problems
}

/// The demo override points the app and the workers at qbo-sim with the simulator's own
/// defaults, on the port it listens on, in a network namespace where that address works.
fn demo_problems(files: &Files) -> Vec<String> {
    let mut problems = Vec::new();
    let yaml = parse_yaml(&files.compose_demo);
    let Some(sim) = service(&yaml, "qbo-sim") else {
        return vec![format!("{COMPOSE_DEMO} has no qbo-sim service")];
    };
    let entrypoint = sim
        .get("entrypoint")
        .map(|(v, c)| list(v, c))
        .unwrap_or_default();
    if entrypoint != ["qbo-sim"] {
        problems.push(format!("qbo-sim's entrypoint is {entrypoint:?}"));
    }
    let command = sim
        .get("command")
        .map(|(v, c)| list(v, c))
        .unwrap_or_default();
    let flag = |name: &str| {
        command
            .windows(2)
            .find(|w| w[0] == name)
            .map(|w| w[1].clone())
    };
    let Some(port) = flag("--port") else {
        return vec![format!("qbo-sim's command {command:?} has no --port")];
    };
    let test = sim
        .path(&["healthcheck", "test"])
        .map(|(v, c)| list(v, c).join(" "))
        .unwrap_or_default();
    if !test.contains(&format!("127.0.0.1:{port}/")) {
        problems.push(format!(
            "qbo-sim's healthcheck does not probe its port {port}: {test}"
        ));
    }

    // The simulator's defaults, from its source.
    let sim_default = |field: &str| -> Option<String> {
        let at = files.sim_main.find(&format!("    {field}: String"))?;
        let attribute = &files.sim_main[files.sim_main[..at].rfind("#[arg(")?..at];
        let rest = attribute.split_once("default_value = \"")?.1;
        Some(rest[..rest.find('"')?].to_owned())
    };
    let expected = [
        ("QBO_CLIENT_ID", sim_default("client_id")),
        ("QBO_CLIENT_SECRET", sim_default("client_secret")),
        ("QBO_REFRESH_TOKEN", sim_default("refresh_token")),
        ("QBO_REALM_ID", sim_default("realm_id")),
    ];
    let sim_listens_on_all = command.iter().any(|w| w == "--host");
    let sim_ports: Vec<(u16, u16)> = sim
        .get("ports")
        .map(|(v, c)| list(v, c))
        .unwrap_or_default()
        .iter()
        .filter_map(|p| port_mapping(p))
        .collect();
    for service_name in ["app", "worker"] {
        let Some(body) = service(&yaml, service_name) else {
            problems.push(format!("{COMPOSE_DEMO} does not override {service_name}"));
            continue;
        };
        let env = environment(body);
        let value = |k: &str| env.get(k).cloned().flatten().unwrap_or_default();
        for (name, want) in &expected {
            match want {
                Some(want) if value(name) == *want => {}
                Some(want) => problems.push(format!(
                    "{service_name}: {name}={:?}, but qbo-sim's default is {want:?}",
                    value(name)
                )),
                None => problems.push(format!(
                    "no default for {name} in crates/qbo-sim/src/main.rs"
                )),
            }
        }
        let network_mode = body.get("network_mode").map(|(v, _)| unquote(v));
        let host = match network_mode {
            Some("service:qbo-sim") => "127.0.0.1".to_owned(),
            _ if sim_listens_on_all => "qbo-sim".to_owned(),
            _ => {
                problems.push(format!(
                    "{service_name} cannot reach qbo-sim, which listens on 127.0.0.1 only: use network_mode service:qbo-sim"
                ));
                continue;
            }
        };
        let base = format!("http://{host}:{port}");
        if value("QBO_API_BASE_URL") != base {
            problems.push(format!(
                "{service_name}: QBO_API_BASE_URL={:?}, expected {base}",
                value("QBO_API_BASE_URL")
            ));
        }
        if value("QBO_TOKEN_URL") != format!("{base}/oauth2/v1/tokens/bearer") {
            problems.push(format!(
                "{service_name}: QBO_TOKEN_URL={:?}, expected {base}/oauth2/v1/tokens/bearer",
                value("QBO_TOKEN_URL")
            ));
        }
        if service_name != "app" {
            continue;
        }
        // "Connect QuickBooks": the browser (on the host) visits qbo-sim's consent page through a
        // port qbo-sim publishes, and comes back to the callback qbo-sim has registered.
        let authorize = value("QBO_AUTHORIZE_URL");
        let consent_reachable = authorize
            .strip_prefix("http://localhost:")
            .or_else(|| authorize.strip_prefix("http://127.0.0.1:"))
            .and_then(|rest| rest.split_once('/'))
            .is_some_and(|(host_port, path)| {
                path == "connect/oauth2"
                    && host_port.parse::<u16>().is_ok_and(|hp| {
                        port.parse::<u16>()
                            .is_ok_and(|sp| sim_ports.contains(&(hp, sp)))
                    })
            });
        if !consent_reachable {
            problems.push(format!(
                "app: QBO_AUTHORIZE_URL={authorize:?} is not qbo-sim's /connect/oauth2 on a port it publishes ({sim_ports:?})"
            ));
        }
        let callback = env
            .get("QBO_REDIRECT_URI")
            .cloned()
            .flatten()
            .unwrap_or_else(|| format!("http://localhost:{APP_PORT}/connect/callback"));
        if flag("--redirect-uri") != Some(callback.clone()) {
            problems.push(format!(
                "qbo-sim registers --redirect-uri {:?}, the app sends {callback}",
                flag("--redirect-uri")
            ));
        }
        if network_mode.is_some() {
            // Published by the namespace's owner instead; `ports: !reset []` drops the base's.
            let reset = body
                .get("ports")
                .is_some_and(|(v, _)| v.replace(' ', "") == "!reset[]");
            if !reset || !sim_ports.contains(&(APP_PORT, APP_PORT)) {
                problems.push(format!(
                    "in the demo, qbo-sim must publish {APP_PORT}:{APP_PORT} for the app and the app's own ports be `!reset []`"
                ));
            }
        }
    }
    problems
}

// ---------------------------------------------------------------------------------------------
// The real files pass

#[test]
fn compose_files_parse_as_yaml() {
    let files = Files::load();
    for (name, text) in files.composes() {
        match yaml_to_json(name, text) {
            Ok(Some(doc)) => assert_clean(name, &outline_problems(name, text, &doc)),
            Ok(None) => {}
            Err(problem) => panic!("{problem}"),
        }
    }
}

#[test]
fn every_file_the_compose_files_name_exists() {
    assert_clean("named files", &named_files_problems(&Files::load()));
}

#[test]
fn every_variable_and_setting_is_in_env_example_and_reaches_the_app() {
    assert_clean("variables", &variables_problems(&Files::load()));
}

#[test]
fn env_example_holds_no_real_looking_secret_and_describes_each_setting() {
    assert_clean(ENV_EXAMPLE, &env_example_problems(&Files::load()));
}

#[test]
fn dockerfile_builds_the_workspace_binaries_locked_on_the_workspace_rust() {
    assert_clean(DOCKERFILE, &dockerfile_problems(&Files::load()));
}

#[test]
fn pgadmin_servers_file_points_at_the_compose_database() {
    assert_clean(SERVERS_JSON, &servers_problems(&Files::load()));
}

#[test]
fn ports_are_5050_and_6789_and_workers_scale() {
    assert_clean("services", &services_problems(&Files::load()));
}

#[test]
fn demo_override_points_app_and_workers_at_the_simulator() {
    assert_clean(COMPOSE_DEMO, &demo_problems(&Files::load()));
}

// ---------------------------------------------------------------------------------------------
// Each check can fail

#[test]
fn yaml_check_catches_broken_yaml_and_a_misread_outline() {
    let files = Files::load();
    let broken = mutate(&files.compose, "  worker:\n", "  worker: [unclosed\n");
    let Ok(Some(demo)) = yaml_to_json(COMPOSE_DEMO, &files.compose_demo) else {
        return; // python3 or PyYAML missing: noted above
    };
    assert!(
        yaml_to_json("broken", &broken).is_err(),
        "broken YAML passed"
    );
    // The outline of one file against the parse of another: the comparison notices.
    assert!(!outline_problems(COMPOSE, &files.compose, &demo).is_empty());
    assert!(
        !outline_problems(
            "no services",
            "name: x\n",
            &serde_json::json!({"name": "x"})
        )
        .is_empty()
    );
}

#[test]
fn named_files_check_catches_a_missing_mount_and_context() {
    let files = Files::load();
    let mut broken = files.clone();
    broken.compose = mutate(
        &files.compose,
        "./deploy/pgadmin/servers.json:",
        "./deploy/pgadmin/nope.json:",
    );
    assert!(!named_files_problems(&broken).is_empty());
    let mut broken = files.clone();
    broken.compose_demo = mutate(&files.compose_demo, "context: .", "context: ./nowhere");
    assert!(!named_files_problems(&broken).is_empty());
    let mut broken = files.clone();
    broken.compose = mutate(&files.compose, "  qbo-data:\n", "");
    assert!(!named_files_problems(&broken).is_empty());
}

#[test]
fn variables_check_catches_undocumented_variables_and_settings() {
    let files = Files::load();
    let mut broken = files.clone();
    broken.compose = mutate(
        &files.compose,
        "image: postgres:16",
        "image: postgres:${PG_MAJOR:-16}",
    );
    assert!(!variables_problems(&broken).is_empty());
    // An unescaped `$name` in a script is interpolated by Compose.
    let mut broken = files.clone();
    broken.compose = mutate(&files.compose, "\"$$escaped\"", "\"$escaped\"");
    assert!(!variables_problems(&broken).is_empty());
    let mut broken = files.clone();
    broken.env_example = mutate(&files.env_example, "# QBO_MAX_RETRIES=6\n", "");
    assert!(!variables_problems(&broken).is_empty());
    let mut broken = files.clone();
    broken.compose = mutate(&files.compose, "  QBO_MAX_RETRIES:\n", "");
    assert!(!variables_problems(&broken).is_empty());
    let mut broken = files.clone();
    broken
        .app_source
        .push_str("\nconst NEW_SETTING: &str = \"QBO_SOMETHING_NEW\";\n");
    assert!(!variables_problems(&broken).is_empty());
}

#[test]
fn env_example_check_catches_secrets_and_undescribed_settings() {
    let files = Files::load();
    for (from, to) in [
        ("QBO_CLIENT_SECRET=\n", "QBO_CLIENT_SECRET=hunter2\n"),
        (
            "QBO_CLIENT_ID=\n",
            "QBO_CLIENT_ID=ABkL9xYp2QrS7tUv3WxZ0aBcD\n",
        ),
        (
            "POSTGRES_PASSWORD=change-me\n",
            "POSTGRES_PASSWORD=change-me@home\n",
        ),
        (
            "# DATABASE_URL=postgres://qbo:change-me@",
            "# DATABASE_URL=postgres://qbo:s3cret@",
        ),
        ("# QBO_MAX_RETRIES=6\n", "QBO_MAX_RETRIES=\n"),
        ("QBO_REALM_ID=\n", "QBO_REALM_ID=\nQBO_REALM_ID=\n"),
        ("# The company (realm) id.\n", ""),
        ("QBO_REALM_ID=\n", "QBO_REALM_ID=\nnot an assignment\n"),
    ] {
        let mut broken = files.clone();
        broken.env_example = mutate(&files.env_example, from, to);
        assert!(
            !env_example_problems(&broken).is_empty(),
            "{from:?} → {to:?} passed"
        );
    }
}

#[test]
fn dockerfile_check_catches_each_requirement() {
    let files = Files::load();
    for (from, to) in [
        ("FROM rust:1.95-slim", "FROM rust:1.94-slim"),
        ("FROM rust:1.95-slim", "FROM rust:1.9-slim"),
        ("--release --locked", "--release"),
        ("-p qbo-sim ", ""),
        (" target/release/qbo-sim /out/", " /out/"),
        ("/out/qbo-sim /usr/local/bin/", "/usr/local/bin/"),
        ("USER 10001:10001", "USER root"),
        ("EXPOSE 6789", "EXPOSE 8080"),
        ("ca-certificates wget", "ca-certificates"),
        ("6789/healthz", "6789/health"),
        ("ENTRYPOINT [\"qbo-backfill\"]", "ENTRYPOINT [\"qbo-sim\"]"),
        (
            "CMD [\"serve\", \"--bind\", \"0.0.0.0:6789\"]",
            "CMD [\"serve\"]",
        ),
        ("VOLUME [\"/var/lib/qbo-backfill\"]", "VOLUME [\"/data\"]"),
        ("COPY crates ./crates", "COPY crates deploy ./"),
        (
            "# qbo-backfill and qbo-sim",
            "# syntax=docker/dockerfile:1\n# qbo-backfill and qbo-sim",
        ),
    ] {
        let mut broken = files.clone();
        broken.dockerfile = mutate(&files.dockerfile, from, to);
        assert!(
            !dockerfile_problems(&broken).is_empty(),
            "{from:?} → {to:?} passed"
        );
    }
    for (from, to) in [
        ("\n*\n", "\n"),
        ("!Cargo.lock\n", ""),
        ("!crates/\n", "!crates/\ncrates/qbo-backfill/src\n"),
    ] {
        let mut broken = files.clone();
        broken.dockerignore = mutate(&files.dockerignore, from, to);
        assert!(
            !dockerfile_problems(&broken).is_empty(),
            "{from:?} → {to:?} passed"
        );
    }
    let mut broken = files.clone();
    broken.cargo_toml = mutate(
        &files.cargo_toml,
        "rust-version = \"1.95\"",
        "rust-version = \"1.96\"",
    );
    assert!(!dockerfile_problems(&broken).is_empty());
}

#[test]
fn servers_check_catches_a_wrong_host_port_user_or_database() {
    let files = Files::load();
    for (from, to) in [
        ("\"Host\": \"postgres\"", "\"Host\": \"db\""),
        ("\"Port\": 5432", "\"Port\": 5433"),
        ("\"Username\": \"qbo\"", "\"Username\": \"postgres\""),
        (
            "\"MaintenanceDB\": \"qbo_backfill\"",
            "\"MaintenanceDB\": \"postgres\"",
        ),
        (
            "\"passfile\": \"/var/lib/pgadmin/.pgpass\"",
            "\"passfile\": \"/pgpass\"",
        ),
    ] {
        let mut broken = files.clone();
        broken.servers_json = mutate(&files.servers_json, from, to);
        assert!(
            !servers_problems(&broken).is_empty(),
            "{from:?} → {to:?} passed"
        );
    }
    for (from, to) in [
        ("POSTGRES_USER: qbo", "POSTGRES_USER: admin"),
        ("  postgres:\n    image:", "  db:\n    image:"),
        ("@postgres:5432/qbo_backfill", "@postgres:5432/other"),
        (":/pgadmin4/servers.json:ro", ":/servers.json:ro"),
    ] {
        let mut broken = files.clone();
        broken.compose = mutate(&files.compose, from, to);
        assert!(
            !servers_problems(&broken).is_empty(),
            "{from:?} → {to:?} passed"
        );
    }
}

#[test]
fn services_check_catches_wrong_ports_and_an_unscalable_worker() {
    let files = Files::load();
    for (from, to) in [
        ("\"127.0.0.1:5050:80\"", "\"127.0.0.1:5051:80\""),
        ("\"127.0.0.1:6789:6789\"", "\"127.0.0.1:8080:6789\""),
        (
            "\"--bind\", \"0.0.0.0:6789\", \"--workers\"",
            "\"--bind\", \"127.0.0.1:6789\", \"--workers\"",
        ),
        (
            "command: [\"worker\", \"--workers\", \"1\"]",
            "command: [\"worker\", \"--workers\", \"1\"]\n    container_name: worker",
        ),
        ("    healthcheck:\n      disable: true\n", ""),
        ("pg_isready", "true"),
    ] {
        let mut broken = files.clone();
        broken.compose = mutate(&files.compose, from, to);
        assert!(
            !services_problems(&broken).is_empty(),
            "{from:?} → {to:?} passed"
        );
    }
    let mut broken = files.clone();
    broken.compose = mutate(
        &files.compose,
        "    depends_on:\n      postgres:\n        condition: service_healthy\n    # SIGTERM",
        "    depends_on:\n      postgres:\n        condition: service_started\n    # SIGTERM",
    );
    assert!(!services_problems(&broken).is_empty());
}

#[test]
fn demo_check_catches_a_wrong_port_credential_or_network() {
    let files = Files::load();
    for (from, to) in [
        ("- --port\n      - \"8080\"", "- --port\n      - \"8081\""),
        ("\"127.0.0.1:18080:8080\"", "\"127.0.0.1:18080:8081\""),
        (
            "localhost:18080/connect/oauth2",
            "localhost:18081/connect/oauth2",
        ),
        (
            "- http://localhost:6789/connect/callback",
            "- http://localhost:6789/callback",
        ),
        ("QBO_CLIENT_ID: sim-client-id", "QBO_CLIENT_ID: my-client"),
        ("QBO_REALM_ID: \"9130350000000001\"", "QBO_REALM_ID: \"1\""),
        ("/oauth2/v1/tokens/bearer", "/oauth2/token"),
        (
            "  worker:\n    network_mode: \"service:qbo-sim\"\n",
            "  worker:\n",
        ),
        ("ports: !reset []", "ports: []"),
        (
            "entrypoint: [\"qbo-sim\"]",
            "entrypoint: [\"qbo-backfill\"]",
        ),
    ] {
        let mut broken = files.clone();
        broken.compose_demo = mutate(&files.compose_demo, from, to);
        assert!(
            !demo_problems(&broken).is_empty(),
            "{from:?} → {to:?} passed"
        );
    }
    let mut broken = files.clone();
    broken.sim_main = mutate(
        &files.sim_main,
        "default_value = \"sim-client-id\"",
        "default_value = \"other\"",
    );
    assert!(!demo_problems(&broken).is_empty());
}

#[test]
fn outline_reader_reads_merges_lists_and_block_scalars() {
    let text = "x-a: &a\n  k: v\n  environment:\n    A: '1'\nservices:\n  s:\n    <<: *a\n    k: own\n    script:\n      - |\n        key: not a key # kept\n    list: [\"a b\", 'c', \"d\\\"e\"]\n    items:\n      - one # comment\n      - \"two\"\n";
    let yaml = parse_yaml(text);
    let s = service(&yaml, "s").expect("service s");
    assert_eq!(s.get("k").map(|(v, _)| v), Some("own"));
    assert_eq!(environment(s).get("A"), Some(&Some("1".to_owned())));
    let (v, c) = s.get("list").expect("list");
    assert_eq!(list(v, c), ["a b", "c", "d\"e"]);
    let (v, c) = s.get("items").expect("items");
    assert_eq!(list(v, c), ["one", "two"]);
    assert!(
        s.get("key").is_none(),
        "a block scalar line was read as a key"
    );
    assert!(s.text().contains("key: not a key # kept"));
    assert_eq!(
        interpolated_variables("$$A ${B} ${C:-x} $D_1 ${E:?m} $"),
        BTreeSet::from([
            "B".to_owned(),
            "C".to_owned(),
            "D_1".to_owned(),
            "E".to_owned()
        ])
    );
    assert_eq!(port_mapping("127.0.0.1:5050:80"), Some((5050, 80)));
    assert_eq!(port_mapping("6789:6789/tcp"), Some((6789, 6789)));
    assert!(dockerignore_excludes(
        "*\n!crates/\ncrates/**/target/\n",
        "crates/a/target/x"
    ));
    assert!(!dockerignore_excludes(
        "*\n!crates/\ncrates/**/target/\n",
        "crates/a/src/x.rs"
    ));
}
