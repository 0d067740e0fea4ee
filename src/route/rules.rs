//! Routing rules from `[[routing.rules]]`: ordered, first match wins. Each matcher present must
//! match; a missing matcher matches everything.

use regex::Regex;

use crate::config::RuleSettings;

/// What a rule can look at.
#[derive(Clone, Copy, Debug)]
pub struct RuleContext<'a> {
    pub database: &'a str,
    pub user: &'a str,
    pub application_name: &'a str,
    /// The statement kind, lowercased ("select", "insert", …).
    pub kind: &'a str,
    /// Tables referenced, lowercased, possibly schema-qualified.
    pub tables: &'a [String],
    /// Functions called, lowercased.
    pub functions: &'a [String],
    pub sql: &'a str,
}

/// The compiled rules.
#[derive(Debug, Default)]
pub struct Rules {
    rules: Vec<(RuleSettings, Option<Regex>)>,
}

impl Rules {
    /// Compiles the rules' regexes; an invalid one is an error naming the rule.
    pub fn compile(settings: &[RuleSettings]) -> Result<Self, String> {
        let rules = settings
            .iter()
            .map(|r| {
                let regex = r.regex.as_deref().map(Regex::new).transpose();
                regex.map(|re| (r.clone(), re)).map_err(|e| format!("routing rule {:?}: bad regex: {e}", r.name))
            })
            .collect::<Result<_, _>>()?;
        Ok(Rules { rules })
    }

    /// The first rule matching `ctx`, with its index.
    pub fn first_match(&self, ctx: &RuleContext) -> Option<(usize, &RuleSettings)> {
        self.rules.iter().enumerate().find(|(_, (r, re))| matches(r, re.as_ref(), ctx)).map(|(i, (r, _))| (i, r))
    }

    /// Whether there are any rules at all.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

fn matches(rule: &RuleSettings, regex: Option<&Regex>, ctx: &RuleContext) -> bool {
    let any_of = |list: &[String], value: &str| list.is_empty() || list.iter().any(|v| v == value);
    any_of(&rule.databases, ctx.database)
        && any_of(&rule.users, ctx.user)
        && any_of(&rule.application_names, ctx.application_name)
        && any_of(&rule.kinds, ctx.kind)
        && (rule.tables.is_empty() || rule.tables.iter().any(|t| ctx.tables.iter().any(|r| table_matches(t, r))))
        && (rule.functions.is_empty()
            || rule.functions.iter().any(|f| ctx.functions.iter().any(|c| table_matches(f, c))))
        && regex.is_none_or(|re| re.is_match(ctx.sql))
}

/// `ledger` matches `ledger` and `public.ledger`; `public.ledger` matches only itself.
fn table_matches(rule: &str, referenced: &str) -> bool {
    rule == referenced || (!rule.contains('.') && referenced.rsplit('.').next() == Some(rule))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::classify::RouteTarget;

    /// A rule that matches everything and routes to the primary, as `f` changes it.
    pub(crate) fn rule(name: &str, f: impl FnOnce(&mut RuleSettings)) -> RuleSettings {
        let mut r = RuleSettings {
            name: name.into(),
            databases: vec![],
            users: vec![],
            application_names: vec![],
            kinds: vec![],
            tables: vec![],
            functions: vec![],
            regex: None,
            route: RouteTarget::Primary,
            max_lag: None,
        };
        f(&mut r);
        r
    }

    fn ctx<'a>(tables: &'a [String], sql: &'a str) -> RuleContext<'a> {
        RuleContext {
            database: "app",
            user: "app",
            application_name: "web",
            kind: "select",
            tables,
            functions: &[],
            sql,
        }
    }

    #[test]
    fn first_match_wins_and_tables_match_bare_names() {
        let rules = Rules::compile(&[
            rule("ledger", |r| r.tables = vec!["ledger".into()]),
            rule("reports", |r| {
                r.application_names = vec!["reports".into()];
                r.route = RouteTarget::Replica;
            }),
            rule("everything", |r| r.route = RouteTarget::Any),
        ])
        .unwrap();
        let t = vec!["public.ledger".to_string()];
        assert_eq!(rules.first_match(&ctx(&t, "select 1")).unwrap().0, 0);
        let t = vec!["accounts".to_string()];
        assert_eq!(rules.first_match(&ctx(&t, "select 1")).unwrap().0, 2);
        let qualified = rules_with(rule("q", |r| r.tables = vec!["audit.ledger".into()]));
        assert!(qualified.first_match(&ctx(&["public.ledger".to_string()], "")).is_none());
        assert!(qualified.first_match(&ctx(&["audit.ledger".to_string()], "")).is_some());
    }

    #[test]
    fn a_qualified_rule_does_not_match_an_unqualified_reference() {
        let qualified = rules_with(rule("q", |r| r.tables = vec!["sales.orders".into()]));
        assert!(qualified.first_match(&ctx(&["orders".to_string()], "")).is_none());
        assert!(qualified.first_match(&ctx(&["sales.orders".to_string()], "")).is_some());
    }

    fn rules_with(r: RuleSettings) -> Rules {
        Rules::compile(&[r]).unwrap()
    }

    #[test]
    fn all_matchers_must_match_and_regex_works() {
        let rules = rules_with(rule("r", |r| {
            r.kinds = vec!["select".into()];
            r.regex = Some("(?i)count\\(\\*\\)".into());
            r.users = vec!["app".into()];
        }));
        assert!(rules.first_match(&ctx(&[], "SELECT COUNT(*) FROM t")).is_some());
        assert!(rules.first_match(&ctx(&[], "SELECT id FROM t")).is_none());
        assert!(Rules::compile(&[rule("bad", |r| r.regex = Some("(".into()))]).unwrap_err().contains("bad"));
    }
}
