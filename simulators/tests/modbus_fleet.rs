//! End-to-end test of the simulated fleet through a real Modbus TCP client.
//!
//! It must not depend on fixed ports (everything binds 127.0.0.1:0) and must
//! not use sleeps as synchronisation beyond a bounded poll on a changing value.

use std::{net::SocketAddr, time::Duration};

use tokio::sync::oneshot;
use tokio_modbus::{
    ExceptionCode,
    client::{Context, Reader, Writer, tcp},
};
use wearline_simulators::{
    FleetConfig, RunningFleet, fleet_params,
    registers::{
        COIL_FILTER_REPLACED, HOLDING_REGISTER_COUNT, HR_FAN_LEVEL, INPUT_REGISTER_COUNT, IR_FILTER_DP,
        IR_RUN_HOURS, decode_f32_abcd, decode_i16, decode_u32_abcd,
    },
    start_fleet,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const SEED: u64 = 42;

async fn fleet(time_scale: f64) -> Result<(RunningFleet, oneshot::Sender<()>), Box<dyn std::error::Error>> {
    let (tx, rx) = oneshot::channel::<()>();
    let cfg = FleetConfig {
        seed: SEED,
        devices: 3,
        time_scale,
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        filter_loads: Vec::new(),
        pm25: Vec::new(),
    };
    let fleet = start_fleet(cfg, async {
        let _ = rx.await;
    })
    .await?;
    Ok((fleet, tx))
}

#[derive(Debug)]
struct Snapshot {
    rpm: f64,
    temp_c: f64,
    vibration: f64,
    dp_pa: f64,
    run_hours: f64,
    pm25: f64,
}

async fn snapshot(ctx: &mut Context) -> Result<Snapshot, Box<dyn std::error::Error>> {
    let r = ctx.read_input_registers(0, INPUT_REGISTER_COUNT).await??;
    Ok(Snapshot {
        rpm: f64::from(r[0]),
        temp_c: f64::from(decode_i16(r[1])) / 10.0,
        vibration: f64::from(r[2]) / 100.0,
        dp_pa: f64::from(r[3]) / 10.0,
        run_hours: f64::from(decode_u32_abcd([r[4], r[5]])) / 100.0,
        pm25: f64::from(decode_f32_abcd([r[6], r[7]])),
    })
}

async fn read_run_hours(ctx: &mut Context) -> Result<f64, Box<dyn std::error::Error>> {
    let r = ctx.read_input_registers(IR_RUN_HOURS, 2).await??;
    Ok(f64::from(decode_u32_abcd([r[0], r[1]])) / 100.0)
}

#[tokio::test]
async fn fleet_serves_plausible_registers() -> TestResult {
    let (fleet, stop) = fleet(1.0).await?;
    let expected = fleet_params(SEED, 3, &[], &[]);
    assert_eq!(fleet.devices().len(), 3);

    for (i, device) in fleet.devices().iter().enumerate() {
        assert_eq!(device.id, format!("purifier-{:04}", i + 1));
        assert_eq!(device.params, expected[i]);
        assert_ne!(device.addr.port(), 0);

        let mut ctx = tcp::connect(device.addr).await?;
        let s = snapshot(&mut ctx).await?;
        let p = &device.params;
        let rpm = 300.0 + 12.0 * p.fan_level_pct;
        assert!((s.rpm - rpm).abs() < 15.0, "{s:?}");
        assert!((30.0..60.0).contains(&s.temp_c), "{s:?}");
        assert!((0.5..2.0).contains(&s.vibration), "{s:?}");
        assert!((78.0..260.0).contains(&s.dp_pa), "{s:?}");
        assert!((100.0..5000.1).contains(&s.run_hours), "{s:?}");
        assert!((s.pm25 - p.pm25_ugm3).abs() < 0.1 * p.pm25_ugm3, "{s:?}");

        let level = ctx.read_holding_registers(HR_FAN_LEVEL, 1).await??;
        assert_eq!(f64::from(level[0]), p.fan_level_pct);
        assert_eq!(ctx.read_discrete_inputs(0, 1).await??, [true]);
        assert_eq!(ctx.read_coils(0, 2).await??, [false, false]);
    }

    // Distinct devices behind distinct ports.
    let mut addrs: Vec<_> = fleet.devices().iter().map(|d| d.addr).collect();
    addrs.sort_unstable();
    addrs.dedup();
    assert_eq!(addrs.len(), 3);

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), fleet.wait()).await??;
    Ok(())
}

#[tokio::test]
async fn writes_and_exceptions() -> TestResult {
    let (fleet, _stop) = fleet(1.0).await?;
    // The most clogged device makes the reset obvious.
    let device = fleet
        .devices()
        .iter()
        .max_by(|a, b| {
            a.params
                .initial_filter_load
                .total_cmp(&b.params.initial_filter_load)
        })
        .cloned()
        .ok_or("empty fleet")?;
    let mut ctx = tcp::connect(device.addr).await?;

    let before = ctx.read_input_registers(IR_FILTER_DP, 1).await??[0];
    assert!(before > 1500, "dp {before} (0.1 Pa)");
    ctx.write_single_coil(COIL_FILTER_REPLACED, true).await??;
    let after = ctx.read_input_registers(IR_FILTER_DP, 1).await??[0];
    assert!((790..=815).contains(&after), "dp {after} (0.1 Pa)");
    assert_eq!(ctx.read_coils(COIL_FILTER_REPLACED, 1).await??, [false]);

    ctx.write_single_coil(0, true).await??;
    assert_eq!(ctx.read_coils(0, 1).await??, [true]);

    ctx.write_single_register(HR_FAN_LEVEL, 90).await??;
    assert_eq!(ctx.read_holding_registers(HR_FAN_LEVEL, 1).await??, [90]);
    assert_eq!(
        ctx.write_single_register(HR_FAN_LEVEL, 101).await?,
        Err(ExceptionCode::IllegalDataValue)
    );
    assert_eq!(
        ctx.read_input_registers(INPUT_REGISTER_COUNT, 1).await?,
        Err(ExceptionCode::IllegalDataAddress)
    );
    assert_eq!(
        ctx.read_input_registers(INPUT_REGISTER_COUNT - 2, 3).await?,
        Err(ExceptionCode::IllegalDataAddress)
    );
    assert_eq!(
        ctx.read_holding_registers(HOLDING_REGISTER_COUNT, 1).await?,
        Err(ExceptionCode::IllegalDataAddress)
    );

    fleet.shutdown().await?;
    assert!(
        tcp::connect(device.addr).await.is_err(),
        "listener closed after shutdown"
    );
    Ok(())
}

#[tokio::test]
async fn fast_time_advances_run_hours() -> TestResult {
    // One simulated day per real second.
    let (fleet, _stop) = fleet(86_400.0).await?;
    let device = fleet.devices().first().ok_or("empty fleet")?;
    let mut ctx = tcp::connect(device.addr).await?;

    let first = read_run_hours(&mut ctx).await?;
    let later = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let now = read_run_hours(&mut ctx).await?;
            if now > first {
                return Ok::<_, Box<dyn std::error::Error>>(now);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await??;
    assert!(later > first);
    // Both readings are rounded to 0.01 h (36 s).
    let elapsed = fleet.simulated_elapsed().as_secs_f64();
    assert!(elapsed >= (later - first) * 3600.0 - 36.0, "{elapsed} s");
    fleet.shutdown().await?;
    Ok(())
}
