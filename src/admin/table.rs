//! A result set the console sends: named columns, rows of text values, and its encoding as
//! RowDescription, DataRow… and CommandComplete.

use bytes::BytesMut;

use crate::protocol::build;

/// A column's type as the client sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    Text,
    Int,
    Float,
}

impl Type {
    /// Type oid and size: text, int8, float8.
    fn oid(self) -> (u32, i16) {
        match self {
            Type::Text => (25, -1),
            Type::Int => (20, 8),
            Type::Float => (701, 8),
        }
    }
}

/// Rows under named columns; values are text, `None` is NULL.
#[derive(Debug, Default)]
pub struct Table {
    columns: Vec<(&'static str, Type)>,
    rows: Vec<Vec<Option<String>>>,
}

impl Table {
    /// An empty table with these columns.
    pub fn new(columns: &[(&'static str, Type)]) -> Self {
        Table { columns: columns.to_vec(), rows: Vec::new() }
    }

    /// Appends a row; it must have one value per column.
    pub fn row(&mut self, values: Vec<Option<String>>) {
        debug_assert_eq!(values.len(), self.columns.len(), "one value per column");
        self.rows.push(values);
    }

    /// Encodes the result with the command tag `SHOW`.
    pub fn encode(&self, out: &mut BytesMut) {
        let columns: Vec<(&str, u32, i16)> = self
            .columns
            .iter()
            .map(|(name, ty)| {
                let (oid, size) = ty.oid();
                (*name, oid, size)
            })
            .collect();
        build::row_description(out, &columns);
        for row in &self.rows {
            let values: Vec<Option<&str>> = row.iter().map(Option::as_deref).collect();
            build::data_row(out, &values);
        }
        build::command_complete(out, "SHOW");
    }
}

/// A text value.
pub fn text(v: impl ToString) -> Option<String> {
    Some(v.to_string())
}

/// An optional value, NULL when absent.
pub fn opt<T: ToString>(v: Option<T>) -> Option<String> {
    v.map(|v| v.to_string())
}
