//! The layers hold: no import cycle between the top-level modules of any crate of the workspace.
//! The module graph is computed from the source (every `crate::<module>` path outside comments
//! and test modules), so a new `use` that ties two layers together fails here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file of `src` belongs to (`store/raw.rs` → `store`).
fn top_module(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src");
    let first = rel
        .components()
        .next()
        .expect("a component")
        .as_os_str()
        .to_string_lossy()
        .into_owned();
    first.trim_end_matches(".rs").to_owned()
}

/// The code of a file without comments and without its test module.
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Edges `from → to` between the top-level modules of the crate whose sources are in `src`.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let from = top_module(src, &file);
        let text = code(&std::fs::read_to_string(&file).expect("read file"));
        let edges = graph.entry(from.clone()).or_default();
        for (i, _) in text.match_indices("crate::") {
            let before = text[..i].chars().last();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue; // `qbo_backfill::crate::` cannot happen; `some_crate::` is not ours.
            }
            let to: String = text[i + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !to.is_empty() && to != from {
                edges.insert(to);
            }
        }
    }
    graph
}

/// A cycle of the graph, as the path that closes it, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn no_crate_has_an_import_cycle_between_its_top_level_modules() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("crates/");
    let mut checked = 0;
    for name in ["qbo", "qbo-sim", "qbo-backfill"] {
        let src = crates.join(name).join("src");
        let graph = module_graph(&src);
        assert!(
            graph.len() > 3,
            "{name}: no modules found under {}",
            src.display()
        );
        if let Some(cycle) = find_cycle(&graph) {
            panic!("{name}: import cycle {}", cycle.join(" → "));
        }
        checked += 1;
    }
    assert_eq!(checked, 3);
    // The layers of qbo-backfill, bottom up: nothing below imports what is above it.
    let graph = module_graph(&crates.join("qbo-backfill").join("src"));
    let imports = |from: &str, to: &str| graph.get(from).is_some_and(|e| e.contains(to));
    for above in [
        "store",
        "pipeline",
        "orchestrator",
        "service",
        "server",
        "cli",
    ] {
        assert!(!imports("domain", above), "domain imports {above}");
    }
    for above in ["pipeline", "orchestrator", "service", "server", "cli"] {
        assert!(!imports("store", above), "store imports {above}");
    }
    for front in ["server", "cli"] {
        for below in ["domain", "store", "pipeline", "orchestrator", "service"] {
            assert!(
                !imports(below, front),
                "{below} imports the front end {front}"
            );
        }
    }
}

#[test]
fn the_cycle_finder_finds_a_cycle() {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    graph.entry("a".into()).or_default().insert("b".into());
    graph.entry("b".into()).or_default().insert("c".into());
    graph.entry("c".into()).or_default().insert("a".into());
    let cycle = find_cycle(&graph).expect("a cycle");
    assert_eq!(cycle.first(), cycle.last());
    assert_eq!(cycle.len(), 4);
    graph.get_mut("c").expect("c").clear();
    assert_eq!(find_cycle(&graph), None);
}

/// The longest a function of `src/` may be, in lines from `fn` to its closing brace.
const MAX_FUNCTION_LINES: usize = 80;

/// `text` with the insides of comments, string, byte-string, raw-string and char literals
/// blanked (newlines kept), so braces and `fn` inside them do not count.
fn blank_literals(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let prev_ident = i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                out.push(blank(chars[i]));
                i += 1;
            }
            out.push_str("  ");
            i += 2;
        } else if c == 'r' && !prev_ident && matches!(next, Some('"' | '#')) {
            let mut j = i + 1;
            while chars.get(j) == Some(&'#') {
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            let hashes = j - i - 1;
            let mut k = j + 1;
            while k < chars.len()
                && !(chars[k] == '"' && (1..=hashes).all(|h| chars.get(k + h) == Some(&'#')))
            {
                k += 1;
            }
            let end = (k + 1 + hashes).min(chars.len());
            out.extend(chars[i..end].iter().map(|&c| blank(c)));
            i = end;
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                let step = if chars[i] == '\\' { 2 } else { 1 };
                for _ in 0..step {
                    if let Some(&ch) = chars.get(i) {
                        out.push(blank(ch));
                    }
                    i += 1;
                }
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' {
            // A char literal ('{', '\n', '\u{7f}'), or a lifetime (left as it is).
            let end = if next == Some('\\') {
                chars[i + 2..]
                    .iter()
                    .position(|&ch| ch == '\'')
                    .map(|p| i + 3 + p)
            } else if chars.get(i + 2) == Some(&'\'') {
                Some(i + 3)
            } else {
                None
            };
            match end {
                Some(end) => {
                    out.extend(chars[i..end].iter().map(|_| ' '));
                    i = end;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Every function of `text` longer than `max` lines: `(name, first line, lines)`.
fn long_functions(text: &str, max: usize) -> Vec<(String, usize, usize)> {
    let code = blank_literals(text);
    let lines: Vec<&str> = code.lines().collect();
    let mut found = Vec::new();
    for (start, line) in lines.iter().enumerate() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some(at) = words.iter().position(|w| *w == "fn") else {
            continue;
        };
        let qualifiers = [
            "pub",
            "pub(crate)",
            "pub(super)",
            "async",
            "const",
            "unsafe",
        ];
        if !words[..at].iter().all(|w| qualifiers.contains(w)) {
            continue;
        }
        let name: String = words
            .get(at + 1)
            .map(|w| {
                w.chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect()
            })
            .unwrap_or_default();
        let mut depth = 0_i64;
        let mut opened = false;
        for (offset, body) in lines[start..].iter().enumerate() {
            if !opened && body.trim_end().ends_with(';') && !body.contains('{') {
                break;
            }
            for ch in body.chars() {
                match ch {
                    '{' => {
                        depth += 1;
                        opened = true;
                    }
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            if opened && depth == 0 {
                if offset + 1 > max {
                    found.push((name.clone(), start + 1, offset + 1));
                }
                break;
            }
        }
    }
    found
}

#[test]
fn no_function_of_any_crate_is_longer_than_80_lines() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("crates/");
    let mut too_long = Vec::new();
    let mut files = 0;
    for name in ["qbo", "qbo-sim", "qbo-backfill"] {
        let mut paths = Vec::new();
        rust_files(&crates.join(name).join("src"), &mut paths);
        for path in paths {
            let text = std::fs::read_to_string(&path).expect("read a source file");
            files += 1;
            for (function, line, lines) in long_functions(&text, MAX_FUNCTION_LINES) {
                too_long.push(format!(
                    "{}:{line} {function} ({lines} lines)",
                    path.display()
                ));
            }
        }
    }
    assert!(files > 50, "only {files} source files found");
    assert!(
        too_long.is_empty(),
        "functions longer than {MAX_FUNCTION_LINES} lines:\n{}",
        too_long.join("\n")
    );
}

#[test]
fn the_length_check_sees_through_strings_and_finds_a_long_function() {
    let body = "    let x = 1;\n".repeat(85);
    let text = format!(
        "fn short() {{\n    let s = \"}}{{\";\n    let c = '{{';\n}}\n\
         pub(crate) async fn long() {{\n{body}}}\n\
         fn raw() {{\n    let r = r#\"}} fn x() {{\"#;\n}}\n"
    );
    let found = long_functions(&text, MAX_FUNCTION_LINES);
    assert_eq!(found, vec![("long".to_owned(), 5, 87)]);
    assert!(long_functions(&text, 100).is_empty());
}
