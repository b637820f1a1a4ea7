//! The catalog: every text of the web UI as (key, English, Spanish), kept as data in
//! `catalog.tsv` beside this file so that a translator edits one line an entry. Texts may hold
//! markup (the program's own, shown with `|safe` where they do) and `{name}` holes filled by
//! [`super::Lang::fill`]. Spanish follows the operators' runbook: *pipeline*, *trigger*,
//! *backfill*, *ventana*, *ejecución* and the field names `fecha_inicio`/`fecha_fin` as they are.

/// The catalog file, compiled in: `key<TAB>English<TAB>Spanish` a line; blank lines and lines
/// that start with `#` are notes.
const CATALOG_TSV: &str = include_str!("catalog.tsv");

/// One line of the catalog file as (key, English, Spanish); `None` for a note, and for a line
/// without exactly three fields (which the catalog's tests refuse).
fn entry(line: &'static str) -> Option<(&'static str, &'static str, &'static str)> {
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let mut fields = line.split('\t');
    match (fields.next(), fields.next(), fields.next(), fields.next()) {
        (Some(key), Some(en), Some(es), None) => Some((key, en, es)),
        _ => None,
    }
}

/// Every entry of the catalog, in the file's order.
pub(super) fn entries() -> impl Iterator<Item = (&'static str, &'static str, &'static str)> {
    CATALOG_TSV.lines().filter_map(entry)
}

/// The lines of the catalog file that are neither a note nor an entry of three fields.
#[cfg(test)]
pub(super) fn malformed_lines() -> Vec<&'static str> {
    CATALOG_TSV
        .lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#') && entry(line).is_none())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::entry;

    #[test]
    fn a_line_is_an_entry_only_with_three_fields() {
        assert_eq!(
            entry("k\tEnglish\tEspañol"),
            Some(("k", "English", "Español"))
        );
        assert_eq!(entry("# a note"), None);
        assert_eq!(entry(""), None);
        assert_eq!(entry("k\tEnglish"), None);
        assert_eq!(entry("k\tEnglish\tEspañol\textra"), None);
    }
}
