//! Walks a parsed query (sqlparser's AST) for what routing needs: the tables and functions it names,
//! and whether it writes (a data-modifying statement under WITH, SELECT INTO, a row lock).
//!
//! The match on `Expr` is exhaustive on purpose: a new sqlparser variant must be looked at here
//! before it can hide a subquery. Depth is bounded by the caller's operator budget and sqlparser's
//! recursion limit.

mod expr;

use sqlparser::ast::{
    Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentClause, FunctionArguments, GroupByExpr, Ident,
    JoinConstraint, JoinOperator, LimitClause, NamedWindowExpr, ObjectName, ObjectNamePart, OrderByExpr, OrderByKind,
    Query, Select, SelectItem, SelectItemQualifiedWildcardKind, SetExpr, Statement, TableFactor, TableObject,
    TableWithJoins, WindowFrameBound, WindowSpec, WindowType,
};

/// A function call as `(schema, name)`, normalised.
pub(crate) type QualifiedCall = (Option<String>, String);

/// What the walk found.
#[derive(Debug, Default)]
pub(crate) struct Walk {
    /// Relations named, normalised, WITH names included (the caller drops those).
    pub tables: Vec<String>,
    /// Functions called.
    pub calls: Vec<QualifiedCall>,
    /// Names defined by WITH, anywhere in the query.
    pub ctes: Vec<String>,
    /// A data-modifying statement, SELECT INTO or a row lock was found.
    pub writes: bool,
    /// SELECT INTO (creates a table).
    pub into: bool,
}

/// An identifier as PostgreSQL stores it: unquoted folded to lowercase.
pub(crate) fn ident(ident: &Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_ascii_lowercase(),
    }
}

/// The parts of an object name, normalised.
fn parts(name: &ObjectName) -> Vec<String> {
    let part = |p: &ObjectNamePart| match p {
        ObjectNamePart::Identifier(i) => ident(i),
        ObjectNamePart::Function(f) => ident(&f.name),
    };
    name.0.iter().map(part).collect()
}

impl Walk {
    fn table(&mut self, name: &ObjectName) {
        self.tables.push(parts(name).join("."));
    }

    fn call(&mut self, name: &ObjectName) {
        // ARRAY(subquery) and ROW(…) parse as calls but are constructors.
        if let [ObjectNamePart::Identifier(Ident { value, quote_style: None, .. })] = name.0.as_slice() {
            if value.eq_ignore_ascii_case("array") || value.eq_ignore_ascii_case("row") {
                return;
            }
        }
        let mut parts = parts(name);
        let Some(bare) = parts.pop() else { return };
        self.calls.push((parts.pop(), bare));
    }

    /// A whole query: WITH, body, ORDER BY, LIMIT, row locks.
    pub fn query(&mut self, query: &Query) {
        if let Some(with) = &query.with {
            for cte in &with.cte_tables {
                self.ctes.push(ident(&cte.alias.name));
                self.query(&cte.query);
            }
        }
        self.set_expr(&query.body);
        if let Some(OrderByKind::Expressions(list)) = query.order_by.as_ref().map(|o| &o.kind) {
            self.order_by(list);
        }
        match &query.limit_clause {
            Some(LimitClause::LimitOffset { limit, offset, limit_by }) => {
                self.opt_expr(limit.as_ref());
                self.opt_expr(offset.as_ref().map(|o| &o.value));
                self.exprs(limit_by);
            }
            Some(LimitClause::OffsetCommaLimit { offset, limit }) => {
                self.expr(offset);
                self.expr(limit);
            }
            None => {}
        }
        self.opt_expr(query.fetch.as_ref().and_then(|f| f.quantity.as_ref()));
        self.writes |= !query.locks.is_empty();
    }

