//! SQL text shared by both back ends.

use std::fmt::Write;

/// Appends `($1, $2, …), ($k, …)`: `rows` tuples of `cols` numbered
/// parameters, the first numbered `first`. Numbered parameters are the form
/// both SQLite and PostgreSQL accept (sqlx's `Any` query builder would write
/// `?`, which PostgreSQL refuses).
pub(super) fn push_tuples(sql: &mut String, rows: usize, cols: usize, first: usize) {
    let mut n = first;
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..cols {
            if c > 0 {
                sql.push_str(", ");
            }
            // Writing to a String cannot fail.
            let _ = write!(sql, "${n}");
            n += 1;
        }
        sql.push(')');
    }
}

/// The larger of two SQL expressions (`MAX(a, b)` in SQLite is
/// `GREATEST(a, b)` in PostgreSQL; `CASE` is both).
pub(super) fn greatest(a: &str, b: &str) -> String {
    format!("CASE WHEN {a} >= {b} THEN {a} ELSE {b} END")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuples_are_numbered_across_rows() {
        let mut sql = String::from("VALUES ");
        push_tuples(&mut sql, 2, 3, 1);
        assert_eq!(sql, "VALUES ($1, $2, $3), ($4, $5, $6)");
        let mut sql = String::new();
        push_tuples(&mut sql, 1, 2, 7);
        assert_eq!(sql, "($7, $8)");
    }
}
