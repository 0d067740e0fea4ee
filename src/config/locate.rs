//! Finds where a value sits in the config text, so that a value validation refuses is reported
//! with its file, line and column, the way the TOML parser already reports an unknown key.

use std::ops::Range;

use toml_edit::{ImDocument, Item, TableLike, Value};

/// The line and column (from 1) of the value at `key`, and that line with the value underlined,
/// as the TOML parser shows its own errors. `None` when the key is not in the text.
pub fn describe(text: &str, key: &[String]) -> Option<String> {
    let doc = ImDocument::parse(text).ok()?;
    let span = span_in(doc.as_table(), key)?;
    let line_start = text[..span.start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[span.start..].find('\n').map_or(text.len(), |i| span.start + i);
    let line_text = text[line_start..line_end].trim_end_matches('\r');
    let line = text[..span.start].matches('\n').count() + 1;
    let column = text[line_start..span.start].chars().count() + 1;
    let width = text[span.start..span.end.min(line_end)].chars().count().max(1);
    let gutter = " ".repeat(line.to_string().len());
    let detail = format!(
        "invalid value at line {line}, column {column}\n{gutter} |\n{line} | {line_text}\n{gutter} | {}{}",
        " ".repeat(column - 1),
        "^".repeat(width)
    );
    Some(detail)
}

/// The span of the value at `key` below `table`; array entries are named by their index.
fn span_in(table: &dyn TableLike, key: &[String]) -> Option<Range<usize>> {
    let (first, rest) = key.split_first()?;
    let item = table.get(first)?;
    if rest.is_empty() {
        return item.span().or_else(|| table.key(first)?.span());
    }
    match item {
        Item::ArrayOfTables(entries) => {
            let (index, rest) = rest.split_first()?;
            let entry = entries.get(index.parse().ok()?)?;
            if rest.is_empty() {
                entry.span()
            } else {
                span_in(entry, rest)
            }
        }
        Item::Value(Value::Array(values)) => {
            let (index, rest) = rest.split_first()?;
            match values.get(index.parse().ok()?)? {
                Value::InlineTable(entry) if !rest.is_empty() => span_in(entry, rest),
                value if rest.is_empty() => value.span(),
                _ => None,
            }
        }
        _ => span_in(item.as_table_like()?, rest),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(path: &str) -> Vec<String> {
        path.split('.').map(str::to_string).collect()
    }

    #[test]
    fn finds_values_in_tables_arrays_and_inline_tables() {
        let text = "[pool]\nsize = 3\nmode = \"transacton\"\n\n[[users]]\nname = \"a\"\n[[users]]\nname = \"b\"\n\
                    auth = \"md6\"\n[databases.app]\nreplicas = [\"h:1\", { addr = \"h:2\", weight = 0 }]\n";
        let detail = describe(text, &key("pool.mode")).unwrap();
        assert!(
            detail.contains("line 3, column 8\n  |\n3 | mode = \"transacton\"\n  |        ^^^^^^^^^^^^"),
            "{detail}"
        );
        assert!(describe(text, &key("users.1.auth")).unwrap().starts_with("invalid value at line 9, column 8\n"));
        let weight = describe(text, &key("databases.app.replicas.1.weight")).unwrap();
        assert!(weight.starts_with("invalid value at line 11, column 45\n"), "{weight}");
        assert_eq!(describe(text, &key("pool.missing")), None);
        assert_eq!(describe(text, &key("users.7.auth")), None);
    }

    #[test]
    fn dotted_keys_and_inline_tables_are_found_too() {
        let text = "log.format = \"yaml\"\npool = { mode = \"x\" }\n";
        assert!(describe(text, &key("log.format")).unwrap().starts_with("invalid value at line 1, column 14\n"));
        assert!(describe(text, &key("pool.mode")).unwrap().starts_with("invalid value at line 2, column 17\n"));
    }
}
