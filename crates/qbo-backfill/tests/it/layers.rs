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