    fn set_expr(&mut self, body: &SetExpr) {
        match body {
            SetExpr::Select(select) => self.select(select),
            SetExpr::Query(query) => self.query(query),
            SetExpr::SetOperation { left, right, .. } => {
                self.set_expr(left);
                self.set_expr(right);
            }
            SetExpr::Values(values) => values.rows.iter().for_each(|row| self.exprs(&row.content)),
            SetExpr::Insert(s) | SetExpr::Update(s) | SetExpr::Delete(s) | SetExpr::Merge(s) => {
                self.writes = true;
                self.modification(s);
            }
            SetExpr::Table(table) => {
                let name = [&table.schema_name, &table.table_name].into_iter().flatten().map(ident);
                self.tables.push(name.collect::<Vec<_>>().join("."));
            }
        }
    }

    fn select(&mut self, select: &Select) {
        if select.into.is_some() {
            self.into = true;
            self.writes = true;
        }
        if let Some(sqlparser::ast::Distinct::On(list)) = &select.distinct {
            self.exprs(list);
        }
        for item in &select.projection {
            self.select_item(item);
        }
        select.from.iter().for_each(|t| self.table_with_joins(t));
        for e in [&select.prewhere, &select.selection, &select.having, &select.qualify] {
            self.opt_expr(e.as_ref());
        }
        if let GroupByExpr::Expressions(list, _) = &select.group_by {
            self.exprs(list);
        }
        for window in &select.named_window {
            if let NamedWindowExpr::WindowSpec(spec) = &window.1 {
                self.window_spec(spec);
            }
        }
        self.exprs(&select.cluster_by);
        self.exprs(&select.distribute_by);
        self.order_by(&select.sort_by);
    }

    fn select_item(&mut self, item: &SelectItem) {
        match item {
            SelectItem::UnnamedExpr(e)
            | SelectItem::ExprWithAlias { expr: e, .. }
            | SelectItem::ExprWithAliases { expr: e, .. }
            | SelectItem::QualifiedWildcard(SelectItemQualifiedWildcardKind::Expr(e), _) => self.expr(e),
            SelectItem::QualifiedWildcard(SelectItemQualifiedWildcardKind::ObjectName(_), _)
            | SelectItem::Wildcard(_) => {}
        }
    }

    fn table_with_joins(&mut self, table: &TableWithJoins) {
        self.table_factor(&table.relation);
        for join in &table.joins {
            self.table_factor(&join.relation);
            if let Some(JoinConstraint::On(e)) = join_constraint(&join.join_operator) {
                self.expr(e);
            }
            if let JoinOperator::AsOf { match_condition, .. } = &join.join_operator {
                self.expr(match_condition);
            }
        }
    }

    fn table_factor(&mut self, factor: &TableFactor) {
        match factor {
            // `FROM f(…)` parses as a table with arguments: it is a call.
            TableFactor::Table { name, args: Some(args), .. } => {
                self.call(name);
                self.function_args(&args.args);
            }
            TableFactor::Table { name, args: None, .. } | TableFactor::SemanticView { name, .. } => self.table(name),
            TableFactor::Derived { subquery, .. } => self.query(subquery),
            TableFactor::Function { name, args, .. } => {
                self.call(name);
                self.function_args(args);
            }
            TableFactor::TableFunction { expr, .. }
            | TableFactor::JsonTable { json_expr: expr, .. }
            | TableFactor::OpenJsonTable { json_expr: expr, .. }
            | TableFactor::XmlTable { row_expression: expr, .. }
            | TableFactor::UnpivotExpr { expression: expr, .. } => self.expr(expr),
            TableFactor::UNNEST { array_exprs, .. } => self.exprs(array_exprs),
            TableFactor::NestedJoin { table_with_joins, .. } => self.table_with_joins(table_with_joins),
            TableFactor::Pivot { table, .. }
            | TableFactor::Unpivot { table, .. }
            | TableFactor::MatchRecognize { table, .. } => self.table_factor(table),
        }
    }

