//! The Modbus register map of the simulated air purifier and its encodings.
//!
//! Pure translation between an [`AirPurifier`] and Modbus data: no IO, no
//! clock, no simulation of time (the caller advances the device first). The
//! map is a contract with the air-purifier device profile; addresses and
//! encodings must not change without changing that profile too.
//!
//! | Table | Addr | Name | Encoding |
//! |---|---|---|---|
//! | Input (FC4) | 0 | `fan_speed` | u16, rpm |
//! | Input | 1 | `motor_temp` | i16, 0.1 °C |
//! | Input | 2 | `vibration_rms` | u16, 0.01 mm/s |
//! | Input | 3 | `filter_dp` | u16, 0.1 Pa, saturating |
//! | Input | 4–5 | `run_hours` | u32 ABCD (high word first), 0.01 h |
//! | Input | 6–7 | `pm25` | f32 IEEE 754 ABCD (high word first), µg/m³ |
//! | Holding (FC3/6/16) | 0 | `fan_level` | u16, percent 0–100 |
//! | Holding | 1 | simulation only: injected bearing fault | u16, ‰ 0–1000 |
//! | Coil (FC1/5/15) | 0 | `filter_indicator` | bool |
//! | Coil | 1 | `filter_replaced` | write true = replace filter; reads false |
//! | Discrete input (FC2) | 0 | `running` | bool, always true |
//!
//! Reads may start or end inside a two-register value (like most real
//! devices, the map is a flat array). Anything outside the map is
//! `IllegalDataAddress`; a zero quantity or an out-of-range value is
//! `IllegalDataValue`; other function codes are `IllegalFunction`.

use tokio_modbus::{ExceptionCode, Request, Response};

use crate::air_purifier::AirPurifier;

/// Input register: fan speed, u16 rpm.
pub const IR_FAN_SPEED: u16 = 0;
/// Input register: motor temperature, i16 in 0.1 °C.
pub const IR_MOTOR_TEMP: u16 = 1;
/// Input register: vibration RMS, u16 in 0.01 mm/s.
pub const IR_VIBRATION_RMS: u16 = 2;
/// Input register: filter differential pressure, u16 in 0.1 Pa.
pub const IR_FILTER_DP: u16 = 3;
/// Input registers 4–5: run hours, u32 ABCD in 0.01 h.
pub const IR_RUN_HOURS: u16 = 4;
/// Input registers 6–7: PM2.5, f32 ABCD in µg/m³.
pub const IR_PM25: u16 = 6;
/// Number of input registers.
/// Diagnostics block, 8–19: uptime s (u32), firmware (u16), fault count
/// (u16), energy Wh (u32), room temperature 0.1 °C (i16), humidity 0.1 %
/// (u16), supply voltage 0.1 V (u16), mains frequency 0.01 Hz (u16), status
/// bits (bit 0 running, bit 1 filter indicator), model id (u16).
pub const IR_UPTIME: u16 = 8;
pub const IR_STATUS_BITS: u16 = 18;
/// Firmware version reported in register 10 (2.3).
pub const FIRMWARE: u16 = 0x0203;
/// Model id reported in register 19.
pub const MODEL_ID: u16 = 0x0A01;
/// Electrical power drawn while running, for the energy counter.
pub const POWER_W: f64 = 45.0;
pub const INPUT_REGISTER_COUNT: u16 = 20;

/// Holding register: fan level, u16 percent 0–100.
pub const HR_FAN_LEVEL: u16 = 0;
/// Holding register, simulation only (no real purifier has it): an
/// injected bearing fault's severity in ‰, 0–1000 (0: none). Tests write it
/// to make the fan motor vibrate as a failing bearing does.
pub const HR_SIM_BEARING_FAULT: u16 = 1;
/// Number of holding registers.
pub const HOLDING_REGISTER_COUNT: u16 = 2;

/// Coil: "replace filter" indicator.
pub const COIL_FILTER_INDICATOR: u16 = 0;
/// Coil: writing true replaces the filter; always reads false.
pub const COIL_FILTER_REPLACED: u16 = 1;
/// Number of coils.
pub const COIL_COUNT: u16 = 2;

/// Discrete input: the fan is running.
pub const DI_RUNNING: u16 = 0;
/// Number of discrete inputs.
pub const DISCRETE_INPUT_COUNT: u16 = 1;

