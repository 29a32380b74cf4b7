//! `wearline agent probe`: read raw registers from a device and show them
//! decoded under every data type and byte/word order, so a device maker can
//! see which reading is plausible before writing a profile.
//!
//! Rendering is pure (`render`); `read_registers` does the Modbus IO.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;
use tokio_modbus::Slave;
use tokio_modbus::client::Reader;
use wearline_models::registers::{DataType, WordOrder, decode_words};

/// Which register table to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeKind {
    Holding,
    Input,
}

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("cannot connect to {addr} within {timeout:?}")]
    ConnectTimeout { addr: SocketAddr, timeout: Duration },
    #[error("cannot connect to {addr}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("transport error")]
    Transport(#[from] tokio_modbus::Error),
    #[error("device answered with exception {0:?}")]
    Exception(tokio_modbus::ExceptionCode),
    #[error("count must be 1–125, got {0}")]
    Count(u16),
}

/// Reads `count` registers from `start`.
pub async fn read_registers(
    addr: SocketAddr,
    unit: u8,
    kind: ProbeKind,
    start: u16,
    count: u16,
    timeout: Duration,
) -> Result<Vec<u16>, ProbeError> {
    if count == 0 || count > 125 {
        return Err(ProbeError::Count(count));
    }
    let mut ctx = match tokio::time::timeout(
        timeout,
        tokio_modbus::client::tcp::connect_slave(addr, Slave(unit)),
    )
    .await
    {
        Err(_) => return Err(ProbeError::ConnectTimeout { addr, timeout }),
        Ok(Err(source)) => return Err(ProbeError::Connect { addr, source }),
        Ok(Ok(c)) => c,
    };
    let read = async {
        match kind {
            ProbeKind::Holding => ctx.read_holding_registers(start, count).await,
            ProbeKind::Input => ctx.read_input_registers(start, count).await,
        }
    };
    match tokio::time::timeout(timeout, read).await {
        Err(_) => Err(ProbeError::Timeout(timeout)),
        Ok(Err(e)) => Err(ProbeError::Transport(e)),
        Ok(Ok(Err(code))) => Err(ProbeError::Exception(code)),
        Ok(Ok(Ok(words))) => Ok(words),
    }
}

const ORDERS: [WordOrder; 4] = [WordOrder::Abcd, WordOrder::Badc, WordOrder::Cdab, WordOrder::Dcba];

/// Renders `words` read from address `start` as a table of every reading.
pub fn render(start: u16, words: &[u16]) -> String {
    let mut out = String::new();
    let fmt = |dtype, slice: &[u16], order| match decode_words(slice, dtype, order, None) {
        Ok(v) if matches!(dtype, DataType::F32 | DataType::F64) => float(v),
        Ok(v) => format!("{v}"),
        Err(_) => "—".to_string(),
    };
    let _ = writeln!(out, "16-bit registers");
    let _ = writeln!(
        out,
        "{:>6}  {:>6}  {:>6}  {:>6}  {:>6}  {:>6}",
        "addr", "hex", "u16", "i16", "u16 BA", "i16 BA"
    );
    for (i, w) in words.iter().enumerate() {
        let s = std::slice::from_ref(w);
        let _ = writeln!(
            out,
            "{:>6}  0x{w:04X}  {:>6}  {:>6}  {:>6}  {:>6}",
            usize::from(start) + i,
            fmt(DataType::U16, s, WordOrder::Abcd),
            fmt(DataType::I16, s, WordOrder::Abcd),
            fmt(DataType::U16, s, WordOrder::Badc),
            fmt(DataType::I16, s, WordOrder::Badc),
        );
    }
    for (title, types) in [
        ("32-bit values", [DataType::U32, DataType::I32, DataType::F32]),
        ("64-bit values", [DataType::U64, DataType::I64, DataType::F64]),
    ] {
        let n = usize::from(types[0].words());
        if words.len() < n {
            continue;
        }
        let _ = writeln!(out, "\n{title} starting at each address");
        let _ = writeln!(
            out,
            "{:>6}  {:>5}  {:>20}  {:>20}  {:>14}",
            "addr",
            "order",
            format!("{:?}", types[0]).to_lowercase(),
            format!("{:?}", types[1]).to_lowercase(),
            format!("{:?}", types[2]).to_lowercase()
        );
        for i in 0..=words.len() - n {
            let slice = &words[i..i + n];
            for order in ORDERS {
                let _ = writeln!(
                    out,
                    "{:>6}  {:>5}  {:>20}  {:>20}  {:>14}",
                    usize::from(start) + i,
                    order.to_string(),
                    fmt(types[0], slice, order),
                    fmt(types[1], slice, order),
                    fmt(types[2], slice, order),
                );
            }
        }
    }
    out
}

/// Plain notation where a person would write it, scientific otherwise.
fn float(v: f64) -> String {
    if v == 0.0 || (1e-3..1e7).contains(&v.abs()) {
        let s = format!("{v:.6}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        format!("{v:.4e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_every_reading_of_a_float() {
        let bits = 21.5f32.to_bits();
        let (hi, lo) = ((bits >> 16) as u16, bits as u16);
        let text = render(6, &[hi, lo]);
        let abcd = text
            .lines()
            .find(|l| l.trim_start().starts_with("6   ABCD"))
            .expect("ABCD row");
        assert!(abcd.ends_with(" 21.5"), "{text}");
        let cdab = text
            .lines()
            .find(|l| l.trim_start().starts_with("6   CDAB"))
            .expect("CDAB row");
        assert!(!cdab.ends_with(" 21.5"), "{text}");
        assert!(text.contains(&format!("0x{hi:04X}")), "{text}");
        assert!(
            !text.contains("64-bit"),
            "two registers cannot hold a 64-bit value"
        );
    }

    #[test]
    fn signed_and_swapped_sixteen_bit() {
        let text = render(0, &[0xFFFE]);
        let row = text.lines().find(|l| l.contains("0xFFFE")).expect("row");
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cols, vec!["0", "0xFFFE", "65534", "-2", "65279", "-257"]);
    }
}