    /// INSERT, UPDATE, DELETE or MERGE under WITH: the target and the queries they read.
    fn modification(&mut self, statement: &Statement) {
        match statement {
            Statement::Insert(insert) => {
                match &insert.table {
                    TableObject::TableName(name) => self.table(name),
                    TableObject::TableFunction(f) => self.function(f),
                    TableObject::TableQuery(q) => self.query(q),
                }
                if let Some(source) = &insert.source {
                    self.query(source);
                }
                insert.returning.iter().flatten().for_each(|i| self.select_item(i));
            }
            Statement::Update(update) => {
                self.table_with_joins(&update.table);
                update.assignments.iter().for_each(|a| self.expr(&a.value));
                if let Some(
                    sqlparser::ast::UpdateTableFromKind::BeforeSet(from)
                    | sqlparser::ast::UpdateTableFromKind::AfterSet(from),
                ) = &update.from
                {
                    from.iter().for_each(|t| self.table_with_joins(t));
                }
                self.opt_expr(update.selection.as_ref());
                update.returning.iter().flatten().for_each(|i| self.select_item(i));
            }
            Statement::Delete(delete) => {
                let (sqlparser::ast::FromTable::WithFromKeyword(from)
                | sqlparser::ast::FromTable::WithoutKeyword(from)) = &delete.from;
                from.iter().chain(delete.using.iter().flatten()).for_each(|t| self.table_with_joins(t));
                self.opt_expr(delete.selection.as_ref());
                delete.returning.iter().flatten().for_each(|i| self.select_item(i));
            }
            Statement::Merge(merge) => {
                self.table_factor(&merge.table);
                self.table_factor(&merge.source);
                self.expr(&merge.on);
            }
            _ => {}
        }
    }

    fn function(&mut self, function: &Function) {
        self.call(&function.name);
        for args in [&function.parameters, &function.args] {
            match args {
                FunctionArguments::None => {}
                FunctionArguments::Subquery(q) => self.query(q),
                FunctionArguments::List(list) => {
                    self.function_args(&list.args);
                    for clause in &list.clauses {
                        match clause {
                            FunctionArgumentClause::Where(e) | FunctionArgumentClause::Limit(e) => self.expr(e),
                            FunctionArgumentClause::OrderBy(list) => self.order_by(list),
                            _ => {}
                        }
                    }
                }
            }
        }
        self.order_by(&function.within_group);
        self.opt_expr(function.filter.as_deref());
        if let Some(WindowType::WindowSpec(spec)) = &function.over {
            self.window_spec(spec);
        }
    }

    fn function_args(&mut self, args: &[FunctionArg]) {
        for arg in args {
            let (FunctionArg::Named { arg, .. } | FunctionArg::ExprNamed { arg, .. } | FunctionArg::Unnamed(arg)) = arg;
            if let FunctionArgExpr::Expr(e) = arg {
                self.expr(e);
            }
        }
    }

    fn window_spec(&mut self, spec: &WindowSpec) {
        self.exprs(&spec.partition_by);
        self.order_by(&spec.order_by);
        if let Some(frame) = &spec.window_frame {
            for bound in std::iter::once(&frame.start_bound).chain(&frame.end_bound) {
                if let WindowFrameBound::Preceding(Some(e)) | WindowFrameBound::Following(Some(e)) = bound {
                    self.expr(e);
                }
            }
        }
    }

    fn order_by(&mut self, list: &[OrderByExpr]) {
        list.iter().for_each(|o| self.expr(&o.expr));
    }

    fn exprs(&mut self, list: &[Expr]) {
        list.iter().for_each(|e| self.expr(e));
    }

    fn opt_expr(&mut self, e: Option<&Expr>) {
        if let Some(e) = e {
            self.expr(e);
        }
    }
}

/// The constraint of a join, for the join kinds that have one.
fn join_constraint(op: &JoinOperator) -> Option<&JoinConstraint> {
    use JoinOperator as J;
    match op {
        J::Join(c)
        | J::Inner(c)
        | J::Left(c)
        | J::LeftOuter(c)
        | J::Right(c)
        | J::RightOuter(c)
        | J::FullOuter(c)
        | J::CrossJoin(c)
        | J::Semi(c)
        | J::LeftSemi(c)
        | J::RightSemi(c)
        | J::Anti(c)
        | J::LeftAnti(c)
        | J::RightAnti(c)
        | J::StraightJoin(c)
        | J::AsOf { constraint: c, .. } => Some(c),
        J::CrossApply | J::OuterApply | J::ArrayJoin | J::LeftArrayJoin | J::InnerArrayJoin => None,
    }
}
