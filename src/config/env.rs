//! `${NAME}` expansion from the environment, shared by every section that holds secrets or paths.

use super::ConfigError;

/// Looks up an environment variable; a parameter so tests need not touch the process environment.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Expands `${NAME}` from the environment; an unset variable is an error naming it. `${$}` is a
/// literal `$`, so a value whose own text holds `${` can be written back (see [`literal`]).
pub fn expand(text: &str, env: EnvLookup) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| invalid(format!("unclosed ${{ in {text:?}")))?;
        let name = &after[..end];
        let value = match name {
            "$" => "$".to_string(),
            _ => env(name).ok_or_else(|| {
                invalid(format!("environment variable {name} is not set (used in the config as ${{{name}}})"))
            })?,
        };
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `text` as a value that [`expand`] reads back as `text`: each `${` is written `${$}{`.
pub fn literal(text: &str) -> String {
    text.replace("${", "${$}{")
}

/// A config error that names the key and what is wrong with it.
pub(super) fn invalid(message: String) -> ConfigError {
    ConfigError::Invalid(message)
}

/// A config error about the value at `key` (dotted, as written in the file: `pool.mode`); the
/// loader turns the key into the value's file and line.
pub(super) fn invalid_at(key: &str, message: String) -> ConfigError {
    ConfigError::Value { key: key.split('.').map(str::to_string).collect(), message }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_literal_dollar_brace_survives_a_second_expansion() {
        let env = |name: &str| (name == "X").then(|| "${Y}".to_string());
        let once = expand("a${X}b", &env).unwrap();
        assert_eq!(once, "a${Y}b");
        assert_eq!(expand(&literal(&once), &env).unwrap(), once);
        assert_eq!(expand("pa$$word ${$}", &env).unwrap(), "pa$$word $", "a lone $ stays as it is");
    }
}
