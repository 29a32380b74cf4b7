//! The shipped air-purifier profile decodes the simulator's registers to the
//! simulator's own values: the register map is one contract, checked here.

use wearline_agent::sources::modbus::plan::{MAX_PER_REQUEST, Reading, decode, plan};
use wearline_models::profile::Profile;
use wearline_models::registers::RegisterKind;
use wearline_simulators::registers::{read_coils, read_holding_registers, read_input_registers};
use wearline_simulators::{AirPurifier, PurifierParams};

#[test]
fn air_purifier_profile_matches_the_simulator() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/profiles/air-purifier.toml");
    let text = std::fs::read_to_string(path).expect("profile");
    let profile = Profile::parse(path, &text).expect("valid profile");
    let mut dev = AirPurifier::new(PurifierParams {
        pm25_ugm3: 42.5,
        fan_level_pct: 70.0,
        initial_filter_load: 0.6,
        seed: 3,
    });
    dev.advance(5.0 * 86_400.0);
    dev.set_filter_indicator(true);

    let mut got = std::collections::BTreeMap::new();
    for read in plan(&profile, MAX_PER_REQUEST) {
        let words: Vec<u16> = match read.kind {
            RegisterKind::Input => read_input_registers(&dev, read.address, read.count).expect("input"),
            RegisterKind::Holding => read_holding_registers(&dev, read.address, read.count).expect("holding"),
            RegisterKind::Coil => read_coils(&dev, read.address, read.count)
                .expect("coils")
                .into_iter()
                .map(u16::from)
                .collect(),
            RegisterKind::Discrete => unreachable!("the profile has no discrete inputs"),
        };
        assert_eq!(
            decode(&profile, &read, &words, |m, r| {
                if let Reading::Number(v) = r {
                    got.insert(m.to_string(), v);
                }
            }),
            0
        );
    }
    let close = |metric: &str, want: f64, tol: f64| {
        let v = got[metric];
        assert!(
            (v - want).abs() <= tol,
            "{metric}: decoded {v}, simulator says {want}"
        );
    };
    close("fan_speed", dev.fan_speed_rpm(), 0.5);
    close("motor_temp", dev.motor_temp_c(), 0.05);
    close("vibration_rms", dev.vibration_rms_mms(), 0.005);
    close("filter_dp", dev.filter_dp_pa(), 0.05);
    close("run_hours", dev.run_hours(), 0.005);
    close("pm25", dev.pm25_ugm3(), 1e-3);
    close("fan_level", 70.0, 0.0);
    close("filter_indicator", 1.0, 0.0);
    close("uptime", dev.sim_secs(), 0.5);
    close(
        "firmware",
        f64::from(wearline_simulators::registers::FIRMWARE),
        0.0,
    );
    close(
        "energy",
        dev.run_hours() * wearline_simulators::registers::POWER_W,
        0.5,
    );
    close("room_temp", dev.motor_temp_c() - 15.0, 0.05);
    close("running", 1.0, 0.0);
    close(
        "model_id",
        f64::from(wearline_simulators::registers::MODEL_ID),
        0.0,
    );
    assert_eq!(got.len(), profile.fields.len());
}
