//! Download retries as moby's `xfer` download manager does them: up to five attempts, waiting
//! `attempt × 5` seconds between them with a `Retrying in N seconds` countdown each second.

use std::time::Duration;

/// moby's `max-concurrent-downloads`' companion `max-download-attempts` default.
pub const MAX_DOWNLOAD_ATTEMPTS: u32 = 5;

/// Hidden, for tests only: the countdown's tick in milliseconds instead of a second, so a test of
/// several retries does not wait for tens of seconds.
const TICK_ENV: &str = "BERTH_TEST_RETRY_TICK_MS";

/// The countdown's tick (moby's `waitDuration`).
pub fn tick() -> Duration {
    std::env::var(TICK_ENV)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_millis)
        .unwrap_or(Duration::from_secs(1))
}

/// The seconds shown after failed attempt number `failures` (1-based): `5·failures` down to 1.
pub fn countdown(failures: u32) -> impl Iterator<Item = u32> {
    (1..=failures * 5).rev()
}

/// moby's progress text, `Retrying in 5 seconds` … `Retrying in 1 second`.
pub fn retrying_message(secs: u32) -> String {
    format!(
        "Retrying in {secs} second{}",
        if secs == 1 { "" } else { "s" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn countdown_like_moby() {
        assert_eq!(countdown(1).collect::<Vec<_>>(), [5, 4, 3, 2, 1]);
        assert_eq!(countdown(2).count(), 10);
        assert_eq!(retrying_message(5), "Retrying in 5 seconds");
        assert_eq!(retrying_message(1), "Retrying in 1 second");
    }
}
