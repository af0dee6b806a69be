//! Who holds an intent's lease: `<host>:<pid>:<process start ticks>:<nonce>`.
//!
//! A runner on the same host can tell that the holder died (SIGKILL, crash, power cut of a VM
//! restarted under the same host name is *not* covered: then the lease simply expires) by looking
//! at `/proc/<pid>/stat`: no such process, or a process with another start time (pid reused), means
//! the holder is gone and its PENDING intent can be taken over at once instead of waiting for the
//! lease to expire. Holders on other hosts are only ever taken over after their lease expired.

use std::sync::OnceLock;

/// This process's owner id.
pub fn current() -> &'static str {
    static OWNER: OnceLock<String> = OnceLock::new();
    OWNER.get_or_init(|| {
        let pid = std::process::id();
        format!(
            "{}:{pid}:{}:{:016x}",
            hostname(),
            start_ticks(pid).unwrap_or(0),
            rand::random::<u64>()
        )
    })
}

/// The host name (Linux: /proc/sys/kernel/hostname), `unknown-host` otherwise.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".into())
        .replace(':', "_")
}

/// Field 22 of /proc/<pid>/stat: the process start time in clock ticks since boot.
fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm (field 2) may contain spaces and parentheses: split after the last ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

/// True if `owner` names a process on this host that no longer exists.
pub fn is_dead_local(owner: &str) -> bool {
    let mut parts = owner.split(':');
    let (Some(host), Some(pid), Some(ticks)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    if host != hostname() {
        return false;
    }
    let (Ok(pid), Ok(ticks)) = (pid.parse::<u32>(), ticks.parse::<u64>()) else {
        return false;
    };
    if !std::path::Path::new("/proc/self/stat").exists() {
        return false; // no procfs: cannot tell
    }
    match start_ticks(pid) {
        None => true,
        Some(t) => t != ticks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_alive_and_ids_parse() {
        let me = current();
        assert!(!is_dead_local(me), "{me}");
        assert_eq!(me.split(':').count(), 4);
        // a pid that cannot exist on Linux (pid_max <= 4194304)
        let ghost = format!("{}:4194399:1:00", hostname());
        assert!(is_dead_local(&ghost));
        // same pid, other start time = reused pid
        let reused = format!("{}:{}:1:00", hostname(), std::process::id());
        assert!(is_dead_local(&reused));
        // other hosts are never declared dead
        assert!(!is_dead_local("some-other-host-x:4194399:1:00"));
        assert!(!is_dead_local("garbage"));
    }
}
