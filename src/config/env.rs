//! `${NAME}` expansion from the environment, shared by every section that holds secrets or paths.

use super::ConfigError;

/// Looks up an environment variable; a parameter so tests need not touch the process environment.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Expands `${NAME}` from the environment; an unset variable is an error naming it.
pub fn expand(text: &str, env: EnvLookup) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| invalid(format!("unclosed ${{ in {text:?}")))?;
        let name = &after[..end];
        let value = env(name).ok_or_else(|| {
            invalid(format!("environment variable {name} is not set (used in the config as ${{{name}}})"))
        })?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A config error that names the key and what is wrong with it.
pub(super) fn invalid(message: String) -> ConfigError {
    ConfigError::Invalid(message)
}