/// Why a request cannot be served; maps 1:1 onto Modbus exception codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// The function code is not supported.
    #[error("illegal function")]
    IllegalFunction,
    /// The address range is not (entirely) in the map.
    #[error("illegal data address")]
    IllegalDataAddress,
    /// A zero quantity or a value out of range.
    #[error("illegal data value")]
    IllegalDataValue,
}

impl From<RegisterError> for ExceptionCode {
    fn from(e: RegisterError) -> Self {
        match e {
            RegisterError::IllegalFunction => Self::IllegalFunction,
            RegisterError::IllegalDataAddress => Self::IllegalDataAddress,
            RegisterError::IllegalDataValue => Self::IllegalDataValue,
        }
    }
}

/// Serves one Modbus request against `dev` (any unit id is the caller's business).
pub fn handle_request(dev: &mut AirPurifier, req: &Request<'_>) -> Result<Response, RegisterError> {
    Ok(match req {
        Request::ReadCoils(addr, n) => Response::ReadCoils(read_coils(dev, *addr, *n)?),
        Request::ReadDiscreteInputs(addr, n) => {
            Response::ReadDiscreteInputs(read_discrete_inputs(dev, *addr, *n)?)
        }
        Request::ReadInputRegisters(addr, n) => {
            Response::ReadInputRegisters(read_input_registers(dev, *addr, *n)?)
        }
        Request::ReadHoldingRegisters(addr, n) => {
            Response::ReadHoldingRegisters(read_holding_registers(dev, *addr, *n)?)
        }
        Request::WriteSingleCoil(addr, on) => {
            write_coils(dev, *addr, &[*on])?;
            Response::WriteSingleCoil(*addr, *on)
        }
        Request::WriteMultipleCoils(addr, coils) => {
            write_coils(dev, *addr, coils)?;
            Response::WriteMultipleCoils(*addr, quantity(coils.len()))
        }
        Request::WriteSingleRegister(addr, word) => {
            write_holding_registers(dev, *addr, &[*word])?;
            Response::WriteSingleRegister(*addr, *word)
        }
        Request::WriteMultipleRegisters(addr, words) => {
            write_holding_registers(dev, *addr, words)?;
            Response::WriteMultipleRegisters(*addr, quantity(words.len()))
        }
        _ => return Err(RegisterError::IllegalFunction),
    })
}

/// FC4: reads `count` input registers from `addr`.
pub fn read_input_registers(dev: &AirPurifier, addr: u16, count: u16) -> Result<Vec<u16>, RegisterError> {
    let [run_hi, run_lo] = encode_u32_abcd(scaled_u32(dev.run_hours(), 100.0));
    // The sensor value is f64; the wire format is f32 by contract.
    #[allow(clippy::cast_possible_truncation)]
    let [pm_hi, pm_lo] = encode_f32_abcd(dev.pm25_ugm3() as f32);
    let [up_hi, up_lo] = encode_u32_abcd(scaled_u32(dev.sim_secs(), 1.0));
    let [wh_hi, wh_lo] = encode_u32_abcd(scaled_u32(dev.run_hours() * POWER_W, 1.0));
    let image = [
        scaled_u16(dev.fan_speed_rpm(), 1.0),
        encode_i16(scaled_i16(dev.motor_temp_c(), 10.0)),
        scaled_u16(dev.vibration_rms_mms(), 100.0),
        scaled_u16(dev.filter_dp_pa(), 10.0),
        run_hi,
        run_lo,
        pm_hi,
        pm_lo,
        up_hi,
        up_lo,
        FIRMWARE,
        0,
        wh_hi,
        wh_lo,
        encode_i16(scaled_i16(dev.motor_temp_c() - 15.0, 10.0)),
        450,
        2300,
        5000,
        u16::from(dev.running()) | (u16::from(dev.filter_indicator()) << 1),
        MODEL_ID,
    ];
    window(&image, addr, count)
}

/// FC3: reads `count` holding registers from `addr`.
pub fn read_holding_registers(dev: &AirPurifier, addr: u16, count: u16) -> Result<Vec<u16>, RegisterError> {
    let fault = scaled_u16(dev.bearing_fault(), 1000.0);
    window(&[scaled_u16(dev.fan_level_pct(), 1.0), fault], addr, count)
}

