//! Routing hints written in SQL comments, `/* pgsplit: route=replica min_lsn=16/B374D848 */` or
//! `-- pgsplit: route=primary`, and the `X/Y` text form of WAL positions (LSNs).

use crate::protocol::lsn::parse_lsn;

use super::{Hints, RouteTarget};

/// The marker that starts a hint inside a comment; matched in any case.
const MARKER: &str = "pgsplit:";

/// Reads the hints of every comment; where comments disagree the strictest wins.
pub(crate) fn scan(comments: &[&str]) -> Hints {
    let mut hints = Hints::default();
    for comment in comments {
        absorb(&mut hints, comment);
    }
    hints
}

/// Adds the hints of one comment (markers included) to `hints`; unknown keys and values are ignored.
fn absorb(hints: &mut Hints, comment: &str) {
    let body = comment.strip_prefix("/*").map_or(comment, |c| c.strip_suffix("*/").unwrap_or(c));
    let Some(at) = find_ignore_case(body, MARKER) else { return };
    let pairs = body[at + MARKER.len()..].split(|c: char| c.is_whitespace() || c == ',');
    for (key, value) in pairs.filter_map(|pair| pair.split_once('=')) {
        let value = value.trim_matches(|c| c == '\'' || c == '"');
        if key.eq_ignore_ascii_case("route") {
            if let Some(route) = RouteTarget::parse(value) {
                hints.route = match hints.route {
                    Some(RouteTarget::Primary) => Some(RouteTarget::Primary),
                    Some(_) if route != RouteTarget::Primary => hints.route,
                    _ => Some(route),
                };
            }
        } else if key.eq_ignore_ascii_case("min_lsn") {
            if let Some(lsn) = parse_lsn(value) {
                hints.min_lsn = Some(hints.min_lsn.map_or(lsn, |old| old.max(lsn)));
            }
        }
    }
}

/// Byte offset of `needle` (ASCII) in `haystack`, ignoring ASCII case.
fn find_ignore_case(haystack: &str, needle: &str) -> Option<usize> {
    haystack.as_bytes().windows(needle.len()).position(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}
