//! The expression half of the AST walk: every `Expr` variant, so no subquery or call is missed.

use sqlparser::ast::{AccessExpr, Expr, InTarget, Subscript};

use super::Walk;

impl Walk {
    /// Walks one expression into its subqueries, calls and operands.
    pub(super) fn expr(&mut self, e: &Expr) {
        match operands(e) {
            Operands::None => {}
            Operands::One(a) => self.expr(a),
            Operands::Two(a, b) => {
                self.expr(a);
                self.expr(b);
            }
            Operands::Other => self.compound(e),
        }
    }

    /// The variants `operands` leaves: several operands, lists, subqueries and calls.
    fn compound(&mut self, e: &Expr) {
        match e {
            Expr::Like { expr, pattern, escape_char, .. }
            | Expr::ILike { expr, pattern, escape_char, .. }
            | Expr::SimilarTo { expr, pattern, escape_char, .. } => {
                self.expr(expr);
                self.expr(pattern);
                self.opt_expr(escape_char.as_deref());
            }
            Expr::Between { expr, low, high, .. } => {
                self.expr(expr);
                self.expr(low);
                self.expr(high);
            }
            Expr::In { expr, target, .. } => {
                self.expr(expr);
                self.in_target(target);
            }
            Expr::CompoundFieldAccess { root, access_chain } => {
                self.expr(root);
                access_chain.iter().for_each(|a| self.access(a));
            }
            Expr::Convert { .. } | Expr::Substring { .. } | Expr::Trim { .. } | Expr::Overlay { .. } => {
                self.syntax_function(e);
            }
            Expr::Function(f) => self.function(f),
            Expr::Case { operand, conditions, else_result, .. } => {
                self.opt_expr(operand.as_deref());
                conditions.iter().for_each(|c| {
                    self.expr(&c.condition);
                    self.expr(&c.result);
                });
                self.opt_expr(else_result.as_deref());
            }
            Expr::Exists { subquery: q, .. } | Expr::Subquery(q) => self.query(q),
            Expr::GroupingSets(sets) | Expr::Cube(sets) | Expr::Rollup(sets) => {
                sets.iter().for_each(|set| self.exprs(set));
            }
            Expr::Tuple(list)
            | Expr::Struct { values: list, .. }
            | Expr::Array(sqlparser::ast::Array { elem: list, .. }) => {
                self.exprs(list);
            }
            Expr::Dictionary(fields) => fields.iter().for_each(|f| self.expr(&f.value)),
            Expr::Map(map) => map.entries.iter().for_each(|m| {
                self.expr(&m.key);
                self.expr(&m.value);
            }),
            Expr::Interval(interval) => self.expr(&interval.value),
            Expr::Lambda(lambda) => self.expr(&lambda.body),
            Expr::MemberOf(member) => {
                self.expr(&member.value);
                self.expr(&member.array);
            }
            _ => {}
        }
    }

    /// Functions with their own syntax: CONVERT, SUBSTRING, TRIM, OVERLAY.
    fn syntax_function(&mut self, e: &Expr) {
        match e {
            Expr::Convert { expr, styles, .. } => {
                self.expr(expr);
                self.exprs(styles);
            }
            Expr::Substring { expr, substring_from, substring_for, .. } => {
                self.expr(expr);
                self.opt_expr(substring_from.as_deref());
                self.opt_expr(substring_for.as_deref());
            }
            Expr::Trim { expr, trim_what, trim_characters, .. } => {
                self.expr(expr);
                self.opt_expr(trim_what.as_deref());
                self.exprs(trim_characters.as_deref().unwrap_or_default());
            }
            Expr::Overlay { expr, overlay_what, overlay_from, overlay_for } => {
                self.expr(expr);
                self.expr(overlay_what);
                self.expr(overlay_from);
                self.opt_expr(overlay_for.as_deref());
            }
            _ => {}
        }
    }

