//! CPU profiles on demand (the seed's 性能分析工具): samples this process's
//! stacks for a few seconds and answers them in pprof's format, so that an
//! operator can see where a live backend spends its time during a sale
//! (`go tool pprof -http=: profile.pb.gz`, or any pprof viewer) without a
//! restart, a debugger or root.
//!
//! One profile at a time: the sampler is process-wide (a `SIGPROF` timer).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use pprof::protos::Message as _;

/// Samples per second: enough for a few seconds to show the hot paths,
/// few enough to cost the sale nothing noticeable.
const FREQUENCY: i32 = 99;

/// Bounds of a profile's length, in seconds.
pub const SECONDS: std::ops::RangeInclusive<u64> = 1..=60;

static RUNNING: AtomicBool = AtomicBool::new(false);

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("a profile is being taken already; one at a time")]
    Busy,
    #[error("profiling failed: {0}")]
    Failed(String),
}

/// Profiles the process for `seconds` and returns the pprof protobuf.
pub async fn cpu_profile(seconds: u64) -> Result<Vec<u8>, ProfileError> {
    if RUNNING.swap(true, Ordering::AcqRel) {
        return Err(ProfileError::Busy);
    }
    let taken = tokio::task::spawn_blocking(move || {
        // Frames in these libraries are skipped: unwinding through them from a
        // signal handler can deadlock, and vdso's unwind info is often wrong.
        let guard = pprof::ProfilerGuardBuilder::default()
            .frequency(FREQUENCY)
            .blocklist(&["libc", "libgcc", "pthread", "vdso"])
            .build()
            .map_err(|e| ProfileError::Failed(e.to_string()))?;
        std::thread::sleep(Duration::from_secs(seconds));
        let report = guard.report().build().map_err(|e| ProfileError::Failed(e.to_string()))?;
        let profile = report.pprof().map_err(|e| ProfileError::Failed(e.to_string()))?;
        Ok(profile.encode_to_vec())
    })
    .await;
    RUNNING.store(false, Ordering::Release);
    taken.map_err(|e| ProfileError::Failed(e.to_string()))?
}
