//! SQL text shared by both back ends.

use super::Backend;
use std::fmt::Write;

/// Appends `($1, $2, …), ($k, …)`: `rows` tuples of `cols` parameters, the
/// first numbered `first`, in the back end's form. PostgreSQL needs numbered
/// parameters (sqlx's `Any` query builder would write `?`, which it
/// refuses). SQLite takes them too, but looks each numbered name up in a
/// list, so binding thousands of them is quadratic (it was 16 % of the
/// hub's CPU in `wearline bench ingest`): SQLite gets plain `?`, which binds
/// by position.
pub(super) fn push_tuples(sql: &mut String, backend: Backend, rows: usize, cols: usize, first: usize) {
    let mut n = first;
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..cols {
            if c > 0 {
                sql.push_str(", ");
            }
            match backend {
                Backend::Postgres => {
                    // Writing to a String cannot fail.
                    let _ = write!(sql, "${n}");
                }
                Backend::Sqlite => sql.push('?'),
            }
            n += 1;
        }
        sql.push(')');
    }
}

/// Parameter `n` (1-based) of a statement whose earlier parameters were
/// written by [`push_tuples`] or this function, in the back end's form.
pub(super) fn placeholder(backend: Backend, n: usize) -> String {
    match backend {
        Backend::Postgres => format!("${n}"),
        Backend::Sqlite => "?".into(),
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
        push_tuples(&mut sql, Backend::Postgres, 2, 3, 1);
        assert_eq!(sql, "VALUES ($1, $2, $3), ($4, $5, $6)");
        let mut sql = String::new();
        push_tuples(&mut sql, Backend::Postgres, 1, 2, 7);
        assert_eq!(sql, "($7, $8)");
        let mut sql = String::new();
        push_tuples(&mut sql, Backend::Sqlite, 2, 2, 1);
        assert_eq!(sql, "(?, ?), (?, ?)");
    }
}