    fn in_target(&mut self, target: &InTarget) {
        match target {
            InTarget::List(list) => self.exprs(list),
            InTarget::Subquery(q) => self.query(q),
            InTarget::Unnest(e) => self.expr(e),
            InTarget::Table { name, args: None } => self.table(name),
            InTarget::Table { name, args: Some(args) } => {
                self.call(name);
                self.function_args(args);
            }
        }
    }

    fn access(&mut self, access: &AccessExpr) {
        match access {
            AccessExpr::Dot(e) | AccessExpr::Subscript(Subscript::Index { index: e }) => self.expr(e),
            AccessExpr::Subscript(Subscript::Slice { lower_bound, upper_bound, stride }) => {
                for e in [lower_bound, upper_bound, stride] {
                    self.opt_expr(e.as_ref());
                }
            }
        }
    }
}

/// The operands of the simple variants; this match is exhaustive so that a new sqlparser variant
/// must be sorted here before it compiles.
fn operands(e: &Expr) -> Operands<'_> {
    match e {
        Expr::Identifier(_)
        | Expr::CompoundIdentifier(_)
        | Expr::Value(_)
        | Expr::TypedString(_)
        | Expr::Wildcard(_)
        | Expr::QualifiedWildcard(..)
        | Expr::MatchAgainst { .. } => Operands::None,
        Expr::IsFalse(e)
        | Expr::IsNotFalse(e)
        | Expr::IsTrue(e)
        | Expr::IsNotTrue(e)
        | Expr::IsNull(e)
        | Expr::IsNotNull(e)
        | Expr::IsUnknown(e)
        | Expr::IsNotUnknown(e)
        | Expr::IsJson { expr: e, .. }
        | Expr::IsNormalized { expr: e, .. }
        | Expr::UnaryOp { expr: e, .. }
        | Expr::Cast { expr: e, .. }
        | Expr::Extract { expr: e, .. }
        | Expr::Ceil { expr: e, .. }
        | Expr::Floor { expr: e, .. }
        | Expr::Collate { expr: e, .. }
        | Expr::Nested(e)
        | Expr::Prefixed { value: e, .. }
        | Expr::Named { expr: e, .. }
        | Expr::OuterJoin(e)
        | Expr::Prior(e)
        | Expr::JsonAccess { value: e, .. } => Operands::One(e),
        Expr::IsDistinctFrom(a, b)
        | Expr::IsNotDistinctFrom(a, b)
        | Expr::BinaryOp { left: a, right: b, .. }
        | Expr::AnyOp { left: a, right: b, .. }
        | Expr::AllOp { left: a, right: b, .. }
        | Expr::AtTimeZone { timestamp: a, time_zone: b }
        | Expr::Position { expr: a, r#in: b }
        | Expr::RLike { expr: a, pattern: b, .. } => Operands::Two(a, b),
        Expr::Like { .. }
        | Expr::ILike { .. }
        | Expr::SimilarTo { .. }
        | Expr::Between { .. }
        | Expr::In { .. }
        | Expr::CompoundFieldAccess { .. }
        | Expr::Convert { .. }
        | Expr::Substring { .. }
        | Expr::Trim { .. }
        | Expr::Overlay { .. }
        | Expr::Function(_)
        | Expr::Case { .. }
        | Expr::Exists { .. }
        | Expr::Subquery(_)
        | Expr::GroupingSets(_)
        | Expr::Cube(_)
        | Expr::Rollup(_)
        | Expr::Tuple(_)
        | Expr::Struct { .. }
        | Expr::Array(_)
        | Expr::Dictionary(_)
        | Expr::Map(_)
        | Expr::Interval(_)
        | Expr::Lambda(_)
        | Expr::MemberOf(_) => Operands::Other,
    }
}

/// How many plain operands an expression has.
enum Operands<'a> {
    None,
    One(&'a Expr),
    Two(&'a Expr, &'a Expr),
    Other,
}
