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

/// Splits `items` into the row counts of multi-row statements: chunks of
/// `max`, then, on SQLite, the rest in descending powers of two (on
/// PostgreSQL, in one chunk). Each row count is a statement of its own
/// text, and on SQLite sqlx keeps every statement prepared on its
/// connection (up to 100 each, see [`super::Store::query`]): with any count
/// from 1 to `max`, the writer's cache filled with large multi-row
/// programs, 28 MB of SQLite's memory under `wearline bench ingest --rate
/// 15000`. With these counts a kind of statement has at most
/// `1 + log2(max)` texts, all reused. PostgreSQL statements are not kept.
pub(super) fn row_chunks<T>(backend: Backend, items: &[T], max: usize) -> impl Iterator<Item = &[T]> {
    let max = max.max(1);
    let mut rest = items;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let n = match backend {
            _ if rest.len() >= max => max,
            Backend::Sqlite => 1 << rest.len().ilog2(),
            Backend::Postgres => rest.len(),
        };
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        Some(chunk)
    })
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

    #[test]
    fn row_chunks_use_few_statement_sizes_and_keep_every_row_once() {
        let items: Vec<usize> = (0..2_345).collect();
        let sizes = |backend, max| -> Vec<usize> {
            let chunks: Vec<&[usize]> = row_chunks(backend, &items, max).collect();
            let joined: Vec<usize> = chunks.concat();
            assert_eq!(joined, items, "every row once, in order");
            chunks.iter().map(|c| c.len()).collect()
        };
        // 2 345 = 1 000 + 1 000 + 256 + 64 + 16 + 8 + 1.
        assert_eq!(sizes(Backend::Sqlite, 1000), [1000, 1000, 256, 64, 16, 8, 1]);
        assert_eq!(sizes(Backend::Postgres, 1000), [1000, 1000, 345]);
        assert_eq!(sizes(Backend::Sqlite, 4096), [2048, 256, 32, 8, 1]);
        // Over every length up to 1 000, SQLite sees 1 + log2 of it at most.
        let mut seen = std::collections::BTreeSet::new();
        for n in 1..=1000 {
            seen.extend(row_chunks(Backend::Sqlite, &items[..n], 1000).map(<[usize]>::len));
        }
        assert_eq!(seen.len(), 11, "{seen:?}");
        assert_eq!(row_chunks(Backend::Sqlite, &items[..0], 10).count(), 0);
    }
}