/// FC6/FC16: writes holding registers from `addr`; all or nothing.
pub fn write_holding_registers(
    dev: &mut AirPurifier,
    addr: u16,
    values: &[u16],
) -> Result<(), RegisterError> {
    check_range(addr, values.len(), HOLDING_REGISTER_COUNT)?;
    let limit = |reg: u16| if reg == HR_FAN_LEVEL { 100 } else { 1000 };
    // All or nothing: check every value before writing any.
    if (addr..).zip(values).any(|(reg, &v)| v > limit(reg)) {
        return Err(RegisterError::IllegalDataValue);
    }
    for (reg, &v) in (addr..).zip(values) {
        match reg {
            HR_FAN_LEVEL => dev.set_fan_level_pct(f64::from(v)),
            _ => dev.set_bearing_fault(f64::from(v) / 1000.0),
        }
    }
    Ok(())
}

/// FC1: reads `count` coils from `addr`.
pub fn read_coils(dev: &AirPurifier, addr: u16, count: u16) -> Result<Vec<bool>, RegisterError> {
    window(&[dev.filter_indicator(), false], addr, count)
}

/// FC5/FC15: writes coils from `addr`.
pub fn write_coils(dev: &mut AirPurifier, addr: u16, values: &[bool]) -> Result<(), RegisterError> {
    check_range(addr, values.len(), COIL_COUNT)?;
    for (coil, &on) in (addr..).zip(values) {
        match coil {
            COIL_FILTER_INDICATOR => dev.set_filter_indicator(on),
            COIL_FILTER_REPLACED if on => dev.replace_filter(),
            _ => {}
        }
    }
    Ok(())
}

/// FC2: reads `count` discrete inputs from `addr`.
pub fn read_discrete_inputs(dev: &AirPurifier, addr: u16, count: u16) -> Result<Vec<bool>, RegisterError> {
    window(&[dev.running()], addr, count)
}

/// Splits a u32 into two registers, high word first ("ABCD").
#[must_use]
pub const fn encode_u32_abcd(v: u32) -> [u16; 2] {
    [(v >> 16) as u16, (v & 0xFFFF) as u16]
}

/// Joins two registers, high word first ("ABCD"), into a u32.
#[must_use]
pub const fn decode_u32_abcd(words: [u16; 2]) -> u32 {
    ((words[0] as u32) << 16) | words[1] as u32
}

/// Splits an IEEE 754 f32 into two registers, high word first ("ABCD").
#[must_use]
pub const fn encode_f32_abcd(v: f32) -> [u16; 2] {
    encode_u32_abcd(v.to_bits())
}

/// Joins two registers, high word first ("ABCD"), into an IEEE 754 f32.
#[must_use]
pub const fn decode_f32_abcd(words: [u16; 2]) -> f32 {
    f32::from_bits(decode_u32_abcd(words))
}

/// An i16 as its two's-complement register value.
#[must_use]
pub const fn encode_i16(v: i16) -> u16 {
    v.cast_unsigned()
}

/// A register value read as two's-complement i16.
#[must_use]
pub const fn decode_i16(word: u16) -> i16 {
    word.cast_signed()
}

// `as` from f64 to an integer saturates at the type's bounds (NaN gives 0),
// which is exactly the saturation the map asks for.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn scaled_u16(v: f64, scale: f64) -> u16 {
    (v * scale).round() as u16
}

#[allow(clippy::cast_possible_truncation)]
fn scaled_i16(v: f64, scale: f64) -> i16 {
    (v * scale).round() as i16
}

#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn scaled_u32(v: f64, scale: f64) -> u32 {
    (v * scale).round() as u32
}

/// A quantity echoed in a write response; requests never exceed u16 items.
fn quantity(len: usize) -> u16 {
    u16::try_from(len).unwrap_or(u16::MAX)
}

/// Checks that `count` items from `addr` lie within a table of `size` items.
fn check_range(addr: u16, count: usize, size: u16) -> Result<(), RegisterError> {
    if count == 0 {
        return Err(RegisterError::IllegalDataValue);
    }
    if usize::from(addr) + count > usize::from(size) {
        return Err(RegisterError::IllegalDataAddress);
    }
    Ok(())
}

