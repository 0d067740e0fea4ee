//! `DEALLOCATE` sent as SQL: pgsplit answers it for statements it prepared itself.

/// A `DEALLOCATE` a client sends as SQL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Deallocate {
    All,
    Name(Vec<u8>),
}

/// Reads `DEALLOCATE [PREPARE] name|ALL [;]`, the whole of a simple query, else `None`.
pub fn deallocate(sql: &[u8]) -> Option<Deallocate> {
    let text = std::str::from_utf8(sql).ok()?.trim().trim_end_matches(';').trim_end();
    let rest = strip_word(text, "deallocate")?;
    let target = strip_word(rest, "prepare").unwrap_or(rest);
    if target.eq_ignore_ascii_case("all") {
        return Some(Deallocate::All);
    }
    let name = match target.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(quoted) if !quoted.replace("\"\"", "").contains('"') => quoted.replace("\"\"", "\""),
        Some(_) => return None,
        None if !target.is_empty() && target.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '$') => {
            target.to_lowercase()
        }
        None => return None,
    };
    Some(Deallocate::Name(name.into_bytes()))
}

/// `text` without its first word `word` (any case) and the white space after it.
fn strip_word<'a>(text: &'a str, word: &str) -> Option<&'a str> {
    let (first, rest) = text.split_once(char::is_whitespace)?;
    first.eq_ignore_ascii_case(word).then(|| rest.trim_start())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deallocate_forms() {
        assert_eq!(deallocate(b"DEALLOCATE s1"), Some(Deallocate::Name(b"s1".to_vec())));
        assert_eq!(deallocate(b"deallocate prepare \"S 1\";"), Some(Deallocate::Name(b"S 1".to_vec())));
        assert_eq!(deallocate(b"DEALLOCATE ALL"), Some(Deallocate::All));
        assert_eq!(deallocate(b"deallocate Foo"), Some(Deallocate::Name(b"foo".to_vec())));
        assert_eq!(deallocate(b"DEALLOCATE s1; select 1"), None);
        assert_eq!(deallocate(b"select 1"), None);
        assert_eq!(deallocate(b"deallocate /* x */ s1"), None);
    }
}
