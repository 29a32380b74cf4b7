//! Host figures for gateway health: the agent's own CPU and memory, the
//! gateway's memory, and free space on the disk that holds the agent's data
//! (sysinfo). A figure the platform does not report is `None`, never an error.

use std::path::{Path, PathBuf};
use sysinfo::{Disks, Pid, ProcessRefreshKind, ProcessesToUpdate, System};

/// What one probe saw.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct HostFigures {
    pub rss_bytes: Option<u64>,
    pub cpu_pct: Option<f64>,
    pub mem_used_bytes: Option<u64>,
    pub mem_total_bytes: Option<u64>,
    pub disk_free_bytes: Option<u64>,
}

/// Keeps sysinfo's state between probes (CPU use is measured between two).
pub struct HostProbe {
    system: Option<System>,
    pid: Option<Pid>,
    data_dir: PathBuf,
}

impl HostProbe {
    pub fn new(data_dir: &Path) -> HostProbe {
        let system = System::new().ok();
        let pid = sysinfo::get_current_pid().ok();
        let data_dir = data_dir.canonicalize().unwrap_or_else(|_| data_dir.to_path_buf());
        HostProbe {
            system,
            pid,
            data_dir,
        }
    }

    /// Refreshes and reads the figures.
    pub fn sample(&mut self) -> HostFigures {
        let mut out = HostFigures::default();
        if let Some(sys) = self.system.as_mut() {
            sys.refresh_memory();
            out.mem_used_bytes = Some(sys.used_memory()).filter(|&m| m > 0);
            out.mem_total_bytes = Some(sys.total_memory()).filter(|&m| m > 0);
            if let Some(pid) = self.pid {
                sys.refresh_processes_specifics(
                    ProcessesToUpdate::Some(&[pid]),
                    true,
                    ProcessRefreshKind::nothing().with_memory().with_cpu(),
                );
                if let Some(p) = sys.process(pid) {
                    out.rss_bytes = Some(p.memory());
                    out.cpu_pct = Some(f64::from(p.cpu_usage()));
                }
            }
        }
        if let Ok(disks) = Disks::new_with_refreshed_list() {
            out.disk_free_bytes = disks
                .iter()
                .filter(|d| self.data_dir.starts_with(d.mount_point()))
                .max_by_key(|d| d.mount_point().as_os_str().len())
                .map(|d| d.available_space());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_this_process() {
        let dir = std::env::temp_dir();
        let mut probe = HostProbe::new(&dir);
        let f = probe.sample();
        assert!(f.rss_bytes.is_some_and(|r| r > 1 << 20), "{f:?}");
        assert!(
            f.mem_total_bytes
                .is_some_and(|t| t >= f.mem_used_bytes.unwrap_or(0)),
            "{f:?}"
        );
        assert!(f.cpu_pct.is_some_and(|c| c >= 0.0), "{f:?}");
    }
}
