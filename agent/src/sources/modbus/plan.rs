//! Planning the read requests of a profile: contiguous fields of one table are
//! merged into one request, up to a maximum count per request.
//!
//! Pure: the poller executes the plan; tests check it directly.

use wearline_models::profile::Profile;
use wearline_models::registers::{DataType, RegisterKind, decode_text, decode_words};

/// Modbus allows 125 registers (or 2000 bits) per read; we use 125 for both.
pub const MAX_PER_REQUEST: u16 = 125;

/// One read request and the fields it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    pub kind: RegisterKind,
    pub address: u16,
    pub count: u16,
    /// Indices into the profile's fields.
    pub fields: Vec<usize>,
}

/// Merges the profile's fields into as few reads as possible. Only adjacent or
/// overlapping fields are merged: reading a gap could hit unmapped addresses,
/// which many devices answer with an exception.
pub fn plan(profile: &Profile, max_per_request: u16) -> Vec<Read> {
    let mut order: Vec<usize> = (0..profile.fields.len()).collect();
    order.sort_by_key(|&i| (profile.fields[i].kind, profile.fields[i].address));
    let mut reads: Vec<Read> = Vec::new();
    for i in order {
        let f = &profile.fields[i];
        let end = u32::from(f.address) + u32::from(f.span());
        if let Some(last) = reads.last_mut() {
            let last_end = u32::from(last.address) + u32::from(last.count);
            let merged = end.max(last_end) - u32::from(last.address);
            if last.kind == f.kind && u32::from(f.address) <= last_end && merged <= u32::from(max_per_request)
            {
                last.count = merged as u16;
                last.fields.push(i);
                continue;
            }
        }
        reads.push(Read {
            kind: f.kind,
            address: f.address,
            count: f.span(),
            fields: vec![i],
        });
    }
    reads
}

/// A decoded field.
#[derive(Debug, Clone, PartialEq)]
pub enum Reading {
    Number(f64),
    Text(String),
}

/// Decodes the fields of `read` from the words it returned (bits as 0/1),
/// calling `emit(metric, reading)` for each. Returns the number of fields that
/// could not be decoded.
pub fn decode(profile: &Profile, read: &Read, words: &[u16], mut emit: impl FnMut(&str, Reading)) -> usize {
    let mut failed = 0;
    for &i in &read.fields {
        let f = &profile.fields[i];
        let start = usize::from(f.address - read.address);
        let Some(slice) = words.get(start..start + usize::from(f.span())) else {
            failed += 1;
            continue;
        };
        if f.data_type == DataType::String {
            emit(&f.metric, Reading::Text(decode_text(slice, f.order)));
            continue;
        }
        match decode_words(slice, f.data_type, f.order, f.bit) {
            Ok(raw) => emit(&f.metric, Reading::Number(f.calibration().apply(raw))),
            Err(e) => {
                tracing::debug!(metric = %f.metric, error = %e, "cannot decode field");
                failed += 1;
            }
        }
    }
    failed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(fields: &str) -> Profile {
        Profile::parse("t.toml", &format!("name = \"t\"\n{fields}")).expect("valid profile")
    }

    fn field(metric: &str, kind: &str, address: u16, ty: &str) -> String {
        format!(
            "[[fields]]\nmetric = \"{metric}\"\nkind = \"{kind}\"\naddress = {address}\ntype = \"{ty}\"\nscale = 0.5\n"
        )
    }

    #[test]
    fn contiguous_fields_merge_and_gaps_split() {
        let p = profile(
            &[
                field("c", "input", 3, "u32"),
                field("a", "input", 0, "u16"),
                field("b", "input", 1, "u16"),
                field("far", "input", 10, "u16"),
                field("h", "holding", 2, "f32"),
                field("led", "coil", 0, "bool"),
            ]
            .concat(),
        );
        let reads = plan(&p, MAX_PER_REQUEST);
        let summary: Vec<_> = reads
            .iter()
            .map(|r| (r.kind, r.address, r.count, r.fields.len()))
            .collect();
        assert_eq!(
            summary,
            vec![
                (RegisterKind::Coil, 0, 1, 1),
                (RegisterKind::Holding, 2, 2, 1),
                (RegisterKind::Input, 0, 2, 2),
                (RegisterKind::Input, 3, 2, 1),
                (RegisterKind::Input, 10, 1, 1),
            ]
        );
    }

    #[test]
    fn requests_respect_the_maximum() {
        let fields: String = (0..10)
            .map(|i| field(&format!("m{i}"), "input", i * 2, "u32"))
            .collect();
        let reads = plan(&profile(&fields), 6);
        assert_eq!(
            reads.iter().map(|r| r.count).collect::<Vec<_>>(),
            vec![6, 6, 6, 2]
        );
        assert_eq!(reads.iter().map(|r| r.fields.len()).sum::<usize>(), 10);
    }

    #[test]
    fn decode_applies_scale() {
        let p = profile(&[field("a", "input", 0, "u16"), field("b", "input", 1, "i16")].concat());
        let reads = plan(&p, MAX_PER_REQUEST);
        let mut got = Vec::new();
        let failed = decode(&p, &reads[0], &[10, 0xFFFE], |m, v| got.push((m.to_string(), v)));
        assert_eq!(failed, 0);
        assert_eq!(
            got,
            vec![
                ("a".to_string(), Reading::Number(5.0)),
                ("b".to_string(), Reading::Number(-1.0))
            ]
        );
        assert_eq!(
            decode(&p, &reads[0], &[10], |_, _| {}),
            1,
            "short answer fails the missing field"
        );
    }
}
