//! How validation errors list the spellings a setting accepts, built from each enum's `ALL` so
//! that a message cannot name a value the parser refuses, or miss one it takes.

/// `a, b or c`.
pub(super) fn plain(names: &[&str]) -> String {
    or_list(names.iter().map(|n| n.to_string()).collect())
}

/// `"a", "b" or "c"`.
pub(super) fn quoted(names: &[&str]) -> String {
    or_list(names.iter().map(|n| format!("\"{n}\"")).collect())
}

fn or_list(mut items: Vec<String>) -> String {
    match items.pop() {
        Some(last) if !items.is_empty() => format!("{} or {last}", items.join(", ")),
        last => last.unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_end_with_or() {
        assert_eq!(plain(&["primary", "wait", "error"]), "primary, wait or error");
        assert_eq!(quoted(&["pin", "refuse"]), "\"pin\" or \"refuse\"");
        assert_eq!(quoted(&["only"]), "\"only\"");
        assert_eq!(plain(&[]), "");
    }
}