fn window<T: Copy>(image: &[T], addr: u16, count: u16) -> Result<Vec<T>, RegisterError> {
    let size = u16::try_from(image.len()).map_err(|_| RegisterError::IllegalDataAddress)?;
    check_range(addr, usize::from(count), size)?;
    let start = usize::from(addr);
    image
        .get(start..start + usize::from(count))
        .map(<[T]>::to_vec)
        .ok_or(RegisterError::IllegalDataAddress)
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;
    use crate::air_purifier::PurifierParams;

    fn device(load: f64) -> AirPurifier {
        AirPurifier::new(PurifierParams {
            pm25_ugm3: 35.0,
            fan_level_pct: 60.0,
            initial_filter_load: load,
            seed: 11,
        })
    }

    #[test]
    fn u32_is_high_word_first() {
        assert_eq!(encode_u32_abcd(0x0001_E240), [0x0001, 0xE240]);
        assert_eq!(decode_u32_abcd([0x0001, 0xE240]), 123_456);
        assert_eq!(decode_u32_abcd(encode_u32_abcd(u32::MAX)), u32::MAX);
    }

    #[test]
    fn f32_is_ieee754_high_word_first() {
        // 35.5 = 0x420E_0000
        assert_eq!(encode_f32_abcd(35.5), [0x420E, 0x0000]);
        assert!((decode_f32_abcd([0x420E, 0x0000]) - 35.5).abs() < f32::EPSILON);
        assert_eq!(encode_f32_abcd(-1.0), [0xBF80, 0x0000]);
    }

    #[test]
    fn i16_is_twos_complement() {
        assert_eq!(encode_i16(-125), 0xFF83);
        assert_eq!(decode_i16(0xFF83), -125);
        assert_eq!(scaled_i16(-12.5, 10.0), -125);
        assert_eq!(scaled_i16(1e9, 10.0), i16::MAX);
    }

    #[test]
    fn scaling_saturates() {
        assert_eq!(scaled_u16(7000.0, 10.0), u16::MAX);
        assert_eq!(scaled_u16(-3.0, 10.0), 0);
        assert_eq!(scaled_u16(f64::NAN, 10.0), 0);
        assert_eq!(scaled_u32(1234.567, 100.0), 123_457);
    }

    #[test]
    fn input_registers_decode_to_device_values() {
        let dev = device(0.5);
        let regs = read_input_registers(&dev, 0, INPUT_REGISTER_COUNT).unwrap_or_default();
        assert_eq!(regs.len(), 20);
        assert_eq!(f64::from(regs[0]), dev.fan_speed_rpm().round());
        assert!((f64::from(decode_i16(regs[1])) / 10.0 - dev.motor_temp_c()).abs() <= 0.05);
        assert!((f64::from(regs[2]) / 100.0 - dev.vibration_rms_mms()).abs() <= 0.005);
        assert!((f64::from(regs[3]) / 10.0 - dev.filter_dp_pa()).abs() <= 0.05);
        let hours = f64::from(decode_u32_abcd([regs[4], regs[5]])) / 100.0;
        assert!((hours - dev.run_hours()).abs() <= 0.005);
        let pm25 = f64::from(decode_f32_abcd([regs[6], regs[7]]));
        assert!((pm25 - dev.pm25_ugm3()).abs() < 1e-4);
        // A window into the middle of the map.
        assert_eq!(read_input_registers(&dev, 3, 3), Ok(regs[3..6].to_vec()));
    }

    #[test]
    fn out_of_map_is_illegal_address() {
        let mut dev = device(0.0);
        use RegisterError::{IllegalDataAddress, IllegalDataValue};
        assert_eq!(read_input_registers(&dev, 19, 2), Err(IllegalDataAddress));
        assert_eq!(read_input_registers(&dev, 20, 1), Err(IllegalDataAddress));
        assert_eq!(
            read_input_registers(&dev, u16::MAX, u16::MAX),
            Err(IllegalDataAddress)
        );
        assert_eq!(read_input_registers(&dev, 0, 0), Err(IllegalDataValue));
        assert_eq!(read_holding_registers(&dev, 2, 1), Err(IllegalDataAddress));
        assert_eq!(read_coils(&dev, 0, 3), Err(IllegalDataAddress));
        assert_eq!(read_discrete_inputs(&dev, 1, 1), Err(IllegalDataAddress));
        assert_eq!(write_coils(&mut dev, 2, &[true]), Err(IllegalDataAddress));
        assert_eq!(
            write_holding_registers(&mut dev, 1, &[50, 50]),
            Err(IllegalDataAddress)
        );
    }

    #[test]
    fn fan_level_write_is_validated() {
        let mut dev = device(0.0);
        assert_eq!(
            write_holding_registers(&mut dev, HR_FAN_LEVEL, &[101]),
            Err(RegisterError::IllegalDataValue)
        );
        assert_eq!(read_holding_registers(&dev, 0, 1), Ok(vec![60]));
        assert_eq!(write_holding_registers(&mut dev, HR_FAN_LEVEL, &[100]), Ok(()));
        assert_eq!(read_holding_registers(&dev, 0, 1), Ok(vec![100]));
        let rpm = read_input_registers(&dev, IR_FAN_SPEED, 1).unwrap_or_default();
        assert!(rpm[0].abs_diff(1500) < 15);
    }

    #[test]
    fn an_injected_bearing_fault_raises_vibration_and_is_validated() {
        let mut dev = device(0.0);
        let before =
            f64::from(read_input_registers(&dev, IR_VIBRATION_RMS, 1).unwrap_or_default()[0]) / 100.0;
        assert_eq!(
            write_holding_registers(&mut dev, HR_SIM_BEARING_FAULT, &[1001]),
            Err(RegisterError::IllegalDataValue)
        );
        // Both registers at once; a bad fan level writes neither.
        assert_eq!(
            write_holding_registers(&mut dev, HR_FAN_LEVEL, &[101, 500]),
            Err(RegisterError::IllegalDataValue)
        );
        assert_eq!(read_holding_registers(&dev, 0, 2), Ok(vec![60, 0]));
        assert_eq!(
            write_holding_registers(&mut dev, HR_FAN_LEVEL, &[60, 500]),
            Ok(())
        );
        assert_eq!(read_holding_registers(&dev, 0, 2), Ok(vec![60, 500]));
        let after = f64::from(read_input_registers(&dev, IR_VIBRATION_RMS, 1).unwrap_or_default()[0]) / 100.0;
        assert!((after - before - 6.0).abs() < 0.2, "{before} -> {after} mm/s");
        assert_eq!(
            write_holding_registers(&mut dev, HR_SIM_BEARING_FAULT, &[0]),
            Ok(())
        );
        let repaired =
            f64::from(read_input_registers(&dev, IR_VIBRATION_RMS, 1).unwrap_or_default()[0]) / 100.0;
        assert!((repaired - before).abs() < 0.2, "{before} -> {repaired} mm/s");
    }

    #[test]
    fn coils_drive_indicator_and_filter_replacement() {
        let mut dev = device(1.1);
        assert_eq!(read_coils(&dev, 0, 2), Ok(vec![false, false]));
        assert_eq!(write_coils(&mut dev, COIL_FILTER_INDICATOR, &[true]), Ok(()));
        assert_eq!(read_coils(&dev, 0, 2), Ok(vec![true, false]));
        assert_eq!(write_coils(&mut dev, COIL_FILTER_REPLACED, &[false]), Ok(()));
        assert!(dev.filter_dp_pa() > 250.0);
        assert_eq!(write_coils(&mut dev, COIL_FILTER_REPLACED, &[true]), Ok(()));
        assert!(dev.filter_dp_pa() < 81.0);
        assert_eq!(read_coils(&dev, 0, 2), Ok(vec![false, false]));
        assert_eq!(read_discrete_inputs(&dev, DI_RUNNING, 1), Ok(vec![true]));
    }

    #[test]
    fn requests_dispatch_to_the_map() {
        let mut dev = device(0.2);
        assert_eq!(
            handle_request(&mut dev, &Request::WriteSingleRegister(0, 40)),
            Ok(Response::WriteSingleRegister(0, 40))
        );
        assert_eq!(
            handle_request(
                &mut dev,
                &Request::WriteMultipleCoils(0, Cow::Owned(vec![true, false]))
            ),
            Ok(Response::WriteMultipleCoils(0, 2))
        );
        assert_eq!(
            handle_request(&mut dev, &Request::ReadHoldingRegisters(0, 1)),
            Ok(Response::ReadHoldingRegisters(vec![40]))
        );
        assert_eq!(
            handle_request(&mut dev, &Request::ReadInputRegisters(20, 1)),
            Err(RegisterError::IllegalDataAddress)
        );
        assert_eq!(
            handle_request(&mut dev, &Request::MaskWriteRegister(0, 0, 0)),
            Err(RegisterError::IllegalFunction)
        );
        assert_eq!(
            ExceptionCode::from(RegisterError::IllegalDataValue),
            ExceptionCode::IllegalDataValue
        );
    }
}
